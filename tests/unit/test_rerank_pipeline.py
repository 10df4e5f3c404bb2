"""rag_train_reranker's steps in one process on the fixture corpus (indexed for real): labels
imported as a dataset version, candidates mined from the live first stage, an LTR model trained,
evaluated against the first stage and the live reranker, gated, promoted, served by the Retriever."""

from __future__ import annotations

import json

import pytest
from tests.service.corpus import indexed_corpus

from ragops.reranking.params import RerankerParams
from ragops.reranking.pipeline import train_reranker_in_process


@pytest.fixture(scope="module")
def corpus(pg_dsn, tmp_path_factory, embedder):
    yield from indexed_corpus(pg_dsn, tmp_path_factory.mktemp("rerank"), embedder)


def chunk_labels(svc, alias, path):
    """One query per chunk: a few words from the middle of its text (chunk-level labels)."""
    from ragops.labels import collection_chunks

    chunks = collection_chunks(svc, alias)
    lines = []
    for cid, row in sorted(chunks.rows.items()):
        words = row["text"].split()
        if len(words) >= 12:
            lines.append({"query": " ".join(words[4:12]), "chunk_id": cid})
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path, len(lines)


def test_ltr_trains_evaluates_gates_promotes_and_serves(corpus, tmp_path):
    from ragops.retrieval import Retriever

    svc, registry = corpus.svc, corpus.registry
    labels, n = chunk_labels(svc, corpus.alias, tmp_path / "labels.jsonl")
    assert n >= 10
    params = RerankerParams(alias=corpus.alias, labels_source=str(labels), labels_merge="none", top_n=10,
                            min_data_in_leaf=2, trees=20, margin=0.0, guard_tolerance=1.0)
    summary = train_reranker_in_process(svc, params, "r1")
    assert summary["kind"] == "ltr" and summary["imported"]["rows"] == n
    assert summary["mined"]["queries"] > 0 and summary["mined"]["positives"] > 0
    assert summary["sets"][0] == "held-out" and set(summary["ndcg@10"]) == {"first_stage", "live", "candidate"}
    assert summary["ndcg@10"]["live"] == summary["ndcg@10"]["first_stage"]   # nothing live yet
    cand = registry.find_artifact("model", "reranker", version=int(summary["candidate"]["model_id"].split(":v")[1]))
    assert {rel for _, rel in registry.parents(cand.id)} == {"trained_on", "mined_from"}
    if summary["ndcg@10"]["candidate"] > summary["ndcg@10"]["live"]:
        assert summary["decision"] == "promoted" and summary["promoted"]
        live = registry.in_stage("model", "reranker", "production")
        assert live.id == cand.id
        served = Retriever(svc, corpus.alias).search("restore a backup", k=3, rerank=True)
        assert served.reranker == f"reranker:v{live.version}" and len(served.hits) == 3
    else:
        assert summary["decision"] == "rejected" and not summary.get("promoted")

    # The same inputs again: the trainer finds its model, the same version is registered.
    again = train_reranker_in_process(svc, params, "r2")
    assert again["trained"]["skipped"] is True and again["candidate"]["model_id"] == summary["candidate"]["model_id"]


def test_a_tiny_cross_encoder_goes_through_the_same_steps(corpus, tmp_path):
    svc, registry = corpus.svc, corpus.registry
    labels, _ = chunk_labels(svc, corpus.alias, tmp_path / "labels.jsonl")
    params = RerankerParams(kind="cross-encoder", alias=corpus.alias, labels_source=str(labels), labels_merge="none",
                            top_n=10, negatives_per_query=2, max_steps=2, batch_size=8, margin=0.5)
    summary = train_reranker_in_process(svc, params, "ce1")
    assert summary["kind"] == "cross-encoder" and summary["compute"] == "local"
    assert summary["trained"]["device"] == "cpu" and summary["decision"] == "rejected"
    model = registry.find_artifact("model", "reranker", version=int(summary["candidate"]["model_id"].split(":v")[1]))
    assert model.params["kind"] == "cross-encoder" and model.stage == "candidate"
    assert set(summary["ndcg@10"]) == {"first_stage", "live", "candidate"}
