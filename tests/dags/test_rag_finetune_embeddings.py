"""Tier 3: whole rag_finetune_embeddings runs through dag.test(): local compute, real Postgres, real models.

The live model is deliberately broken (the base model with shuffled word embeddings), so a candidate
finetuned from the base model must win: the first run promotes and emits the model asset. The
second run with the same inputs reuses the trained model (idempotent trainer) and, the candidate
being the live model itself, is rejected: a successful run whose promote task is skipped.
"""

from __future__ import annotations

import pytest

from tests.unit.training_data import SCIFACT, save_broken_model, save_pairs_dataset

from .conftest import run_dag, task_states, xcom

pytestmark = [pytest.mark.dagrun,
              pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-dev")]

CONF = {"epochs": 1, "batch_size": 8, "max_steps": 3, "checkpoint_steps": 2, "matryoshka_dims": [384, 128],
        "ks": [10], "margin": 0.01, "guard_tolerance": 0.0}


def model_asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ragops.assets import MODEL_ASSET_URI

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


def test_finetune_promotes_a_better_model_then_rejects_a_rerun(ragops_env, prepared):
    from ragops.synthetic.dataset import rel_of_uri

    registry, artifacts = ragops_env.registry, ragops_env.artifacts()

    guard = {"beir_folder": str(SCIFACT), "beir_split": "train", "beir_max_queries": 8, "beir_distractors": 20}
    first = run_dag("rag_finetune_embeddings", CONF | guard)
    assert first.state == "success", task_states(first)
    states = task_states(first)
    assert states["promote"] == "success" and states["lineage_summary"] == "success"
    summary = xcom(first, "lineage_summary")
    assert summary["decision"] == "promoted", summary["reasons"]
    assert summary["ndcg@10"]["candidate"] > summary["ndcg@10"]["live"]
    assert summary["dataset"]["id"] == prepared["dataset"].id
    live = registry.in_stage("model", "embeddings", "production")
    assert live.id != prepared["broken"].id and summary["candidate"]["model_id"] == f"embeddings:v{live.version}"
    assert registry.get_artifact(prepared["broken"].id).stage == "archived"
    assert live.metrics["training"]["global_step"] == 3 and live.metrics["gate"]["decision"] == "promoted"
    assert {rel for _, rel in registry.parents(live.id)} == {"trained_on", "finetuned_from"}
    assert model_asset_events(first.run_id) == [{"model_id": f"embeddings:v{live.version}",
                                                 "artifact_id": live.id, "hash": live.content_hash[:12]}]
    evaluation = registry.get_artifact(summary["evaluation_id"])
    assert evaluation.kind == "evaluation" and evaluation.status == "promoted"
    report = artifacts.read_json(rel_of_uri(artifacts, evaluation.uri))
    assert set(report["models"]) == {"base", "live", "candidate"} and report["dims"] == [384, 128]
    beir = report["sets"]["beir-scifact-dev-train"]
    assert beir["guard"] and beir["queries"] == 8 and beir["corpus"] >= 8 + 20
    assert any(g["set"] == "beir-scifact-dev-train" for g in evaluation.metrics["guards"])
    assert artifacts.read_bytes(rel_of_uri(artifacts, summary["chart_uri"]))[:4] == b"\x89PNG"
    assert registry.get_run(f"rag_finetune_embeddings/{first.run_id}")["status"] == "success"

    # Same inputs: the trainer finds its finished model; the candidate is now the live model.
    second = run_dag("rag_finetune_embeddings", CONF | {"margin": 0.5})
    assert second.state == "success", task_states(second)
    assert task_states(second)["promote"] == "skipped"
    assert xcom(second, "train")["skipped"] is True
    summary = xcom(second, "lineage_summary")
    assert summary["decision"] == "rejected" and "live model itself" in summary["reasons"][0]
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
    result = xcom(run, "rollback")
    assert result["previous_version"] == bad.version and result["history"][-1]["reason"] == "bad hurts recall"
    assert model_asset_events(run.run_id) == [{"model_id": f"embeddings:v{good.version}", "artifact_id": good.id,
                                               "rollback": True}]

    refused = run_dag("rag_model_rollback", {"to_version": unvetted.version})
    assert refused.state == "failed"
    assert registry.in_stage("model", "embeddings", "production").id == good.id
    assert base.stage is None
