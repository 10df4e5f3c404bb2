from __future__ import annotations

import json
import uuid

import pytest

from ragops.errors import SchemaBehind
from ragops.lineage import MIGRATIONS, Registry


def test_migrate_brings_a_schema_forward_once(pg_dsn):
    reg = Registry(pg_dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    try:
        assert reg.schema_version() == 0
        with pytest.raises(SchemaBehind, match="at version 0, this code needs"):
            reg.require_current()
        # A deployment at version 1 (as the first release left it) is brought forward.
        with reg.transaction() as cur:
            cur.execute(f'CREATE SCHEMA "{reg.schema}"')
            cur.execute(f'SET search_path TO "{reg.schema}"')
            cur.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz"
                        " NOT NULL DEFAULT now())")
            cur.execute(MIGRATIONS[0])
            cur.execute("INSERT INTO schema_migrations (version) VALUES (1)")
        assert reg.schema_version() == 1
        with pytest.raises(SchemaBehind, match="python -m ragops migrate"):
            reg.require_current()
        assert reg.migrate() == len(MIGRATIONS) > 1
        assert reg.migrate() == len(MIGRATIONS)  # a second run applies nothing
        with reg.transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM schema_migrations")
            assert cur.fetchone()["n"] == len(MIGRATIONS)
        reg.require_current()
    finally:
        reg.drop()


def test_alias_compare_and_swap_refuses_a_moved_alias(registry):
    from ragops.errors import AliasMoved

    a = registry.record_artifact("collection", "D", "1", "D_1")
    b = registry.record_artifact("collection", "D", "2", "D_2")
    c = registry.record_artifact("collection", "D", "3", "D_3")
    registry.set_alias("collection", "D", a.id, reason="first", expected=None)
    registry.set_alias("collection", "D", c.id, reason="rollback meanwhile")
    with pytest.raises(AliasMoved, match=f"points at artifact {c.id}, not {a.id}"):
        registry.set_alias("collection", "D", b.id, reason="gate passed", expected=a.id)
    assert registry.get_alias("collection", "D").id == c.id


def test_alias_lock_serialises_holders(registry):
    import threading
    import time

    order: list[str] = []

    def hold(name: str, seconds: float) -> None:
        with registry.alias_lock("D"):
            order.append(f"{name}+")
            time.sleep(seconds)
            order.append(f"{name}-")

    first = threading.Thread(target=hold, args=("a", 0.5))
    first.start()
    time.sleep(0.1)
    hold("b", 0)
    first.join()
    assert order == ["a+", "a-", "b+", "b-"]


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


def test_a_least_privilege_role_runs_tasks_without_migrating(registry):
    """Tasks only read the schema version, so a role that may write rows but create nothing works."""
    from urllib.parse import urlparse, urlunparse

    import psycopg2

    from ragops.config import RagopsSettings
    from ragops.runs import close_run, open_run
    from ragops.services import Services

    url = urlparse(registry.dsn)
    admin_dsn = urlunparse(url._replace(netloc=f"postgres@{url.hostname}:{url.port}"))
    role = f"task_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(admin_dsn)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no superuser on this Postgres to create a role: {exc}")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'pw' NOCREATEDB NOCREATEROLE")
        cur.execute(f"GRANT USAGE ON SCHEMA {registry.schema} TO {role}")
        cur.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA {registry.schema} TO {role}")
        cur.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {registry.schema} TO {role}")
    try:
        dsn = urlunparse(url._replace(netloc=f"{role}:pw@{url.hostname}:{url.port}"))
        svc = Services(RagopsSettings.from_env({"RAGOPS_PG_DSN": dsn, "RAGOPS_SCHEMA": registry.schema}))
        run = open_run(svc, "rag_index", "least-privilege", {"alias": "Docs"})
        svc.registry.record_artifact("corpus", "Docs", "h", "/c", run_key=run.run_key)
        assert close_run(svc, run, {"documents": 1}) == "success"
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            Registry(dsn, f"{registry.schema}_new").migrate()  # creating is the migrate job's, not a task's
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP OWNED BY {role}")
            cur.execute(f"DROP ROLE {role}")
        admin.close()


def test_a_nul_character_in_a_record_is_stored_not_refused(registry):
    """jsonb refuses U+0000; a DQ failure example quoting a document that holds one (a SciFact
    abstract does) must not fail the run that records it."""
    run = registry.start_run("rag_index", "nul-run")
    registry.record_dq(run, "documents", "corpus", False, {"evaluated": 1},
                       [{"doc_id": "d1", "text": "PHENYLALANINE\x00TOXICITY"}])
    (row,) = registry.dq_results(run)
    assert "PHENYLALANINE\ufffdTOXICITY" in json.dumps(row, ensure_ascii=False)
