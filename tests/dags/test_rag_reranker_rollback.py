"""rag_reranker_rollback in dag.test(): the production reranker moves back in one registry transaction,
emits ragops://model/reranker only when something moved, and refuses unvetted or unknown versions."""

from __future__ import annotations

import pytest

from .conftest import run_dag, task_states, xcom

pytestmark = pytest.mark.dagrun


def reranker_asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ragops.vocabulary import RERANKER_ASSET_URI

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == RERANKER_ASSET_URI, AssetEvent.source_run_id == run_id).all())
        return [dict(r.extra or {}) for r in rows]


def rollback_tries(dag_run) -> int:
    from airflow.utils.session import create_session

    with create_session() as session:
        return next(ti.try_number for ti in dag_run.get_task_instances(session=session) if ti.task_id == "rollback")


@pytest.fixture
def rerankers(ragops_env, tmp_path):
    """Three registered rerankers: good and bad were production in turn (bad is now), unvetted never."""
    from ragops.models import promote, register_candidate

    registry = ragops_env.registry
    versions = []
    for name in ("good", "bad", "unvetted"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "reranker.json").write_text('{"kind": "ltr"}')
        versions.append(register_candidate(registry, str(folder), name.ljust(64, "0"), name="reranker"))
    good, bad, unvetted = versions
    promote(registry, good.id, None, "gate approved")
    promote(registry, bad.id, None, "gate approved")
    return registry, good, bad, unvetted


def test_rollback_defaults_to_the_previous_production_version_and_emits_once(rerankers):
    registry, good, bad, _ = rerankers

    run = run_dag("rag_reranker_rollback", {"reason": "bad reranker hurts the golden set"})
    assert run.state == "success", task_states(run)
    assert registry.in_stage("model", "reranker", "production").id == good.id
    assert registry.get_artifact(bad.id).stage == "archived"
    summary = xcom(run, "close_run")
    assert summary["previous_version"] == bad.version and summary["model_id"] == f"reranker:v{good.version}"
    assert summary["history"][-1]["reason"] == "bad reranker hurts the golden set"
    assert reranker_asset_events(run.run_id) == [{"model_id": f"reranker:v{good.version}", "artifact_id": good.id,
                                                  "hash": good.content_hash[:12], "rollback": True}]

    again = run_dag("rag_reranker_rollback", {"to_version": good.version})
    assert again.state == "success" and task_states(again)["rollback"] == "skipped"
    assert xcom(again, "close_run")["status"] == "noop"
    assert reranker_asset_events(again.run_id) == []
    assert registry.in_stage("model", "reranker", "production").id == good.id


@pytest.mark.parametrize("target", ["unvetted", "unknown"])
def test_rollback_to_a_never_production_or_unknown_version_fails_without_retry(rerankers, target):
    registry, _, bad, unvetted = rerankers
    version = unvetted.version if target == "unvetted" else 99

    refused = run_dag("rag_reranker_rollback", {"to_version": version})
    assert refused.state == "failed" and task_states(refused)["rollback"] == "failed"
    assert rollback_tries(refused) == 1          # InvalidInput: fails at once, DEFAULT_ARGS' retry unused
    assert registry.in_stage("model", "reranker", "production").id == bad.id
    assert reranker_asset_events(refused.run_id) == []
    history = registry.stage_history_of("model", "reranker")
    assert [h["version"] for h in history if h["to_stage"] == "production"] == [1, 2]
