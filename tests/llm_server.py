"""A local OpenAI-compatible chat-completions server for tests and benchmarks.

It speaks the real protocol (``POST /v1/chat/completions``, the request and response JSON of the
OpenAI API including ``usage``, error bodies, ``Retry-After``), listens on 127.0.0.1 on an
ephemeral port in a thread, and is scriptable: queue answers (429 with Retry-After, 500s,
malformed JSON content, slow answers, a hang) that are served before the default answer, and
count every call. The default answer is valid JSON with queries built from the passage, so a
pipeline run against it produces a real dataset. A request with numbered passages (the answer
prompt, ``prompts/answer.v1.txt``) gets ``{"answer": ...}`` built from the passages' first
sentences, each cited [n] (``default_answer``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_N_QUESTIONS = re.compile(r"Write (\d+) different")
_PASSAGE = re.compile(r"Passage:\n(.*)\Z", re.S)
_WORD = re.compile(r"[A-Za-z][A-Za-z-]+")
_NUMBERED = re.compile(r"^\[(\d+)\] [^\n]*\n(.+?)(?=\n\n\[\d+\] |\Z)", re.S | re.M)
_FIRST_SENTENCE = re.compile(r"^(.+?[.!?])(?:\s|$)", re.S)


@dataclass
class Reply:
    """One scripted answer. ``status`` != 200 returns an OpenAI-style error body."""

    status: int = 200
    content: str | None = None          # the assistant message content (None = the default answer)
    retry_after: str | None = None      # the Retry-After header value
    delay_s: float = 0.0                # answer after this long
    hang: bool = False                  # hold the request until ``release()``, then drop the connection


def default_queries(messages: list[dict[str, Any]]) -> list[str]:
    """Deterministic queries from the passage in the user message (paraphrase-like, not copies)."""
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    n = int(m.group(1)) if (m := _N_QUESTIONS.search(user)) else 2
    passage = m.group(1) if (m := _PASSAGE.search(user)) else user
    words = [w.lower() for w in _WORD.findall(passage) if len(w) > 3]
    distinct = list(dict.fromkeys(words)) or ["topic"]
    queries = []
    for i in range(n):
        picked = distinct[i * 3: i * 3 + 3] or distinct[:3]
        queries.append(f"what does the text say about {' and '.join(picked)} in case {i + 1}")
    return queries


def default_answer(messages: list[dict[str, Any]], cite: int = 2) -> str | None:
    """For the answer prompt: the first sentence of the first ``cite`` passages, each cited [n]
    (an extractive "model" that cites exactly what it used); None for any other request."""
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    if "Passages:\n[1] " not in user:
        return None
    passages = _NUMBERED.findall(user.split("Passages:\n", 1)[1])
    parts = []
    for number, text in passages[:cite]:
        text = " ".join(text.split())
        sentence = m.group(1) if (m := _FIRST_SENTENCE.match(text)) else text[:200]
        parts.append(f"{sentence} [{number}]")
    return json.dumps({"answer": " ".join(parts) or None})


@dataclass
class LLMTestServer:
    api_key: str = "test-key"
    latency_s: float = 0.0              # added to every answer (benchmarks)
    script: list[Reply] = field(default_factory=list)
    calls: int = 0                      # requests received
    answered: Counter = field(default_factory=Counter)   # request fingerprint -> 200 answers sent
    statuses: Counter = field(default_factory=Counter)
    requests: list[dict[str, Any]] = field(default_factory=list)
    hang_after: int | None = None       # from this many 200 answers on, every request hangs
    in_flight: int = 0                  # requests being answered now (hanging ones not counted)
    storm_replies: Counter = field(default_factory=Counter)  # "429" / "stalled" -> requests refused by a storm

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._released = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes: without TCP_NODELAY, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every answer, which would swamp the benchmark.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                try:
                    server._handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout, a killed process): nothing to answer

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="llm-test-server", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> LLMTestServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def release(self) -> None:
        """Lets hanging requests go (their connections are dropped without an answer)."""
        self._released.set()

    def storm(self, seconds: float, *, retry_after: str = "1", stall_s: float = 0.0) -> None:
        """A rate-limit storm for ``seconds`` from the next request on: every request is refused,
        429 with ``Retry-After``; with ``stall_s``, every other one is instead held that long (past
        the client's timeout) and its connection dropped unanswered. Nothing refused is answered
        (or paid) later. The storm ends by itself: then the server answers again."""
        with self._lock:
            self._storm = (seconds, retry_after, stall_s)
            self._storm_started: float | None = None

    def _storm_reply(self) -> Reply | None:
        storm = getattr(self, "_storm", None)
        if storm is None:
            return None
        seconds, retry_after, stall_s = storm
        now = time.monotonic()
        if self._storm_started is None:
            self._storm_started = now
        if now - self._storm_started >= seconds:
            return None
        refused = sum(self.storm_replies.values())
        if stall_s and refused % 2:
            self.storm_replies["stalled"] += 1
            return Reply(status=0, delay_s=stall_s)
        self.storm_replies["429"] += 1
        return Reply(status=429, retry_after=retry_after)

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    @property
    def answered_total(self) -> int:
        return sum(self.answered.values())

    # -- protocol ----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = json.loads(h.rfile.read(length) or b"{}")
        with self._lock:
            self.calls += 1
            self.requests.append(body)
            reply = self.script.pop(0) if self.script else Reply()
            if self.hang_after is not None and self.answered_total >= self.hang_after:
                reply = Reply(hang=True)
            reply = self._storm_reply() or reply
        if h.path.rstrip("/") != "/v1/chat/completions":
            self._send(h, 404, _error("Not found", "invalid_request_error"))
            return
        if h.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._send(h, 401, _error("Incorrect API key provided", "invalid_request_error", "invalid_api_key"))
            return
        if reply.hang:
            self._released.wait()
            h.close_connection = True
            return None
        if reply.status == 0:  # a storm's stall: held, then dropped without an answer
            time.sleep(reply.delay_s)
            h.close_connection = True
            return None
        with self._lock:
            self.in_flight += 1
        try:
            self._answer(h, body, reply)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, h: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply) -> None:
        if reply.delay_s or self.latency_s:
            time.sleep(reply.delay_s + self.latency_s)
        if reply.status != 200:
            headers = {"Retry-After": reply.retry_after} if reply.retry_after is not None else {}
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            self._send(h, reply.status, _error(f"scripted {reply.status}", kind), headers)
            return
        messages = body.get("messages") or []
        content = reply.content
        if content is None:
            content = default_answer(messages) or json.dumps({"queries": default_queries(messages)})
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        with self._lock:
            self.answered[fingerprint(body)] += 1
        self._send(h, 200, {
            "id": f"chatcmpl-{self.calls}", "object": "chat.completion", "created": 1_700_000_000,
            "model": body.get("model", "test-model"), "system_fingerprint": "fp_test",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        })

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(data)


def fingerprint(body: dict[str, Any]) -> str:
    """What identifies a paid call: the messages, model and seed (the attempt is in the seed)."""
    return json.dumps([body.get("model"), body.get("messages"), body.get("seed")], sort_keys=True)


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
