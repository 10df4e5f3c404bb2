"""Alerts reach people: a real SMTP server on loopback receives the email, a server speaking Slack's
incoming-webhook protocol receives the post. Both are redacted and escaped; a channel that is down
changes nothing but the list of channels reached; a retried alert is sent once."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ragops.notify import Notifier, SlackWebhookChannel, SmtpChannel, airflow_run_url

BASE_URL = "http://airflow.example:8080"
SECRET = "sk-proj-PLANTEDsecret0123456789"
TITLE = "gate failed: RagDocs_<b>x</b> & <!channel>"
MESSAGE = (f"collection RagDocs_abc failed ['golden_ndcg']: nDCG@10 0.412 < live 0.530 - tolerance 0.02 "
           f"(input <script>alert(1)</script>, *bold* _it_ ```fence```); key {SECRET}; "
           "dsn postgresql://u:PLANTEDpw@db/ragops")


# -- a Slack incoming-webhook server -----------------------------------------------------------------


class SlackWebhook:
    """Speaks Slack's incoming-webhook protocol: POST application/json {"text": ...} -> 200 "ok";
    a bad payload -> 400 "invalid_payload"; ``down`` -> 500."""

    def __init__(self):
        self.posts: list[dict] = []
        self.down = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if outer.down:
                    return self._answer(500, b"internal_error")
                try:
                    payload = json.loads(body)
                except ValueError:
                    return self._answer(400, b"invalid_payload")
                if self.headers.get("Content-Type", "").split(";")[0] != "application/json" \
                        or not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
                    return self._answer(400, b"invalid_payload")
                outer.posts.append({"path": self.path, **payload})
                return self._answer(200, b"ok")

            def _answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T000/B000/XXXX"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack():
    server = SlackWebhook()
    yield server
    server.close()


# -- a real SMTP server ----------------------------------------------------------------------------


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.envelopes = []

        async def handle_DATA(self, server, session, envelope):
            self.envelopes.append(envelope)
            return "250 Message accepted for delivery"

    inbox = Inbox()
    inbox.port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    controller.start()
    yield inbox
    controller.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """The registry's alert interface, in memory: one alert per (run_key, title), as in Postgres."""

    def __init__(self):
        self.rows: dict[tuple, dict] = {}

    def record_alert(self, run_key, severity, title, message, context=None, channels=None):
        self.rows[(run_key, title)] = {"run_key": run_key, "severity": severity, "title": title, "message": message,
                                       "context": context or {}, "channels": list(channels or [])}
        return len(self.rows)

    def alerts(self, run_key=None, limit=None):
        return [r for r in self.rows.values() if run_key is None or r["run_key"] == run_key]


def parse(envelope) -> email.message.EmailMessage:
    return email.message_from_bytes(envelope.content, policy=email.policy.default)


# -- tests ------------------------------------------------------------------------------------------


def test_email_is_delivered_redacted_escaped_and_linked(smtp):
    channel = SmtpChannel("127.0.0.1", smtp.port, sender="ragops@example.org",
                          recipients=["oncall@example.org", "data@example.org"])
    notifier = Notifier(Recorder(), {"email": channel}, base_url=BASE_URL)
    reached = notifier.alert(TITLE, MESSAGE, run_key="rag_index/manual__2026-01-01T00:00:00+00:00",
                             context={"ndcg": 0.412, "api_key": SECRET})
    assert reached == ["log", "email", "registry"]

    (envelope,) = smtp.envelopes
    assert envelope.mail_from == "ragops@example.org"
    assert envelope.rcpt_tos == ["oncall@example.org", "data@example.org"]
    msg = parse(envelope)
    assert msg["Subject"] == f"[ragops] error: {TITLE}"
    assert SECRET not in envelope.content.decode(errors="replace") and "PLANTEDpw" not in envelope.content.decode()
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    run_link = f"{BASE_URL}/dags/rag_index/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00"
    assert "nDCG@10 0.412 < live 0.530" in text and run_link in text and "ndcg: 0.412" in text
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "RagDocs_&lt;b&gt;x&lt;/b&gt; &amp; &lt;!channel&gt;" in html
    assert f'<a href="{run_link}">' in html


def test_slack_post_is_redacted_escaped_and_linked(slack):
    notifier = Notifier(Recorder(), {"slack": SlackWebhookChannel(slack.url)}, base_url=BASE_URL)
    reached = notifier.alert(TITLE, MESSAGE, run_key="rag_index/r1", context={"ndcg": 0.412})
    assert reached == ["log", "slack", "registry"]
    (post,) = slack.posts
    text = post["text"]
    assert post["path"] == "/services/T000/B000/XXXX"
    assert SECRET not in text and "PLANTEDpw" not in text
    # mrkdwn control characters are escaped: no @channel ping, no injected link or markup
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<script>" not in text and "&lt;script&gt;" in text and "&amp;" in text
    assert f"<{BASE_URL}/dags/rag_index/runs/r1|" in text  # the only real link is ours
    assert "nDCG@10 0.412 &lt; live 0.530" in text


def test_a_channel_that_is_down_leaves_the_alert_recorded_and_raises_nothing(slack, smtp):
    slack.down = True
    recorder = Recorder()
    channels = {"slack": SlackWebhookChannel(slack.url, timeout=5),
                "email": SmtpChannel("127.0.0.1", free_port(), sender="a@b.c", recipients=["d@e.f"], timeout=5),
                "working": SmtpChannel("127.0.0.1", smtp.port, sender="a@b.c", recipients=["d@e.f"])}
    reached = Notifier(recorder, channels, base_url=BASE_URL).alert(TITLE, MESSAGE, run_key="d/r")
    assert reached == ["log", "working", "registry"]
    (row,) = recorder.alerts("d/r")
    assert row["channels"] == ["log", "working"] and SECRET not in row["message"]
    assert set(row["context"]["channel_errors"]) == {"slack", "email"}
    assert len(smtp.envelopes) == 1


def test_a_registry_that_is_down_does_not_raise_either(slack):
    class Down(Recorder):
        def alerts(self, run_key=None, limit=None):
            raise ConnectionError("registry down")

        def record_alert(self, *args, **kwargs):
            raise ConnectionError("registry down")

    reached = Notifier(Down(), {"slack": SlackWebhookChannel(slack.url)}).alert("t", "m", run_key="d/r")
    assert reached == ["log", "slack"] and len(slack.posts) == 1


def test_one_alert_per_failure_not_one_per_retry(slack, registry):
    notifier = Notifier(registry, {"slack": SlackWebhookChannel(slack.url)}, base_url=BASE_URL)
    run = registry.start_run("rag_index", "r-retry")
    for _ in range(3):  # the step that alerts is retried twice
        notifier.alert("data quality failed: documents", "3 checks failed: blank 2, duplicates 1", run_key=run)
    assert len(slack.posts) == 1
    (alert,) = registry.alerts(run)
    assert alert["channels"] == ["log", "slack"]
    # A different failure in the same run is its own alert.
    notifier.alert("gate failed: RagDocs_x", "smoke 0.2 < 0.7", run_key=run)
    assert len(slack.posts) == 2


def test_a_retry_resends_only_to_the_channels_that_missed_it(slack, registry):
    notifier = Notifier(registry, {"slack": SlackWebhookChannel(slack.url, timeout=5)})
    run = registry.start_run("rag_index", "r-down")
    slack.down = True
    assert notifier.alert("t", "m", run_key=run) == ["log", "registry"]
    slack.down = False
    assert notifier.alert("t", "m", run_key=run) == ["log", "slack", "registry"]
    assert notifier.alert("t", "m", run_key=run) == ["log", "slack", "registry"]
    assert len(slack.posts) == 1


def test_plain_callables_still_work_as_channels():
    sent = []
    reached = Notifier(None, {"custom": lambda title, text: sent.append((title, text))}).alert(
        "t", f"key {SECRET}", context={"password": "pw"})
    assert reached == ["log", "custom"] and SECRET not in sent[0][1] and "pw" not in sent[0][1]


def test_run_url():
    assert airflow_run_url("http://h:8080/", "rag_index/scheduled__2026-01-01T00:00:00+00:00") == \
        "http://h:8080/dags/rag_index/runs/scheduled__2026-01-01T00%3A00%3A00%2B00%3A00"
    assert airflow_run_url(None, "d/r") is None and airflow_run_url("http://h", None) is None
