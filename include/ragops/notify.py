"""Alerts: always logged and recorded in the lineage registry; posted wherever channels exist.

An alert says what failed (its title), which input or gate and the numbers (its message and
context), and links to the Airflow run (``base_url`` + the run key). Everything in it is redacted
before it is logged, recorded or sent, and each channel escapes it for its own format.

Channels: ``SlackWebhookChannel`` (a Slack incoming webhook), ``SmtpChannel`` (email through any
SMTP server), or any plain callable ``(title, text) -> None``. The DAG glue builds them from the
connections ``ragops_slack`` / ``ragops_smtp``; without them alerts are still logged and recorded.

Guarantees: ``alert()`` never raises (a channel or registry that is down is logged and named in
the recorded alert, the task's outcome is unchanged), and an alert is sent once per failure: a
retried step that raises the same alert (same run, same title) reaches only the channels that
missed it the first time.
"""

from __future__ import annotations

import html
import json
import logging
import smtplib
import ssl
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ragops.config import redact

if TYPE_CHECKING:
    from ragops.lineage import Registry

log = logging.getLogger("ragops.alerts")

Channel = Callable[[str, str], None]


@dataclass(frozen=True)
class Alert:
    """One alert, already redacted. ``link`` is the Airflow run, when the deployment's URL is known."""

    title: str
    message: str
    severity: str = "error"
    context: dict[str, Any] = field(default_factory=dict)
    link: str | None = None

    def text(self) -> str:
        """Plain text: the message, the numbers of the context, the link."""
        lines = [self.message, *(f"{k}: {v}" for k, v in self.context.items())]
        if self.link:
            lines.append(f"Airflow run: {self.link}")
        return "\n".join(lines)


def airflow_run_url(base_url: str | None, run_key: str | None) -> str | None:
    """The Airflow UI page of a run, from the deployment's base URL and a run key ``dag_id/run_id``."""
    if not base_url or not run_key or "/" not in run_key:
        return None
    dag_id, run_id = run_key.split("/", 1)
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


class ChannelError(RuntimeError):
    """A channel did not take the alert (its answer is in the message)."""


class SlackWebhookChannel:
    """Posts to a Slack incoming webhook: ``{"text": ...}`` in mrkdwn, answered ``ok``."""

    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url, self.timeout = url, timeout

    def __repr__(self) -> str:  # the webhook URL is itself a secret
        return "SlackWebhookChannel(url=***)"

    def send_alert(self, alert: Alert) -> None:
        body = json.dumps({"text": slack_text(alert)}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = response.read(200).decode(errors="replace")
        except OSError as exc:  # HTTPError (4xx/5xx), URLError, timeouts
            raise ChannelError(f"Slack webhook refused the alert: {exc}") from None
        if answer.strip() != "ok":
            raise ChannelError(f"Slack webhook answered {answer!r}, not 'ok'")

    def __call__(self, title: str, text: str) -> None:
        self.send_alert(Alert(title, text))


def slack_escape(text: str) -> str:
    """Slack's mrkdwn escaping: &, < and > are control characters (links, @channel mentions)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(alert: Alert) -> str:
    # The title loses "*" so it cannot end our bold early; the body goes in a code block, where
    # mrkdwn formatting does not apply (a "```" inside it is broken up so it cannot close the block).
    title = slack_escape(alert.title).replace("*", "")
    body = slack_escape(alert.message + "".join(f"\n{k}: {v}" for k, v in alert.context.items()))
    lines = [f":rotating_light: *[{alert.severity}] {title}*", "```" + body.replace("```", "`\u200b``") + "```"]
    if alert.link:
        lines.append(f"<{alert.link.replace('>', '%3E').replace('|', '%7C')}|View the Airflow run>")
    return "\n".join(lines)


class SmtpChannel:
    """Sends the alert as an email (plain text and escaped HTML) through an SMTP server."""

    def __init__(self, host: str, port: int = 25, *, sender: str, recipients: Sequence[str] | str,
                 username: str | None = None, password: str | None = None, starttls: bool = False,
                 use_ssl: bool = False, timeout: float = 10.0):
        self.host, self.port, self.sender, self.timeout = host, int(port), sender, timeout
        self.recipients = [r.strip() for r in (recipients.split(",") if isinstance(recipients, str) else recipients)
                           if r.strip()]
        if not self.recipients:
            raise ValueError("SmtpChannel needs at least one recipient")
        self.username, self._password, self.starttls, self.use_ssl = username, password, starttls, use_ssl

    def __repr__(self) -> str:
        return f"SmtpChannel(host={self.host!r}, port={self.port}, recipients={self.recipients!r})"

    def send_alert(self, alert: Alert) -> None:
        msg = EmailMessage()
        # Header values must be one line: a newline in a title would start a new header.
        msg["Subject"] = " ".join(f"[ragops] {alert.severity}: {alert.title}".split())
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.recipients)
        msg.set_content(alert.text())
        msg.add_alternative(email_html(alert), subtype="html")
        smtp_class = smtplib.SMTP_SSL if self.use_ssl else smtplib.SMTP
        try:
            with smtp_class(self.host, self.port, timeout=self.timeout) as server:
                if self.starttls:
                    server.starttls(context=ssl.create_default_context())
                if self.username:
                    server.login(self.username, self._password or "")
                server.send_message(msg, from_addr=self.sender, to_addrs=self.recipients)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(f"SMTP server {self.host}:{self.port} refused the alert: {exc}") from None

    def __call__(self, title: str, text: str) -> None:
        self.send_alert(Alert(title, text))


def email_html(alert: Alert) -> str:
    esc = html.escape
    rows = "".join(f"<tr><th align=left>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>"
                   for k, v in alert.context.items())
    link = f'<p><a href="{esc(alert.link)}">View the Airflow run</a></p>' if alert.link else ""
    return (f"<html><body><h2>[{esc(alert.severity)}] {esc(alert.title)}</h2>"
            f"<pre style='white-space:pre-wrap'>{esc(alert.message)}</pre>"
            f"{f'<table>{rows}</table>' if rows else ''}{link}</body></html>")


@dataclass
class Notifier:
    registry: Registry | None = None     # None outside a run
    channels: dict[str, Channel] = field(default_factory=dict)
    base_url: str | None = None          # the Airflow UI, for the link to the run

    def alert(self, title: str, message: str, *, severity: str = "error", run_key: str | None = None,
              context: dict[str, Any] | None = None) -> list[str]:
        """Sends an alert; returns where it got: "log", the channels that took it, "registry"."""
        alert = Alert(redact(title), redact(message), severity, redact(dict(context or {})),
                      airflow_run_url(self.base_url, run_key))
        log.error("ALERT [%s] %s: %s | %s", severity, alert.title, alert.message, alert.context)
        already = self._already_reached(run_key, alert.title)
        reached, errors = ["log"], {}
        for name, channel in self.channels.items():
            if name in already:
                reached.append(name)  # a retry of the same failure: this channel has it already
                continue
            try:
                send = getattr(channel, "send_alert", None)
                send(alert) if send else channel(alert.title, alert.text())
                reached.append(name)
            except Exception as exc:  # noqa: BLE001 - a broken channel must not swallow the alert or fail the task
                errors[name] = redact(f"{type(exc).__name__}: {exc}")[:500]
                log.warning("alert channel %s failed for %r: %s", name, alert.title, errors[name])
        if self.registry is not None:
            try:
                context = {**alert.context, **({"channel_errors": errors} if errors else {})}
                self.registry.record_alert(run_key, severity, alert.title, alert.message, context, reached)
                reached.append("registry")
            except Exception:
                log.exception("could not record alert %r", alert.title)
        return reached

    def _already_reached(self, run_key: str | None, title: str) -> set[str]:
        """Channels an earlier try of this run already reached with this alert (one alert per failure)."""
        if self.registry is None or run_key is None:
            return set()
        try:
            return {c for a in self.registry.alerts(run_key) if a["title"] == title for c in a["channels"]}
        except Exception:  # noqa: BLE001 - no registry: send again rather than not at all
            log.warning("could not read earlier alerts of %s; sending %r anyway", run_key, title)
            return set()
