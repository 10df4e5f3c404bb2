"""The service under a real uvicorn on 127.0.0.1: it follows alias swaps (and the model each
version was embedded with) without a restart, and every answer under load is whole and from
one version."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import numpy as np
import pytest

from ragops.indexing import versions
from ragops.models import ModelRef
from ragops.serving import ServiceSettings, create_app
from ragops.vocabulary import Relation
from tests.service.conftest import API_KEY, UvicornThread, wait_ready
from tests.service.corpus import GOLDEN

AUTH = {"Authorization": f"Bearer {API_KEY}"}
K = 5


@pytest.fixture(scope="module")
def server(indexed):
    app = create_app(indexed.svc, ServiceSettings(api_key=API_KEY, collection=indexed.alias, refresh_s=0.05))
    with UvicornThread(app) as running:
        with httpx.Client(base_url=running.url, timeout=60) as client:
            wait_ready(client)
        yield running


def live(indexed) -> str:
    return indexed.svc.store.get_alias(indexed.alias)


def version_of(indexed, collection: str) -> int:
    return indexed.versions.index(collection) + 1


def test_real_uvicorn_on_loopback_with_auth(server, indexed):
    assert server.url.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post("/v1/search", json={"query": "backup"}).status_code == 401
        assert client.get("/healthz").status_code == 200
        ok = client.post("/v1/search", json={"query": "backup", "k": 2}, headers=AUTH)
        assert ok.status_code == 200 and len(ok.json()["hits"]) == 2


def test_alias_swaps_under_load_every_response_whole_and_from_one_version(server, indexed):
    first, second = indexed.versions
    assert live(indexed) == first
    assert indexed.ids[first] - indexed.ids[second] and indexed.ids[second] - indexed.ids[first]
    stop = threading.Event()
    results: list[tuple[int, str | None, list[str], str | None]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def client_loop(worker: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
            i = worker
            while not stop.is_set():
                query = GOLDEN[i % len(GOLDEN)][0]
                mode = ("hybrid", "dense", "keyword")[i % 3]
                i += 1
                try:
                    response = client.post("/v1/search", json={"query": query, "k": K, "mode": mode})
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc))
                    continue
                body = response.json() if response.status_code == 200 else {}
                with lock:
                    results.append((response.status_code, body.get("version", {}).get("collection"),
                                    [h["chunk_id"] for h in body.get("hits", [])],
                                    body.get("version", {}).get("model_id")))

    threads = [threading.Thread(target=client_loop, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        for target in (second, first, second, first, second):
            time.sleep(0.6)
            versions.rollback(indexed.svc, indexed.alias, version_of(indexed, target))
        time.sleep(0.6)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not errors, errors[:3]
    assert len(results) >= 10
    models = {}
    for status, collection, ids, model_id in results:
        assert status == 200
        assert collection in (first, second)
        assert len(ids) == K                                  # whole
        assert set(ids) <= indexed.ids[collection]            # every hit from the version it names
        models.setdefault(collection, set()).add(model_id)
    served = Counter(collection for _, collection, _, _ in results)
    assert served[first] and served[second], served             # both versions served during the swaps
    assert all(len(m) == 1 for m in models.values()) and models[first] != models[second]

    # after the last swap the new version serves, and keeps serving
    assert live(indexed) == second
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
        for query, _ in GOLDEN:
            body = client.post("/v1/search", json={"query": query, "k": K}).json()
            assert body["version"]["collection"] == second and set(h["chunk_id"] for h in body["hits"]) <= indexed.ids[second]
    versions.rollback(indexed.svc, indexed.alias, 1)


def test_each_version_is_queried_with_the_model_it_was_embedded_with(server, indexed):
    """Version 2 was embedded by another model: after a swap the service encodes queries with
    that model (a model promotion reaches readers through the alias, without a restart)."""
    from ragops.embedding import Embedder

    svc, query = indexed.svc, GOLDEN[0][0]
    with httpx.Client(base_url=server.url, timeout=60, headers=AUTH) as client:
        for collection in (indexed.versions[1], indexed.versions[0]):
            versions.rollback(svc, indexed.alias, version_of(indexed, collection))
            deadline = time.monotonic() + 10
            while True:
                body = client.post("/v1/search", json={"query": query, "k": 3, "mode": "dense"}).json()
                if body["version"]["collection"] == collection or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert body["version"]["collection"] == collection
            meta = svc.store.collection_metadata(collection)
            model = svc.registry.parent(int(meta["artifact_id"]), Relation.EMBEDDED_WITH)
            assert body["version"]["model_id"] == f"embeddings:v{model.version}"
            vector = Embedder(svc.model_path(ModelRef.of(model))).encode([query])[0]
            expected = svc.store.vector_search(collection, vector, k=3)
            assert [h["chunk_id"] for h in body["hits"]] == [h.id for h in expected]
            assert np.allclose([h["score"] for h in body["hits"]], [h.score for h in expected], atol=1e-4)
    assert live(indexed) == indexed.versions[0]
