"""Tier 3: the whole lifecycle through dag.test(): index -> synthetic data -> local finetuning ->
evaluation -> gate -> promotion -> re-index, ending with the alias on a collection embedded by the
promoted model.

The live model at the start is deliberately broken (the base model with shuffled word embeddings),
so that a few CPU training steps from the base model measurably beat it: the test is about the
loop closing, not about how much finetuning helps (bench/ measures that).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.training_data import save_broken_model

from .conftest import run_dag, task_states, xcom

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun


def test_the_loop_closes(ragops_env, base_model_path, tmp_path):
    from ragops.models import promote, register_base_model, register_candidate

    registry, artifacts, store = ragops_env.registry, ragops_env.artifacts(), ragops_env.store()
    register_base_model(registry)
    save_broken_model(base_model_path, artifacts.local_path("models/embeddings/broken"))
    broken = register_candidate(registry, artifacts.uri("models/embeddings/broken"), "b" * 64)
    promote(registry, broken.id, None, "a broken live model, for the test")

    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    index_conf = {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(corpus.parent)}],
                  "alias": "RagDocs", "chunk_size": 96, "chunk_overlap": 16, "smoke_sample": 10,
                  "smoke_min_hit_rate": 0.0}  # the broken model cannot pass a retrieval smoke test
    first = run_dag("rag_index", index_conf)
    assert first.state == "success", task_states(first)
    v1 = store.get_alias("RagDocs")
    assert store.collection_metadata(v1)["model_id"] == f"embeddings:v{broken.version}"

    synthetic = run_dag("rag_synthetic_data", {"alias": "RagDocs", "sample_size": 60, "questions_per_chunk": 2,
                                                "generator": "offline", "test_ratio": 0.3, "max_doc_share": 0.5})
    assert synthetic.state == "success", task_states(synthetic)
    dataset = registry.list_artifacts("dataset", "synthetic-queries", status="usable")[-1]

    finetune = run_dag("rag_finetune_embeddings", {"base_model": "base", "epochs": 1, "max_steps": 4, "batch_size": 8,
                                                    "checkpoint_steps": 2, "matryoshka_dims": [384, 128]})
    assert finetune.state == "success", task_states(finetune)
    summary = xcom(finetune, "close_run")
    assert summary["decision"] == "promoted", summary["reasons"]
    # Judged as RagDocs serves (hybrid over a pool of its hits), the test split a guard.
    assert summary["reasons"][0].startswith("ndcg@10 on served-hybrid@384"), summary["reasons"]
    assert summary["dataset"]["id"] == dataset.id and summary["status"] == "success"
    production = registry.in_stage("model", "embeddings", "production")
    assert production.id != broken.id and production.stage == "production"
    trained_on = [p.id for p, rel in registry.parents(production.id) if rel == "trained_on"]
    assert trained_on == [dataset.id]

    # The model asset schedules rag_index in a deployment; dag.test() runs it explicitly.
    second = run_dag("rag_index", index_conf | {"smoke_min_hit_rate": 0.7})
    assert second.state == "success", task_states(second)
    v2 = store.get_alias("RagDocs")
    assert v2 != v1
    meta = store.collection_metadata(v2)
    assert meta["model_id"] == f"embeddings:v{production.version}" and meta["model_hash"] == production.content_hash
    plan = xcom(second, "plan")["stats"]
    assert plan["copied"] == 0 and plan["to_embed"] == store.count(v2)  # another model: nothing reusable
    live = registry.get_alias("collection", "RagDocs")
    assert [p.id for p, rel in registry.parents(live.id) if rel == "embedded_with"] == [production.id]
    assert [h["reason"] for h in registry.alias_history("collection", "RagDocs")] == ["gate passed", "gate passed"]
