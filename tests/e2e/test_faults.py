"""Faults injected into real runs on the deployment-shaped cluster (issue 9), each followed by
Airflow's retry, then the end state checked from every side: the lineage registry, Weaviate,
MinIO, Airflow's task instances and the LLM server's request log.

The cluster is the tier's one session cluster (tests/e2e/conftest.py) on backing servers of its own
(tests/e2e/backing.py): the Postgres, Weaviate and MinIO restarted here serve no other session.
Faults, combined into two runs to keep the file short:

- ``rag_index``: a worker SIGKILLed mid-embed (a shard's objects half written: the collection's
  count seen growing), Weaviate restarted while a shard upserts, and the worker running
  ``swap_alias`` SIGKILLed between Weaviate's alias move and the registry write (the test holds a
  lock on the registry's ``aliases`` table, so the write blocks right after the store's alias
  moved; no code hook);
- ``rag_synthetic_data`` with the LLM generator: a 429/timeout storm from the LLM endpoint, Postgres
  (lineage registry and Airflow's metadata DB: one cluster) restarted while answers arrive, and the
  dataset upload cut: the workers' relay to MinIO (tests/e2e/upload_gate.py) holds every request
  once the dataset's "incomplete" manifest is stored, the uploading worker is SIGKILLed there,
  then MinIO is stopped and started again.

A killed worker is started again at once (a supervisor's restart); its task is found by its
missing heartbeat and retried. Tasks' retry delay is seconds here (the cluster's task policy).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cluster import wait_for
from tests.e2e.conftest import E2E, E2E_ROOT
from tests.e2e.topology import WORKERS

pytestmark = pytest.mark.e2e

PG_DOCS = Path("/usr/share/doc/postgresql-doc-15/html")
# three manual pages of ~14 kB (~70 chunks of 96 tokens, three shards): on 2 shared cores each
# shard upserts for many seconds in batches of 4, a window for the kill and the restart
PAGES = ("sql-createopclass.html", "indexes-types.html", "wal-reliability.html")
SERVICE_OF = {host: service for service, host in WORKERS.items()}
EVIDENCE = E2E_ROOT / "faults-evidence.json"
RUN_TIMEOUT = 900  # a run's remaining tasks after the last fault, on a loaded 2-core machine
STEP_TIMEOUT = 600


def _fault_alias(e2e: E2E) -> str:
    # under the session alias' prefix: the session's cleanup removes its collections too
    return f"{e2e.alias}_faults"


def _log(evidence: dict[str, Any], key: str, value: Any) -> None:
    evidence.setdefault("timeline", []).append([round(time.monotonic() - evidence["t0"], 1), key, value])
    EVIDENCE.write_text(json.dumps(evidence, indent=1, default=str))


def _trigger(e2e: E2E, dag_id: str, conf: dict[str, Any], tag: str) -> str:
    run_id = f"faults__{tag}_{e2e.run_id}"
    e2e.api.trigger(dag_id, run_id, conf)
    return run_id


def _tis(e2e: E2E, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return e2e.api.task_instances(dag_id, run_id)


def _running(e2e: E2E, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    return next((ti for ti in _tis(e2e, dag_id, run_id)
                 if ti["task_id"] == task_id and ti["state"] == "running" and ti.get("hostname") in SERVICE_OF), None)


def _until(what: str, check: Callable[[], Any], e2e: E2E, timeout: float = STEP_TIMEOUT,
           interval: float = 0.5) -> Any:
    """Polls ``check`` while reviving any component that died (a supervisor's restart)."""
    def guarded() -> Any:
        revived = e2e.cluster.revive()
        if revived:
            e2e.revived.extend(revived)  # type: ignore[attr-defined]
        return check()

    return wait_for(what, guarded, timeout, interval=interval)


def _finish(e2e: E2E, dag_id: str, run_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        run = e2e.api.dag_run(dag_id, run_id)
        return run if run["state"] in {"success", "failed"} else None

    return _until(f"{dag_id} {run_id} to end", done, e2e, timeout=RUN_TIMEOUT, interval=2)


def _kill_worker(e2e: E2E, ti: dict[str, Any], evidence: dict[str, Any], why: str) -> None:
    service = SERVICE_OF[ti["hostname"]]
    e2e.cluster.kill(service)
    _log(evidence, f"SIGKILL {service}", {"why": why, "task": ti["task_id"], "map_index": ti["map_index"],
                                          "try": ti["try_number"]})
    e2e.cluster.restart(service)


def _tries(e2e: E2E, dag_id: str, run_id: str) -> dict[str, int]:
    return {f"{ti['task_id']}[{ti['map_index']}]": ti["try_number"] for ti in _tis(e2e, dag_id, run_id)}


def _assert_run_truth(e2e: E2E, registry: Any, dag_id: str, run_id: str, state: str) -> None:
    """The lineage run is closed with Airflow's outcome; a failed run has exactly one alert per
    failed task, a successful one (whatever its retries) none."""
    row = registry.get_run(f"{dag_id}/{run_id}")
    assert row is not None and row["status"] == ("success" if state == "success" else "failed"), (row, state)
    alerts = registry.alerts(run_key=f"{dag_id}/{run_id}")
    failed = [ti for ti in _tis(e2e, dag_id, run_id) if ti["state"] == "failed" and ti["task_id"] != "close_run"]
    assert len(alerts) == len(failed), (alerts, failed)


def _assert_artifacts_whole(e2e: E2E, registry: Any) -> None:
    """No broken version: every artifact with a usable status is in MinIO, a folder one complete
    (its final manifest there, every file it lists present with its size)."""
    keys = set(e2e.s3_keys())
    artifacts = e2e.artifacts()
    for kind in ("corpus", "chunks", "dataset", "model", "evaluation"):
        for art in registry.list_artifacts(kind):
            if art.uri.startswith("package://") or art.status.startswith("failed") or art.status == "deleted":
                continue
            rel = art.uri.removeprefix(e2e.artifact_root + "/")
            if rel in keys:
                continue
            assert artifacts.dir_complete(rel), f"{kind} v{art.version} ({art.status}) is not whole: {art.uri}"


def _corpus(e2e: E2E) -> Path:
    folder = e2e.corpus.parent / "faults"
    folder.mkdir(parents=True, exist_ok=True)
    for page in PAGES:
        shutil.copy(PG_DOCS / page, folder / page)
    return folder


@pytest.fixture
def evidence() -> dict[str, Any]:
    if EVIDENCE.exists():
        data = json.loads(EVIDENCE.read_text())
        data["t0"] = time.monotonic() - (data.get("timeline") or [[0]])[-1][0]
        return data
    return {"t0": time.monotonic()}


def test_index_survives_a_killed_worker_a_weaviate_restart_and_a_kill_before_the_registry_write(
        cluster: E2E, evidence):
    import psycopg2

    e2e = cluster
    e2e.revived = []  # type: ignore[attr-defined]
    if not PG_DOCS.is_dir():
        pytest.skip(f"the demo corpus ({PG_DOCS}) is not installed: scripts/setup.sh installs postgresql-doc-15")
    alias, registry, store = _fault_alias(e2e), e2e.registry(), e2e.store()
    folder = _corpus(e2e)
    # Holds the registry's alias table: the run's registry write of the swap blocks behind it
    # (plain reads pass), after Weaviate's alias has moved.
    blocker = psycopg2.connect(e2e.pg_dsn, options=f"-c search_path={e2e.schema}")
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE aliases IN EXCLUSIVE MODE")
        conf = {"sources": [{"type": "folder", "name": "pgdocs", "path": str(folder), "root": str(folder.parent)}],
                "alias": alias, "chunk_size": 96, "chunk_overlap": 16, "shard_size": 25, "batch_size": 4,
                "smoke_sample": 10, "smoke_min_hit_rate": 0.2}
        run_id = _trigger(e2e, "rag_index", conf, "index")
        _log(evidence, "triggered", run_id)

        def planned() -> dict[str, Any] | None:
            done = any(ti["task_id"] == "plan" and ti["state"] == "success" for ti in _tis(e2e, "rag_index", run_id))
            return e2e.api.xcom("rag_index", run_id, "plan") if done else None

        plan = _until("the plan", planned, e2e)
        collection, expected = plan["collection"], plan["stats"]["to_embed"]
        _log(evidence, "planned", {"collection": collection, "to_embed": expected, "shards": len(plan["shards"])})

        # 1. SIGKILL the worker of a shard whose objects are being written
        def half_written() -> dict[str, Any] | None:
            ti = _running(e2e, "rag_index", run_id, "embed_shard")
            count = store.count(collection) if ti and store.collection_exists(collection) else 0
            return {"ti": ti, "count": count} if ti and 0 < count < expected else None

        seen = _until("a shard half written", half_written, e2e, interval=0.2)
        _kill_worker(e2e, seen["ti"], evidence, f"mid-embed: {seen['count']} of {expected} objects written")

        # 2. restart Weaviate while a shard upserts (the count still growing)
        def upserting() -> int | None:
            if not _running(e2e, "rag_index", run_id, "embed_shard"):
                return None
            before = store.count(collection)
            time.sleep(0.5)
            after = store.count(collection)
            return after if after > before else None

        count = _until("a shard upserting", upserting, e2e, interval=0.2)
        e2e.backing.stop_service("weaviate")
        _log(evidence, "weaviate stopped", {"objects": count})
        store.close()
        e2e.backing.start_service("weaviate")
        store = e2e.store()
        _log(evidence, "weaviate started", {"objects": store.count(collection)})

        # 3. Weaviate's alias moved, the registry write blocked: SIGKILL the worker in between
        def blocked_after_the_store_moved() -> dict[str, Any] | None:
            ti = _running(e2e, "rag_index", run_id, "swap_alias")
            if not ti or store.get_alias(alias) != collection:
                return None
            with psycopg2.connect(e2e.pg_dsn) as probe, probe.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                            " AND query ILIKE %s", ("%aliases%",))
                waiting = cur.fetchone()[0]
            return ti if waiting else None

        ti = _until("swap_alias blocked after the store's alias moved", blocked_after_the_store_moved, e2e)
        assert registry.get_alias("collection", alias) is None  # the registry has not recorded it
        _kill_worker(e2e, ti, evidence, "Weaviate's alias moved, the registry write blocked")
    finally:
        blocker.rollback()
        blocker.close()
    _log(evidence, "registry lock released", None)

    run = _finish(e2e, "rag_index", run_id)
    tries = _tries(e2e, "rag_index", run_id)
    _log(evidence, "index run ended", {"state": run["state"], "tries": tries, "revived": e2e.revived})
    try:
        assert run["state"] == "success", e2e.describe("rag_index", run_id)
        assert tries["swap_alias[-1]"] >= 2 and max(v for k, v in tries.items() if k.startswith("embed_shard")) >= 2
        # no duplicate objects: the collection holds each chunk once
        art = registry.get_alias("collection", alias)
        assert art is not None and art.uri == collection == store.get_alias(alias)
        chunks = e2e.api.xcom("rag_index", run_id, "chunk")["chunks"]
        assert store.count(collection) == chunks == art.metrics["chunks"], (store.count(collection), chunks)
        assert art.status == "live"
        # the retry of swap_alias recorded the move and emitted the collection's asset event
        history = registry.alias_history("collection", alias)
        assert [h["to_artifact_id"] for h in history] == [art.id], history
        events = [ev for ev in e2e.api.asset_events() if ev["source_run_id"] == run_id]
        assert any(ev["uri"].endswith(alias) for ev in events), events
        _assert_run_truth(e2e, registry, "rag_index", run_id, run["state"])
        _assert_artifacts_whole(e2e, registry)
        _log(evidence, "index checks passed", {"objects": store.count(collection), "chunks": chunks,
                                               "asset_events": [ev["uri"] for ev in events]})
    finally:
        store.close()


def test_synthetic_data_survives_an_llm_storm_a_postgres_restart_and_a_cut_upload(cluster: E2E, evidence):
    e2e = cluster
    e2e.revived = []  # type: ignore[attr-defined]
    alias, registry, store = _fault_alias(e2e), e2e.registry(), e2e.store()
    try:
        if store.get_alias(alias) is None:
            pytest.skip("needs the collection the index fault test makes live")
    finally:
        store.close()
    llm = e2e.llm
    llm.latency_s = 0.3  # answers take a moment: the Postgres restart lands while they arrive
    llm.storm(6, retry_after="1", stall_s=3)  # the client times out after 2 s (the connection's extra)
    conf = {"alias": alias, "generator": "llm", "sample_size": 24, "questions_per_chunk": 2, "concurrency": 2,
            "test_ratio": 0.3, "max_doc_share": 0.5}
    run_id = _trigger(e2e, "rag_synthetic_data", conf, "synthetic")
    _log(evidence, "triggered", run_id)

    # 1. the storm (from the first LLM request on), then Postgres restarted while answers arrive
    _until("the storm to pass and answers to flow", lambda: llm.answered_total >= 4, e2e)
    _log(evidence, "storm passed", {"refused": dict(llm.storm_replies), "answered": llm.answered_total})
    took = e2e.backing.restart_postgres()
    _log(evidence, "postgres restarted", {"seconds": round(took, 1), "answered": llm.answered_total})

    # 2. the dataset upload cut: the workers' relay to MinIO holds every request once the dataset's
    #    "incomplete" manifest is stored (tests/e2e/upload_gate.py), the uploader is SIGKILLed while
    #    blocked on its first file, then MinIO is stopped and started again
    s3 = e2e.s3()
    gate = e2e.upload_gate
    # armed now, before the register task starts: only its save_dataset PUTs a manifest under datasets/
    gate.hold_after_put(f"/{e2e.prefix}/datasets/", ".ragops-manifest.json")
    try:
        assert gate.wait_held(STEP_TIMEOUT), "the dataset upload never began"
        ti = _until("the uploading register task", lambda: _running(e2e, "rag_synthetic_data", run_id, "register"),
                    e2e, timeout=60)
        _kill_worker(e2e, ti, evidence, "mid-upload of the dataset (held after its manifest)")
    finally:
        gate.release()
    key = gate.held_request.split(" ")[1].split("?")[0].removeprefix(f"/{e2e.bucket}/")
    manifest = json.loads(s3.get_object(Bucket=e2e.bucket, Key=key)["Body"].read())
    _log(evidence, "dataset manifest when killed", {"key": key, "complete": manifest.get("complete"),
                                                    "files": len(manifest.get("files", {}))})
    e2e.backing.stop_service("minio")
    _log(evidence, "minio stopped", None)
    time.sleep(5)
    e2e.backing.start_service("minio")
    _log(evidence, "minio started", None)

    run = _finish(e2e, "rag_synthetic_data", run_id)
    tries = _tries(e2e, "rag_synthetic_data", run_id)
    _log(evidence, "synthetic run ended", {"state": run["state"], "tries": tries, "revived": e2e.revived,
                                           "refused": dict(llm.storm_replies), "answered": llm.answered_total})
    # the faults' own promises first: a run failing for another reason must not hide them
    assert not manifest.get("complete"), "the kill was meant to land mid-upload"
    assert tries["register[-1]"] >= 2
    # the storm happened and was ridden out; no answer paid twice; each paid answer cached once
    assert llm.storm_replies["429"] and llm.storm_replies["stalled"], llm.storm_replies
    paid_twice = {fp: n for fp, n in llm.answered.items() if n > 1}
    assert not paid_twice, f"{len(paid_twice)} LLM calls were paid more than once"
    with registry.transaction() as cur:
        cur.execute("SELECT count(*) AS n FROM llm_cache")
        cached = cur.fetchone()["n"]
    assert cached == len(llm.answered), (cached, len(llm.answered))
    generated = e2e.api.xcom("rag_synthetic_data", run_id, "generate")
    assert generated["stats"]["http_retries"] > 0 or tries["generate[-1]"] >= 2, generated["stats"]
    # the dataset: usable, whole in MinIO, and its manifest final
    dataset = registry.list_artifacts("dataset", "synthetic-queries", status="usable")[-1]
    assert dataset.run_key == f"rag_synthetic_data/{run_id}"
    assert e2e.artifacts().dir_complete(dataset.uri.removeprefix(e2e.artifact_root + "/"))
    _assert_artifacts_whole(e2e, registry)
    _assert_run_truth(e2e, registry, "rag_synthetic_data", run_id, run["state"])
    _log(evidence, "synthetic fault checks passed", {"generate_stats": generated["stats"], "llm_cache_rows": cached,
                                                     "dataset": dataset.summary(), "run": run["state"]})
    assert run["state"] == "success", e2e.describe("rag_synthetic_data", run_id)


def test_a_run_that_cannot_recover_fails_with_one_alert_and_moves_nothing(cluster: E2E, evidence):
    """Weaviate down for a whole ``rag_collection_rollback`` run (1 retry): the run fails, the
    registry closes it as failed with one alert for the failed task (not one per try), and the
    alias stays where it was, in Weaviate and in the registry."""
    e2e = cluster
    e2e.revived = []  # type: ignore[attr-defined]
    alias, registry = _fault_alias(e2e), e2e.registry()
    live = registry.get_alias("collection", alias)
    if live is None:
        pytest.skip("needs the collection the index fault test makes live")
    e2e.backing.stop_service("weaviate")
    _log(evidence, "weaviate stopped for a whole run", None)
    try:
        run_id = _trigger(e2e, "rag_collection_rollback", {"alias": alias, "version": live.version}, "rollback")
        run = _finish(e2e, "rag_collection_rollback", run_id)
    finally:
        e2e.backing.start_service("weaviate")
    tries = _tries(e2e, "rag_collection_rollback", run_id)
    alerts = registry.alerts(run_key=f"rag_collection_rollback/{run_id}")
    _log(evidence, "rollback run ended", {"state": run["state"], "tries": tries,
                                          "alerts": [a["title"] for a in alerts]})
    assert run["state"] == "failed"
    assert tries["rollback[-1]"] == 2, tries  # both tries ran (the fault is not deterministic)
    assert [a["title"] for a in alerts] == ["rag_collection_rollback.rollback failed"], alerts
    _assert_run_truth(e2e, registry, "rag_collection_rollback", run_id, run["state"])
    store = e2e.store()
    try:
        assert registry.get_alias("collection", alias).id == live.id
        assert store.get_alias(alias) == live.uri and store.count(live.uri) == live.metrics["chunks"]
    finally:
        store.close()
