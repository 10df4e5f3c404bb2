"""Tier 3: rag_synthetic_data's opt-in label review (Airflow's human-in-the-loop) in dag.test()
runs: the reviewer fills in the exported sample and chooses "Use review file"; the reviewed
version is what gets published. The person is played as in test_hitl_approval."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import run_dag, task_states, xcom
from .test_hitl_approval import answer, run_answered

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun


@pytest.mark.timeout(2 * 900)  # an index run, then the synthetic run
def test_review_applies_the_filled_in_sample_before_publishing(ragops_env, tmp_path):
    registry, artifacts = ragops_env.registry, ragops_env.artifacts()
    alias = f"Rev{uuid.uuid4().hex[:10]}"
    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    index = run_dag("rag_index", {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus),
                                               "root": str(tmp_path)}], "alias": alias, "chunk_size": 96,
                                  "chunk_overlap": 16, "smoke_sample": 10, "smoke_min_hit_rate": 0.7})
    assert index.state == "success", task_states(index)

    def fill_in_then_answer(ti: Any) -> None:
        exported = xcom_of(ti, "export_review")
        rel = artifacts.rel_of(exported["uri"])
        rows = [json.loads(line) for line in artifacts.read_bytes(rel).decode().splitlines()]
        rows[0]["decision"] = "reject"
        artifacts.write_bytes(rel, "".join(json.dumps(r) + "\n" for r in rows).encode())
        answer("Use review file", "one query asks about another page", review_file=None)(ti)

    conf = {"alias": alias, "sample_size": 30, "questions_per_chunk": 2, "generator": "offline",
            "round_trip": False, "hard_negatives": False, "test_ratio": 0.3, "max_doc_share": 0.5,
            "review_sample_size": 6, "require_approval": True}
    run, request = run_answered("rag_synthetic_data", conf, "review_dataset", "alias", fill_in_then_answer)
    states = task_states(run)
    assert run.state == "success", states
    assert states["publish"] == "success"
    assert request["options"] == ["Accept all", "Reject", "Use review file"] and request["defaults"] == ["Reject"]
    generated = xcom(run, "register")
    assert f"v{generated['version']}" in request["body"] and set(request["params"]) == {"reason", "review_file"}
    # The reviewed version (one row rejected) is the one published, its parents the generated version and the file.
    published = xcom(run, "publish")["dataset"]
    assert published["dataset_id"] != generated["dataset_id"] and xcom(run, "publish")["reviewed"] is True
    reviewed = registry.get_artifact(published["dataset_id"])
    assert reviewed.metrics["review"]["rejected"] == 1
    assert {rel for _, rel in registry.parents(reviewed.id)} == {"reviewed_from", "labels"}
    decision = xcom(run, "close_run")["approval"]
    assert (decision["outcome"], decision["by"], decision["artifact_id"]) == (
        "approved", "reviewer", generated["dataset_id"])
    assert registry.get_artifact(generated["dataset_id"]).metrics["approval"] == decision


def xcom_of(ti: Any, task_id: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (session.query(XComModel).filter_by(dag_id=ti.dag_id, run_id=ti.run_id, task_id=task_id,
                                                  key="return_value").first())
        return None if row is None else XComModel.deserialize_value(row)
