"""Tier 3 on the real Weaviate: rag_train_reranker through dag.test(), LTR kind, imported labels,
the fixture corpus indexed into a Weaviate collection behind an alias of its own, and the DAG
reaching Weaviate through the `ragops_weaviate` connection (the Weaviate provider's type), as a
deployment configures it. The live reranker is broken (it reverses the first stage), so the
candidate trained on the labels must beat it and be promoted, with the asset event."""

from __future__ import annotations

import json
import shutil
import uuid
from urllib.parse import urlparse

import pytest

from tests.service.corpus import FIXTURE_CORPUS, SOURCE

from .conftest import run_dag, task_states, xcom
from .test_rag_train_reranker import CONF, reranker_asset_events, reversing_ltr

pytestmark = [pytest.mark.dagrun, pytest.mark.weaviate]


@pytest.fixture
def weaviate_corpus(ragops_env, weaviate_server, tmp_path, monkeypatch, embedder):
    """The fixture corpus indexed into the real Weaviate under a unique alias; the DAG's connection set."""
    from ragops.config import RagopsSettings
    from ragops.indexing.params import IndexParams
    from ragops.indexing.pipeline import run_pipeline
    from ragops.labels import collection_chunks
    from ragops.models import model_dir_hash, promote, register_candidate
    from ragops.services import Services

    url = urlparse(weaviate_server["WEAVIATE_URL"])
    grpc = weaviate_server.get("WEAVIATE_GRPC_PORT") or "50051"
    key = weaviate_server.get("WEAVIATE_API_KEY") or ""
    monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_WEAVIATE", json.dumps({
        "conn_type": "weaviate", "host": url.hostname, "port": url.port,
        "extra": {"grpc_port": int(grpc), **({"api_key": key} if key else {})}}))
    alias = f"Tr{uuid.uuid4().hex[:10]}"
    docs = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, docs)
    svc = Services(RagopsSettings.from_env({
        "RAGOPS_PG_DSN": ragops_env.registry.dsn, "RAGOPS_SCHEMA": ragops_env.schema,
        "RAGOPS_ARTIFACT_ROOT": str(ragops_env.artifact_root), "WEAVIATE_URL": weaviate_server["WEAVIATE_URL"],
        "WEAVIATE_GRPC_PORT": str(grpc), "WEAVIATE_API_KEY": key}))
    assert svc.settings.vector_backend == "weaviate"
    try:
        params = IndexParams(alias=alias, sources=[{"type": "folder", "name": SOURCE, "path": str(docs),
                                                    "root": str(tmp_path)}],
                             chunk_size=96, chunk_overlap=16, smoke_sample=8, smoke_min_hit_rate=0.0)
        run_pipeline(svc, params, "r1", embedder=embedder)
        artifacts = ragops_env.artifacts()
        folder = reversing_ltr(artifacts.local_path("models/reranker/broken"))
        broken = register_candidate(ragops_env.registry, artifacts.uri("models/reranker/broken"),
                                    model_dir_hash(folder), name="reranker")
        promote(ragops_env.registry, broken.id, None, "a broken live reranker for the test")
        chunks = collection_chunks(svc, alias)
        rows = [{"query": " ".join(r["text"].split()[4:12]), "chunk_id": cid} for cid, r in sorted(chunks.rows.items())
                if len(r["text"].split()) >= 12]
        labels = tmp_path / "labels.jsonl"
        labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
        yield {"alias": alias, "broken": broken, "labels": labels, "rows": len(rows),
               "collection": svc.store.get_alias(alias)}
    finally:
        try:
            svc.store.delete_alias(alias)
            for name in svc.store.list_collections(prefix=f"{alias}_"):
                svc.store.delete_collection(name)
        finally:
            svc.close()


def test_ltr_reranker_trains_and_promotes_on_weaviate(ragops_env, weaviate_corpus):
    registry = ragops_env.registry
    conf = CONF | {"alias": weaviate_corpus["alias"], "labels_source": str(weaviate_corpus["labels"]),
                   "labels_merge": "none"}
    run = run_dag("rag_train_reranker", conf)
    states = task_states(run)
    assert run.state == "success", states
    summary = xcom(run, "close_run")
    assert summary["collection"] == weaviate_corpus["collection"]
    assert summary["imported"]["rows"] == weaviate_corpus["rows"]
    assert summary["mined"]["positives"] > 0 and summary["mined"]["negatives"] > 0
    assert summary["ndcg@10"]["candidate"] > summary["ndcg@10"]["live"]
    assert summary["decision"] == "promoted" and summary["promoted"] is True, summary["reasons"]
    live = registry.in_stage("model", "reranker", "production")
    assert live.id != weaviate_corpus["broken"].id
    assert registry.get_artifact(weaviate_corpus["broken"].id).stage == "archived"
    assert reranker_asset_events(run.run_id) == [{"model_id": f"reranker:v{live.version}", "artifact_id": live.id,
                                                  "hash": live.content_hash[:12], "rollback": False}]
    # The run used the real server, recorded as such: no embedded-store fallback (local files are one).
    fallbacks = {fb["service"] for fb in registry.get_run(f"rag_train_reranker/{run.run_id}")["fallbacks"]}
    assert "object storage" in fallbacks and "Weaviate" not in fallbacks, fallbacks
