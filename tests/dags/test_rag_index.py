"""Tier 3: whole rag_index runs through dag.test(), on the fixture corpus, real Postgres, LanceDB."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import run_dag, task_states, xcom

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun


@pytest.fixture
def corpus(tmp_path) -> Path:
    target = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, target)
    return target


def conf(corpus: Path, **overrides) -> dict:
    base = {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(corpus.parent)}],
            "alias": "TestDocs", "chunk_size": 96, "chunk_overlap": 16, "keep_versions": 2,
            "smoke_sample": 10, "smoke_min_hit_rate": 0.7}
    return base | overrides


def collection_ids(store, name) -> set[str]:
    return {o.id for o in store.iter_objects(name)}


def test_full_then_incremental_run(index_env, corpus):
    store, registry, alias = index_env.store(), index_env.registry, index_env.alias

    first = run_dag("rag_index", conf(corpus, alias=alias, mode="full"))
    assert first.state == "success", task_states(first)
    v1 = store.get_alias(alias)
    chunks_v1 = registry.find_artifact("chunks", alias)
    assert v1 and store.count(v1) == chunks_v1.metrics["chunks"] > 0
    summary = xcom(first, "close_run")
    assert summary["live"]["uri"] == v1 and summary["plan"]["to_embed"] == chunks_v1.metrics["chunks"]
    assert registry.get_run(summary["run_key"])["status"] == "success"
    ancestors = registry.ancestors(summary["live"]["id"])
    assert sorted((a["depth"], a["kind"], a["relation"]) for a in ancestors) == [
        (1, "chunks", "embedded_from"), (1, "model", "embedded_with"), (2, "corpus", "chunked_from")]

    # One document added, one changed, one deleted.
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    deleted, changed = files[0], files[1]
    deleted_id = f"fixture:{deleted.relative_to(corpus).as_posix()}"
    deleted.unlink()
    changed.write_text(changed.read_text() + "\n\nA new closing paragraph about vacuum freezing thresholds.\n")
    (corpus / "added.md").write_text("# Replication slots\n\nA replication slot keeps WAL until every consumer "
                                     "has received it, so a stalled consumer can fill the disk.\n")

    second = run_dag("rag_index", conf(corpus, alias=alias))
    assert second.state == "success", task_states(second)
    v2 = store.get_alias(alias)
    assert v2 != v1
    plan = xcom(second, "plan")["stats"]
    chunks_v2 = registry.find_artifact("chunks", alias)
    assert chunks_v2.version == 2
    assert plan["copied"] > 0 and 0 < plan["to_embed"] < chunks_v2.metrics["chunks"]
    assert plan["copied"] + plan["to_embed"] == chunks_v2.metrics["chunks"] == store.count(v2)
    docs_v2 = {o.properties["doc_id"] for o in store.iter_objects(v2)}
    assert deleted_id not in docs_v2 and "fixture:added.md" in docs_v2
    # Unchanged chunks kept their vectors exactly.
    kept = sorted(collection_ids(store, v1) & collection_ids(store, v2))[:5]
    assert kept
    old = {o.id: list(o.vector) for o in store.fetch(v1, kept)}
    new = {o.id: list(o.vector) for o in store.fetch(v2, kept)}
    assert old == new
    history = registry.alias_history("collection", alias)
    assert [h["reason"] for h in history] == ["gate passed", "gate passed"]

    # Nothing changed: the nightly run finds the live collection and does no embedding work.
    third = run_dag("rag_index", conf(corpus, alias=alias))
    assert third.state == "success", task_states(third)
    assert store.get_alias(alias) == v2
    assert xcom(third, "plan")["action"] == "noop"
    assert xcom(third, "chunk")["reused"] is True and xcom(second, "chunk")["reused"] is False
    states = task_states(third)
    assert states["swap_alias"] == "skipped" and states["gate"] == "skipped"


def test_data_quality_failure_leaves_live_alias_untouched(index_env, corpus):
    store, registry, alias = index_env.store(), index_env.registry, index_env.alias
    assert run_dag("rag_index", conf(corpus, alias=alias)).state == "success"
    live = store.get_alias(alias)
    for i in range(6):  # the same page six times: duplicates far above the allowed ratio
        (corpus / f"copy{i}.md").write_text("# Copied page\n\nThe same paragraph, copied again and again.\n")
    failed = run_dag("rag_index", conf(corpus, alias=alias, max_duplicate_ratio=0.05))
    assert failed.state == "failed"
    states = task_states(failed)
    assert states["validate_documents"] == "failed"
    assert states["swap_alias"] == "upstream_failed"
    assert store.get_alias(alias) == live
    run_key = f"rag_index/{failed.run_id}"
    results = registry.dq_results(run_key)
    assert [(r["suite"], r["success"]) for r in results] == [("documents", False)]
    alerts = registry.alerts(run_key)
    dq_alerts = [a for a in alerts if a["title"].startswith("data quality failed")]
    assert len(dq_alerts) == 1 and dq_alerts[0]["channels"] == ["log"]  # no Slack/SMTP connection here
    assert "duplicated documents" in dq_alerts[0]["message"]
    assert registry.get_run(run_key)["status"] == "failed"


def test_crash_mid_write_then_retry_duplicates_nothing(ragops_env, corpus, monkeypatch):
    from ragops.stores.lancedb_store import LanceDBStore

    real_upsert = LanceDBStore.upsert
    calls = {"n": 0}

    def crash_after_first_batch(self, name, objects):
        calls["n"] += 1
        if calls["n"] == 2:  # the first batch is written, then the worker dies
            raise ConnectionError("simulated crash while writing")
        return real_upsert(self, name, objects)

    monkeypatch.setattr(LanceDBStore, "upsert", crash_after_first_batch)
    run = run_dag("rag_index", conf(corpus, batch_size=8, mode="full"))
    assert run.state == "success", task_states(run)  # Airflow retried the shard
    store, registry = ragops_env.store(), ragops_env.registry
    live = store.get_alias("TestDocs")
    chunks = registry.find_artifact("chunks", "TestDocs")
    ids = [o.id for o in store.iter_objects(live)]
    assert len(ids) == len(set(ids)) == chunks.metrics["chunks"]
    collections = registry.list_artifacts("collection", "TestDocs")
    assert len(collections) == 1 and collections[0].status == "live"
    assert len(registry.alias_history("collection", "TestDocs")) == 1


def test_rollback_is_one_trigger(index_env, corpus):
    store, registry, alias = index_env.store(), index_env.registry, index_env.alias
    assert run_dag("rag_index", conf(corpus, alias=alias)).state == "success"
    v1 = store.get_alias(alias)
    (corpus / "extra.md").write_text("# Extra\n\nCheckpoints flush dirty buffers to disk at intervals.\n")
    assert run_dag("rag_index", conf(corpus, alias=alias)).state == "success"
    assert store.get_alias(alias) != v1
    run = run_dag("rag_collection_rollback", {"alias": alias, "version": 1})
    assert run.state == "success", task_states(run)
    assert store.get_alias(alias) == v1
    assert registry.alias_history("collection", alias)[-1]["reason"] == "rollback to v1"


def asset_events(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == uri).all())
        return [dict(e.extra or {}) for e in rows]


def test_the_swap_emits_the_asset_of_the_alias_it_moved(ragops_env, corpus):
    import uuid

    alias = f"Other{uuid.uuid4().hex[:8]}"
    run = run_dag("rag_index", conf(corpus, alias=alias))
    assert run.state == "success", task_states(run)
    live = ragops_env.store().get_alias(alias)
    events = asset_events(f"ragops://collection/{alias}")
    assert [e["collection"] for e in events] == [live]
    assert asset_events("ragops://collection/TestDocs") == [] or alias != "TestDocs"
    # A rollback to the version that is live moves nothing and emits nothing.
    version = ragops_env.registry.get_alias("collection", alias).version
    again = run_dag("rag_collection_rollback", {"alias": alias, "version": version})
    assert again.state == "success", task_states(again)
    assert task_states(again)["rollback"] == "skipped"
    assert len(asset_events(f"ragops://collection/{alias}")) == 1
    assert ragops_env.registry.get_run(f"rag_collection_rollback/{again.run_id}")["status"] == "noop"


def test_bad_input_fails_at_once_without_retries(ragops_env, tmp_path):
    from airflow.utils.session import create_session

    missing = tmp_path / "no-such-folder"
    run = run_dag("rag_index", conf(missing))
    assert run.state == "failed"
    with create_session() as session:
        load = next(ti for ti in run.get_task_instances(session=session) if ti.task_id == "load_documents")
        assert str(load.state) == "failed" and load.try_number == 1  # deterministic: no retry
    record = ragops_env.registry.get_run(f"rag_index/{run.run_id}")
    assert record["status"] == "failed" and record["summary"]["failed_tasks"] == ["load_documents"]
    alerts = ragops_env.registry.alerts(record["run_key"])
    assert [a["title"] for a in alerts] == ["rag_index.load_documents failed"]
    assert "no-such-folder" in alerts[0]["message"]
