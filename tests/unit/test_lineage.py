from __future__ import annotations

import pytest

from ragops.lineage import Registry


def test_migrate_is_idempotent(registry):
    assert registry.migrate() == registry.migrate()


def test_artifact_upsert_keeps_version_and_merges(registry):
    run = registry.start_run("rag_index", "r1", {"alias": "Docs"})
    first = registry.record_artifact("corpus", "docs", "h1", "/a", params={"n": 1}, run_key=run)
    again = registry.record_artifact("corpus", "docs", "h1", "/a", metrics={"docs": 3}, run_key=run)
    second = registry.record_artifact("corpus", "docs", "h2", "/b", run_key=run)
    assert (first.id, first.version) == (again.id, again.version) == (first.id, 1)
    assert again.params == {"n": 1} and again.metrics == {"docs": 3}
    assert second.version == 2
    assert [a.version for a in registry.list_artifacts("corpus", "docs")] == [1, 2]


def test_secrets_never_reach_records(registry):
    run = registry.start_run("d", "r", {"api_key": "sk-live-123", "dsn": "postgresql://u:hunter2@h/db"})
    art = registry.record_artifact("model", "m", "h", "/m", params={"token": "abc"}, run_key=run)
    registry.record_alert(run, "error", "t", "m", {"password": "pw"})
    stored = str(registry.get_run(run)) + str(art.params) + str(registry.alerts(run))
    for secret in ("sk-live-123", "hunter2", "abc", "pw'"):
        assert secret not in stored


def test_edges_and_ancestors(registry):
    corpus = registry.record_artifact("corpus", "d", "c", "/c")
    chunks = registry.record_artifact("chunks", "d", "k", "/k", parents=[(corpus.id, "chunked_from")])
    coll = registry.record_artifact("collection", "D", "v", "D_v1", parents=[(chunks.id, "embedded_from")])
    registry.record_artifact("collection", "D", "v", "D_v1", parents=[(chunks.id, "embedded_from")])
    ancestors = registry.ancestors(coll.id)
    assert [(a["kind"], a["depth"]) for a in ancestors] == [("chunks", 1), ("corpus", 2)]


def test_alias_swap_records_history_once(registry):
    a = registry.record_artifact("collection", "D", "1", "D_1")
    b = registry.record_artifact("collection", "D", "2", "D_2")
    assert registry.set_alias("collection", "D", a.id, reason="first") is None
    assert registry.set_alias("collection", "D", b.id, reason="gate passed") == a.id
    assert registry.set_alias("collection", "D", b.id, reason="retry") == b.id
    assert registry.get_alias("collection", "D").id == b.id
    assert [(h["from_artifact_id"], h["to_artifact_id"]) for h in registry.alias_history("collection", "D")] == [
        (None, a.id), (a.id, b.id)]


def test_exclusive_stage_archives_previous_production(registry):
    m1 = registry.record_artifact("model", "emb", "1", "/m1")
    m2 = registry.record_artifact("model", "emb", "2", "/m2")
    registry.set_stage(m1.id, "production", reason="first", exclusive=True)
    assert registry.set_stage(m2.id, "production", reason="better", exclusive=True) == [m1.id]
    assert registry.in_stage("model", "emb", "production").id == m2.id
    assert registry.get_artifact(m1.id).stage == "archived"
    assert [h["to_stage"] for h in registry.stage_history(m1.id)] == ["production", "archived"]
    live = {(r["alias_kind"], r["name"]) for r in registry.live()}
    assert ("stage", "emb") in live


def test_finish_unknown_run_is_an_error(registry):
    with pytest.raises(KeyError, match="never started"):
        registry.finish_run("nope/none", "success")


def test_schema_name_is_validated(pg_dsn):
    with pytest.raises(ValueError, match="schema"):
        Registry(pg_dsn, schema="bad; drop table x")
