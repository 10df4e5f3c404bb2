"""Tier 3: rag_train_reranker through dag.test() on the fixture corpus (indexed with the indexing
pipeline into the test's own schema, artifact root and LanceDB), LTR kind, real Postgres.

The live reranker is deliberately broken (it reverses the first stage), so a candidate trained on
labelled queries must beat it: with a lenient margin the first run imports the labels, mines,
trains, evaluates, promotes and emits ragops://model/reranker. A second run on the same dataset
version finds its trained model, the candidate is the live reranker itself: a successful no-op run
whose promote task is skipped with the gate's reasons, and no asset event.
"""

from __future__ import annotations

import json
import random

import pytest

from .conftest import run_dag, task_states, xcom

pytestmark = pytest.mark.dagrun
ALIAS = "Docs"


def reranker_asset_events(run_id: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ragops.vocabulary import RERANKER_ASSET_URI

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == RERANKER_ASSET_URI, AssetEvent.source_run_id == run_id).all())
        return [dict(r.extra or {}) for r in rows]


def reversing_ltr(folder):
    """An LTR model that learned to put the first stage's last candidate first."""
    import numpy as np

    from ragops.reranking.features import feature_matrix
    from ragops.reranking.ltr import LTRConfig, LTRReranker, train_ltr
    from ragops.retrieval.hits import Citation, Hit

    rng = random.Random(3)
    features, labels, groups = [], [], []
    for _ in range(100):
        hits = [Hit(rank=i + 1, chunk_id=f"c{i}", score=1 - i / 10, text="t", title="t",
                    citation=Citation(f"c{i}", "d", "s", None, "t", "t"),
                    scores={"dense": 0.9 - 0.05 * i + rng.uniform(0, 0.01), "keyword": 5.0 - i / 2,
                            "fused": 1 / (60 + i)}, properties={"text": "t", "position": i}) for i in range(10)]
        features.append(feature_matrix("q", hits))
        labels += [int(i == 9) for i in range(10)]
        groups.append(10)
    booster = train_ltr(np.concatenate(features), labels, groups, LTRConfig(trees=20, min_data_in_leaf=2))
    return LTRReranker(booster).save(folder)


@pytest.fixture
def prepared(ragops_env, tmp_path, embedder):
    from ragops.labels import collection_chunks
    from ragops.models import model_dir_hash, promote, register_candidate
    from tests.service.corpus import index_corpus

    corpus = index_corpus(ragops_env.registry, tmp_path, embedder, alias=ALIAS)
    artifacts = ragops_env.artifacts()
    broken_rel = "models/reranker/broken"
    folder = reversing_ltr(artifacts.local_path(broken_rel))
    broken = register_candidate(ragops_env.registry, artifacts.uri(broken_rel), model_dir_hash(folder),
                                name="reranker")
    promote(ragops_env.registry, broken.id, None, "a broken live reranker for the test")
    chunks = collection_chunks(corpus.svc, ALIAS)
    labels = tmp_path / "labels.jsonl"
    rows = [{"query": " ".join(r["text"].split()[4:12]), "chunk_id": cid} for cid, r in sorted(chunks.rows.items())
            if len(r["text"].split()) >= 12]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus.svc.close()
    return {"broken": broken, "labels": labels, "rows": len(rows)}


CONF = {"alias": ALIAS, "kind": "ltr", "top_n": 10, "trees": 20, "min_data_in_leaf": 2, "margin": 0.0,
        "guard_tolerance": 1.0}


def test_ltr_reranker_trains_evaluates_gates_and_promotes_then_a_rerun_is_a_noop(ragops_env, prepared):
    registry = ragops_env.registry
    first = run_dag("rag_train_reranker", CONF | {"labels_source": str(prepared["labels"]), "labels_merge": "none"})
    states = task_states(first)
    assert first.state == "success", states
    assert all(states[t] == "success" for t in ("resolve_inputs", "mine", "train", "register_candidate", "evaluate",
                                                 "gate", "promote", "close_run")), states
    summary = xcom(first, "close_run")
    assert summary["imported"]["rows"] == prepared["rows"] and summary["imported"]["label_sources"] == {
        "imported": prepared["rows"]}
    assert summary["mined"]["positives"] > 0 and summary["mined"]["negatives"] > 0
    assert summary["trained"]["skipped"] is False and summary["trained"]["queries"] > 0
    assert summary["ndcg@10"]["candidate"] > summary["ndcg@10"]["live"]
    assert summary["decision"] == "promoted" and summary["promoted"] is True, summary["reasons"]
    live = registry.in_stage("model", "reranker", "production")
    assert summary["candidate"]["model_id"] == f"reranker:v{live.version}" and live.id != prepared["broken"].id
    assert registry.get_artifact(prepared["broken"].id).stage == "archived"
    assert {rel for _, rel in registry.parents(live.id)} == {"trained_on", "mined_from"}
    assert reranker_asset_events(first.run_id) == [{"model_id": f"reranker:v{live.version}", "artifact_id": live.id,
                                                    "hash": live.content_hash[:12], "rollback": False}]
    evaluation = registry.get_artifact(summary["evaluation_id"])
    assert evaluation.name == "reranker-gate" and evaluation.status == "promoted"
    report = ragops_env.artifacts().read_json(ragops_env.artifacts().rel_of(evaluation.uri))
    assert report["collection"] == summary["collection"] and report["model_ids"]["live"] == \
        f"reranker:v{prepared['broken'].version}"
    assert set(report["metrics"]["held-out"]) == {"first_stage", "live", "candidate"}
    assert registry.get_run(f"rag_train_reranker/{first.run_id}")["status"] == "success"

    # Same dataset version and hyperparameters, a strict margin: the model is found, it is live already.
    second = run_dag("rag_train_reranker", CONF | {"dataset_version": summary["dataset"]["version"], "margin": 0.5})
    assert second.state == "success", task_states(second)
    assert task_states(second)["promote"] == "skipped" and xcom(second, "train")["skipped"] is True
    assert xcom(second, "promote")["refused"].startswith("gate rejected")
    again = xcom(second, "close_run")
    assert again["decision"] == "rejected" and "live reranker itself" in again["reasons"][0]
    assert again["status"] == "noop" and reranker_asset_events(second.run_id) == []
    assert registry.in_stage("model", "reranker", "production").id == live.id
