"""A paid LLM answer outlives a short registry outage (issue 9's fault tests).

In the deployment-shaped tier (tests/e2e/test_faults.py), a Postgres restart while answers arrived
made the answer cache's write fail; the generate task failed and its retry paid the LLM for that
answer again. The write now waits for the registry, within a bound. The outage here is real: the
registry's address refuses connections until a TCP relay to the real Postgres starts listening.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlparse, urlunparse

import psycopg2
import pytest

from ragops.lineage import Registry
from ragops.synthetic.cache import CachedAnswer, LLMCache

ANSWER = CachedAnswer({"content": '{"queries": ["what is a relay"]}', "model": "m"}, 11, 7, 0.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


class LateRelay:
    """Listens on ``port`` only after ``delay`` seconds (until then: connection refused), then
    relays every connection to the real Postgres."""

    def __init__(self, port: int, target: tuple[str, int], delay: float):
        self.port, self.target, self.delay = port, target, delay
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> LateRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _serve(self) -> None:
        if self._stop.wait(self.delay):
            return
        with socket.create_server(("127.0.0.1", self.port)) as server:
            server.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                self.accepted += 1
                upstream = socket.create_connection(self.target)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _behind(registry: Registry, port: int) -> Registry:
    url = urlparse(registry.dsn)
    return Registry(urlunparse(url._replace(netloc=f"{url.username}:{url.password}@127.0.0.1:{port}")),
                    registry.schema)


def test_a_paid_answer_waits_for_the_registry_to_come_back(registry):
    port = _free_port()
    url = urlparse(registry.dsn)
    with LateRelay(port, (url.hostname, url.port), delay=1.5) as relay:
        LLMCache(_behind(registry, port)).put("k-outage", model="m", prompt_version="p.v1@abc", answer=ANSWER)
        assert relay.accepted >= 1  # written through the relay, which listens only after the outage
    cached = LLMCache(registry).get_many(["k-outage"])["k-outage"]
    assert cached.response == ANSWER.response and cached.prompt_tokens == 11


def test_the_wait_is_bounded(registry, monkeypatch):
    import ragops.synthetic.cache as cache_module

    monkeypatch.setattr(cache_module, "LLM_CACHE_WRITE_PATIENCE_S", 1.0)
    with pytest.raises(psycopg2.OperationalError):
        LLMCache(_behind(registry, _free_port())).put("k-never", model="m", prompt_version="p", answer=ANSWER)
    assert LLMCache(registry).get_many(["k-never"]) == {}
