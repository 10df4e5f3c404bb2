"""Tier 3: whole rag_finetune_embeddings runs through dag.test(): local compute, real Postgres, real models.

The live model is deliberately broken (the base model with shuffled word embeddings), so a candidate
finetuned from the base model must win: the first run promotes and emits the model asset. The
second run with the same inputs reuses the trained model (idempotent trainer) and, the candidate
being the live model itself, is rejected: a successful (no-op) run whose promote task is skipped.
The rollback DAG needs no SciFact.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.training_data import SCIFACT, save_broken_model, save_pairs_dataset

from .conftest import run_dag, task_states, xcom

pytestmark = pytest.mark.dagrun
needs_scifact = pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-dev")

CONF = {"epochs": 1, "batch_size": 8, "max_steps": 3, "checkpoint_steps": 2, "matryoshka_dims": [384, 128],
        "ks": [10], "margin": 0.01, "guard_tolerance": 0.0}


def model_asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ragops.vocabulary import MODEL_ASSET_URI

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == MODEL_ASSET_URI, AssetEvent.source_run_id == run_id).all())
        return [dict(r.extra or {}) for r in rows]


@pytest.fixture
def prepared(ragops_env, base_model_path):
    from ragops.hashing import sha256_text
    from ragops.models import promote, register_base_model, register_candidate

    registry, artifacts = ragops_env.registry, ragops_env.artifacts()
    rel = "datasets/tiny-scifact"
    save_pairs_dataset(artifacts.local_path(rel), train_rows=40, test_rows=12)
    dataset = registry.record_artifact("dataset", "synthetic-queries", sha256_text(rel), artifacts.uri(rel),
                                       status="usable", metrics={"rows_train": 40, "rows_test": 12})
    register_base_model(registry)
    broken_rel = "models/embeddings/broken"
    save_broken_model(base_model_path, artifacts.local_path(broken_rel))
    broken = register_candidate(registry, artifacts.uri(broken_rel), "b" * 64)
    promote(registry, broken.id, None, "a broken live model for the test")
    return {"dataset": dataset, "broken": broken}


@needs_scifact
def test_finetune_promotes_a_better_model_then_rejects_a_rerun(ragops_env, prepared):
    registry, artifacts = ragops_env.registry, ragops_env.artifacts()

    guard = {"beir_folder": str(SCIFACT), "beir_split": "train", "beir_max_queries": 8, "beir_distractors": 20}
    first = run_dag("rag_finetune_embeddings", CONF | guard)
    assert first.state == "success", task_states(first)
    states = task_states(first)
    assert states["promote"] == "success" and states["close_run"] == "success"
    summary = xcom(first, "close_run")
    assert summary["decision"] == "promoted", summary["reasons"]
    assert summary["ndcg@10"]["candidate"] > summary["ndcg@10"]["live"]
    assert summary["dataset"]["id"] == prepared["dataset"].id
    live = registry.in_stage("model", "embeddings", "production")
    assert live.id != prepared["broken"].id and summary["candidate"]["model_id"] == f"embeddings:v{live.version}"
    assert registry.get_artifact(prepared["broken"].id).stage == "archived"
    assert live.metrics["training"]["global_step"] == 3 and live.metrics["gate"]["decision"] == "promoted"
    assert {rel for _, rel in registry.parents(live.id)} == {"trained_on", "finetuned_from"}
    assert model_asset_events(first.run_id) == [{"model_id": f"embeddings:v{live.version}", "artifact_id": live.id,
                                                 "hash": live.content_hash[:12], "rollback": False}]
    assert xcom(first, "promote")["previous_artifact_id"] == prepared["broken"].id
    evaluation = registry.get_artifact(summary["evaluation_id"])
    assert evaluation.kind == "evaluation" and evaluation.status == "promoted"
    report = artifacts.read_json(artifacts.rel_of(evaluation.uri))
    assert set(report["models"]) == {"base", "live", "candidate"} and report["dims"] == [384, 128]
    # The report names models by where they are, not by a worker's cache folder.
    assert report["models"]["candidate"]["uri"] == live.uri and "path" not in report["models"]["candidate"]
    beir = report["sets"]["beir-scifact-dev-train"]
    assert beir["guard"] and beir["queries"] == 8 and beir["corpus"] >= 8 + 20
    assert any(g["set"] == "beir-scifact-dev-train" for g in evaluation.metrics["guards"])
    assert artifacts.read_bytes(artifacts.rel_of(summary["chart_uri"]))[:4] == b"\x89PNG"
    assert registry.get_run(f"rag_finetune_embeddings/{first.run_id}")["status"] == "success"
    # Only ids, URIs and numbers crossed task boundaries: no worker's model cache.
    for task_id in ("resolve_inputs", "train", "register_candidate", "evaluate", "gate", "promote"):
        assert "ragops-models" not in json.dumps(xcom(first, task_id)), task_id

    # Same inputs: the trainer finds its finished model; the candidate is now the live model.
    second = run_dag("rag_finetune_embeddings", CONF | {"margin": 0.5})
    assert second.state == "success", task_states(second)
    assert task_states(second)["promote"] == "skipped"
    assert xcom(second, "train")["skipped"] is True
    assert xcom(second, "promote")["refused"].startswith("gate rejected")
    summary = xcom(second, "close_run")
    assert summary["decision"] == "rejected" and "live model itself" in summary["reasons"][0]
    assert summary["status"] == "noop" and summary["trained"]["skipped"] is True
    assert registry.get_run(f"rag_finetune_embeddings/{second.run_id}")["status"] == "noop"
    assert registry.in_stage("model", "embeddings", "production").id == live.id
    assert registry.get_artifact(live.id).status == "usable"
    assert model_asset_events(second.run_id) == []


def test_rollback_dag_restores_an_earlier_production_model(ragops_env, tmp_path):
    from ragops.models import promote, register_base_model, register_candidate

    registry = ragops_env.registry
    base = register_base_model(registry)
    models = []
    for name in ("v-good", "v-bad", "v-unvetted"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text("{}")
        models.append(register_candidate(registry, str(folder), name.ljust(64, "0")))
    good, bad, unvetted = models
    promote(registry, good.id, None, "gate approved")
    promote(registry, bad.id, None, "gate approved")

    run = run_dag("rag_model_rollback", {"to_version": good.version, "reason": "bad hurts recall"})
    assert run.state == "success", task_states(run)
    assert registry.in_stage("model", "embeddings", "production").id == good.id
    assert registry.get_artifact(bad.id).stage == "archived"
    assert xcom(run, "rollback")["previous_version"] == bad.version
    summary = xcom(run, "close_run")
    assert summary["status"] == "success" and summary["history"][-1]["reason"] == "bad hurts recall"
    assert model_asset_events(run.run_id) == [{"model_id": f"embeddings:v{good.version}", "artifact_id": good.id,
                                               "hash": good.content_hash[:12], "rollback": True}]

    # Already production: nothing moves, nothing is emitted, the run is a no-op.
    again = run_dag("rag_model_rollback", {"to_version": good.version})
    assert again.state == "success" and task_states(again)["rollback"] == "skipped"
    assert xcom(again, "close_run")["status"] == "noop" and model_asset_events(again.run_id) == []

    refused = run_dag("rag_model_rollback", {"to_version": unvetted.version})
    assert refused.state == "failed"
    assert task_states(refused)["rollback"] == "failed"
    recorded = registry.get_run(f"rag_model_rollback/{refused.run_id}")
    assert recorded["status"] == "failed" and recorded["summary"]["failed_tasks"] == ["rollback"]
    assert registry.in_stage("model", "embeddings", "production").id == good.id
    assert base.stage is None
