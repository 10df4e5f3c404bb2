"""The lifecycle on a deployment-shaped Airflow: every run triggered through the REST API
(authenticated, with a conf) and polled to its end, its tasks executed by two Celery workers
that share nothing but the servers (Postgres, MinIO, Weaviate).

In CI: index (a deliberately broken live model, stored on MinIO: every worker fills its own cache
from there) -> synthetic data -> a model change (rag_model_rollback to the base model) -> index
again with the new production model -> rag_collection_rollback; then the registry, the XCom
summaries, MinIO and Weaviate must agree.

Then the finetune step (``test_finetune_promotes``): with the broken model live, rag_finetune_embeddings
trains in a local process on one worker, reading and writing MinIO with plain ``s3://bucket/...``
URIs and the connection's credentials in that process's environment only; the gate promotes and
rag_index re-embeds with the promoted model.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import E2E, E2E_ROOT
from tests.e2e.topology import WORKERS
from tests.unit.training_data import save_broken_model

pytestmark = pytest.mark.e2e
HOSTS = set(WORKERS.values())


def _hosts(e2e: E2E, dag_id: str, run_id: str) -> dict[str, str]:
    return {f"{ti['task_id']}[{ti['map_index']}]": ti["hostname"]
            for ti in e2e.api.task_instances(dag_id, run_id) if ti["state"] == "success"}


def _all_xcoms(e2e: E2E) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for dag_id, run_id in e2e.triggered:
        for entry in e2e.api.xcom_entries(dag_id, run_id):
            key = f"{dag_id}/{run_id}/{entry['task_id']}[{entry['map_index']}]/{entry['key']}"
            values[key] = e2e.api.xcom(dag_id, run_id, entry["task_id"], entry["key"], entry["map_index"])
    return values


def _seed_broken_model(e2e: E2E, registry: Any, base_model_path: str) -> Any:
    """A broken live model in object storage, registered with its real content hash: every worker
    downloads it into its own cache and checks the hash."""
    from ragops.models import model_dir_hash, promote, register_candidate

    with tempfile.TemporaryDirectory() as tmp:
        local = save_broken_model(base_model_path, Path(tmp) / "broken")
        uri = e2e.artifacts().upload_dir(local, "models/embeddings/broken")
        broken = register_candidate(registry, uri, model_dir_hash(local))
    promote(registry, broken.id, None, "a broken live model, for the test")
    return broken


def _index_conf(e2e: E2E, **overrides: Any) -> dict[str, Any]:
    sources = [{"type": "folder", "name": "fixture", "path": str(e2e.corpus), "root": str(e2e.corpus.parent)}]
    return {"sources": sources, "alias": e2e.alias, "chunk_size": 96, "chunk_overlap": 16, "shard_size": 12,
            "smoke_sample": 10, **overrides}


def _cached(e2e: E2E, host: str) -> list[str]:
    return sorted(p.name for p in e2e.hosts[host].model_cache.iterdir() if not p.name.startswith("."))


def test_the_lifecycle_on_two_celery_workers(cluster: E2E, base_model_path):
    from ragops.models import register_base_model

    e2e = cluster
    registry, store = e2e.registry(), e2e.store()
    evidence: dict[str, Any] = {}
    try:
        base = register_base_model(registry)
        broken = _seed_broken_model(e2e, registry, base_model_path)

        # 1. index with the broken live model: the tasks of this one run land on both workers, and
        #    each worker that embedded a shard filled its own cache from MinIO
        first = e2e.run_dag("rag_index", _index_conf(e2e, smoke_min_hit_rate=0.0))  # broken: no smoke test
        hosts = _hosts(e2e, "rag_index", first["dag_run_id"])
        evidence["index1_hosts"] = hosts
        assert set(hosts.values()) == HOSTS, f"one run's tasks should land on both workers: {hosts}"
        v1 = store.get_alias(e2e.alias)
        assert store.collection_metadata(v1)["model_id"] == f"embeddings:v{broken.version}"
        broken_dir = f"embeddings-v{broken.version}-{broken.content_hash[:12]}"
        for name in {h for t, h in hosts.items() if t.startswith("embed_shard[")}:
            assert broken_dir in _cached(e2e, name), (name, _cached(e2e, name))

        # 2. synthetic data from the live collection (offline generator)
        e2e.run_dag("rag_synthetic_data", {"alias": e2e.alias, "sample_size": 60, "questions_per_chunk": 2,
                                           "generator": "offline", "test_ratio": 0.3, "max_doc_share": 0.5})
        dataset = registry.list_artifacts("dataset", "synthetic-queries", status="usable")[-1]
        assert dataset.uri.startswith(e2e.artifact_root + "/")

        # 3. a model change: production back to the base model (emits the model asset)
        model_rb = e2e.run_dag("rag_model_rollback", {"to_version": base.version, "reason": "e2e: leave the broken model"})
        production = registry.in_stage("model", "embeddings", "production")
        assert production.id == base.id
        evidence["model_rollback"] = e2e.api.xcom("rag_model_rollback", model_rb["dag_run_id"], "close_run")

        # 4. index again: everything re-embedded with the new production model, in a new version
        second = e2e.run_dag("rag_index", _index_conf(e2e, smoke_min_hit_rate=0.7))
        evidence["index2_hosts"] = _hosts(e2e, "rag_index", second["dag_run_id"])
        v2 = store.get_alias(e2e.alias)
        assert v2 != v1
        meta = store.collection_metadata(v2)
        assert meta["model_hash"] == production.content_hash, meta
        live = registry.get_alias("collection", e2e.alias)
        assert live.uri == v2, (live, v2)  # a collection artifact: name = alias, uri = collection
        assert [p.id for p, rel in registry.parents(live.id) if rel == "embedded_with"] == [production.id]
        index_summary = e2e.api.xcom("rag_index", second["dag_run_id"], "close_run")
        evidence["index2_summary"] = index_summary
        assert index_summary["plan"]["copied"] == 0 and index_summary["plan"]["to_embed"] == store.count(v2)
        assert index_summary["live"]["id"] == live.id

        # 5. the collection back to version 1
        rolled = e2e.run_dag("rag_collection_rollback", {"alias": e2e.alias, "version": 1})
        assert store.get_alias(e2e.alias) == v1
        assert registry.alias_history("collection", e2e.alias)[-1]["reason"] == "rollback to v1"
        evidence["collection_rollback"] = e2e.api.xcom("rag_collection_rollback", rolled["dag_run_id"], "close_run")

        _assert_agreement(e2e, registry, store, evidence)
        assert registry.get_alias("collection", e2e.alias).uri == store.get_alias(e2e.alias) == v1
        # the asset events the runs emitted (recorded; no asset-triggered runs here)
        sources = {(ev["source_dag_id"], ev["uri"]) for ev in e2e.api.asset_events()}
        evidence["asset_events"] = sorted(sources)
        assert {dag for dag, _ in sources} >= {"rag_index", "rag_synthetic_data", "rag_model_rollback",
                                                "rag_collection_rollback"}, sources
    finally:
        (E2E_ROOT / "evidence.json").write_text(json.dumps(evidence, indent=1, default=str))
        store.close()


def _assert_agreement(e2e: E2E, registry: Any, store: Any, evidence: dict[str, Any]) -> None:
    """The lineage registry, the XCom summaries, MinIO and Weaviate agree; no worker path in XCom."""
    xcoms = _all_xcoms(e2e)
    evidence["xcom_keys"] = sorted(xcoms)
    for dag_id, run_id in e2e.triggered:
        row = registry.get_run(f"{dag_id}/{run_id}") or registry.get_run(run_id)
        assert row is not None, (dag_id, run_id)
        assert row["status"] == "success", row
        summary = xcoms[f"{dag_id}/{run_id}/close_run[-1]/return_value"]
        assert summary["run_key"] == row["run_key"] and summary["status"] == row["status"], (summary, row)
        shared = set(summary) & set(row["summary"])
        assert len(shared) >= len(row["summary"]) - 1, (sorted(summary), sorted(row["summary"]))
        assert {k: summary[k] for k in shared} == {k: row["summary"][k] for k in shared}, (dag_id, run_id)
    keys = e2e.s3_keys()
    evidence["s3_top"] = sorted({k.split("/")[0] for k in keys})
    for kind in ("corpus", "chunks", "dataset", "model", "evaluation"):
        for art in registry.list_artifacts(kind):
            if art.uri.startswith("package://"):
                continue
            assert art.uri.startswith(e2e.artifact_root + "/"), art
            rel = art.uri.removeprefix(e2e.artifact_root + "/")
            assert any(k == rel or k.startswith(rel + "/") for k in keys), (kind, art.uri)
    collections = registry.list_artifacts("collection")
    in_weaviate = set(store.list_collections(prefix=f"{e2e.alias}_"))
    kept = {c.uri for c in collections if c.status != "deleted" and not c.status.startswith("failed")}
    evidence["collections"] = {"registry": [c.summary() for c in collections], "weaviate": sorted(in_weaviate)}
    assert kept and kept <= in_weaviate, evidence["collections"]
    text = json.dumps(xcoms)
    for host in e2e.hosts.values():
        for root in host.roots:
            assert root not in text, f"a worker-local path ({root}) is in XCom"
    assert "/tmp/ragops-models" not in text and str(E2E_ROOT / "hosts") not in text


def test_finetune_promotes(cluster: E2E):
    """After the lifecycle test: the broken model live again, finetune, gate, promote, re-index."""
    e2e = cluster
    registry, store = e2e.registry(), e2e.store()
    try:
        broken = next(a for a in registry.list_artifacts("model", "embeddings") if a.uri.endswith("/broken"))
        e2e.run_dag("rag_model_rollback", {"to_version": broken.version, "reason": "e2e: a broken live model"})
        finetune = e2e.run_dag("rag_finetune_embeddings", {
            "base_model": "base", "epochs": 1, "max_steps": 4, "batch_size": 8, "checkpoint_steps": 2,
            "matryoshka_dims": [384, 128]})
        summary = e2e.api.xcom("rag_finetune_embeddings", finetune["dag_run_id"], "close_run")
        assert summary["decision"] == "promoted", summary.get("reasons")
        production = registry.in_stage("model", "embeddings", "production")
        assert production.uri.startswith(e2e.artifact_root + "/")
        e2e.run_dag("rag_index", _index_conf(e2e, smoke_min_hit_rate=0.7))
        meta = store.collection_metadata(store.get_alias(e2e.alias))
        assert meta["model_id"] == f"embeddings:v{production.version}"
        assert meta["model_hash"] == production.content_hash
        _assert_agreement(e2e, registry, store, {})
    finally:
        store.close()
