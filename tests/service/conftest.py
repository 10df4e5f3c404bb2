"""The service tests' corpus (two collection versions under one alias, embedded by two models),
and a real uvicorn on 127.0.0.1 in a thread."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from typing import Any

import pytest

from tests.service.corpus import Corpus, index_corpus, new_registry

API_KEY = "test-service-key-0123456789abcdef"


@pytest.fixture(scope="session")
def indexed(pg_dsn, tmp_path_factory, embedder, base_model_path) -> Corpus:
    """Alias ``Docs``: version 1 (the base model, 96-token chunks) is live; version 2 (another
    registered model, 128-token chunks) exists and was live before a rollback."""
    from ragops.indexing import versions
    from ragops.models import model_dir_hash, register_candidate
    from tests.unit.training_data import save_broken_model

    root = tmp_path_factory.mktemp("service")
    registry = new_registry(pg_dsn)
    try:
        corpus = index_corpus(registry, root, embedder)
        other = save_broken_model(base_model_path, root / "other-model")
        model = register_candidate(registry, str(other), model_dir_hash(other))
        index_corpus(registry, root, embedder, chunk_size=128, embedding_model=f"v{model.version}", run_id="r2",
                     corpus=corpus)
        versions.rollback(corpus.svc, corpus.alias, 1)
        yield corpus
    finally:
        registry.drop()
        shutil.rmtree(root, ignore_errors=True)


class UvicornThread:
    """The app under a real uvicorn, bound to 127.0.0.1 on a free port, in a daemon thread."""

    def __init__(self, app: Any):
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


def wait_ready(client: Any, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == 200:
            return response.json()
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {timeout}s: {response.json()}")
        time.sleep(0.2)
