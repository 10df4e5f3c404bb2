"""Issue 9, defect 6, through dag.test(): the Variable ragops_allowed_roots (or its default) bounds
what a run's params may read; a path outside fails the first task at once, naming the param."""

from __future__ import annotations

import json

import pytest

from .conftest import run_dag

pytestmark = pytest.mark.dagrun


def _first_try_failure(run, task_id: str):
    from airflow.utils.session import create_session

    with create_session() as session:
        ti = next(t for t in run.get_task_instances(session=session) if t.task_id == task_id)
        return str(ti.state), ti.try_number


@pytest.mark.parametrize("allowed", ["variable", "default"])
def test_a_source_outside_the_allowed_roots_fails_prepare_without_retries(ragops_env, tmp_path, monkeypatch,
                                                                          allowed):
    if allowed == "variable":
        monkeypatch.setenv("AIRFLOW_VAR_RAGOPS_ALLOWED_ROOTS", json.dumps([str(tmp_path / "data")]))
    else:  # unset: the worker's RAGOPS_ALLOWED_ROOTS, else /opt/airflow/data (and the bundle's own folders)
        monkeypatch.delenv("AIRFLOW_VAR_RAGOPS_ALLOWED_ROOTS")
        monkeypatch.delenv("RAGOPS_ALLOWED_ROOTS", raising=False)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("# Secret\n\nThe worker's private notes.\n")
    run = run_dag("rag_index", {"sources": [{"type": "folder", "name": "x", "path": str(outside)}],
                                "alias": "AllowDocs"})
    assert run.state == "failed"
    assert _first_try_failure(run, "prepare") == ("failed", 1)   # deterministic: not retried
    record = ragops_env.registry.get_run(f"rag_index/{run.run_id}")
    alerts = ragops_env.registry.alerts(record["run_key"])
    assert "param sources[0].path" in alerts[0]["message"] and "outside" in alerts[0]["message"]
    assert ragops_env.registry.list_artifacts("corpus", "AllowDocs") == []   # nothing was read
