"""The shared evaluator: IR sets from the dataset, golden queries and BEIR, metrics per dim, the chart."""

from __future__ import annotations

import json

import pytest
from tests.unit.training_data import SCIFACT, scifact_pairs

from ragops.training.evaluate import (
    beir_eval_set,
    chart_png,
    evaluate_models,
    golden_eval_set,
    model_report,
    save_report,
    split_eval_set,
)

ROWS = [
    {"query": "what archives the old model", "positive": "set_stage archives the previous production version",
     "negative": "aliases point at collections", "chunk_id": "c1", "doc_id": "d1"},
    {"query": "what archives the old model", "positive": "promotion is one transaction", "negative": None,
     "chunk_id": "c2", "doc_id": "d1"},
    {"query": "how are vectors reused", "positive": "unchanged chunks keep their vectors",
     "negative": "set_stage archives the previous production version", "chunk_id": "c3", "doc_id": "d2"},
]


def test_split_set_uses_chunk_ids_and_dedupes_queries_and_passages():
    s = split_eval_set(ROWS, chunks=[{"chunk_id": "c9", "doc_id": "d9", "text": "an extra chunk"}])
    assert len(s.queries) == 2
    assert sorted(map(sorted, s.relevant.values())) == [["c1", "c2"], ["c3"]]
    # Positives, distinct negatives and the chunk set; a negative equal to a positive is one passage.
    assert len(s.corpus) == 5 and s.corpus["c9"] == "an extra chunk"


def test_golden_set_maps_doc_judgements_to_chunks(tmp_path):
    golden = tmp_path / "golden.jsonl"
    golden.write_text(json.dumps({"query": "reuse of vectors", "doc_id": "d2"}) + "\n"
                      + json.dumps({"query": "unknown doc", "doc_id": "d404"}) + "\n")
    s = golden_eval_set(golden, ROWS)
    assert s.guard and s.level == "doc" and list(s.relevant.values()) == [{"c3"}]
    assert "1 of 2 golden queries" in s.notes[0]


@pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-dev")
def test_beir_subset_is_deterministic():
    a = beir_eval_set(SCIFACT, "train", max_queries=5, extra_corpus=10)
    b = beir_eval_set(SCIFACT, "train", max_queries=5, extra_corpus=10)
    assert a.queries == b.queries and a.corpus == b.corpus and len(a.queries) == 5
    assert all(docs <= set(a.corpus) for docs in a.relevant.values()) and a.level == "doc" and a.guard


@pytest.mark.skipif(not SCIFACT.exists(), reason="needs ../shared/data/scifact-dev")
def test_models_are_scored_at_every_dim_and_reported(base_model_path, artifact_store):
    rows = scifact_pairs(12, offset=60)
    guard = beir_eval_set(SCIFACT, "train", max_queries=6, extra_corpus=6)
    report = evaluate_models({"base": base_model_path, "live": base_model_path}, rows, [64, 384, 128], [1, 10],
                             guard_sets=[guard])
    assert report["dims"] == [384, 128, 64] and report["primary_set"] == "synthetic-test"
    assert report["sets"][guard.name]["guard"] is True and report["sets"]["synthetic-test"]["queries"] == 12
    metrics = report["models"]["base"]["metrics"]
    for set_name in ("synthetic-test", guard.name):
        for dim in ("384", "128", "64"):
            m = metrics[set_name][dim]
            assert set(m) == {"ndcg@10", "mrr@10", "accuracy@1", "recall@1", "recall@10"}
            assert 0 <= m["recall@1"] <= m["recall@10"] <= 1 and 0 < m["ndcg@10"] <= 1
    # The same weights under two labels are one model: identical numbers.
    assert report["models"]["live"]["metrics"] == metrics
    assert model_report(report, "live")["guard_sets"] == [guard.name]

    png = chart_png(report)
    assert png.startswith(b"\x89PNG")
    uris = save_report(report, artifact_store, "evaluations/embeddings/test")
    assert artifact_store.read_json(uris["report_rel"])["dims"] == [384, 128, 64]
    assert artifact_store.read_bytes(uris["chart_rel"]).startswith(b"\x89PNG")


def test_nothing_to_evaluate_is_an_error():
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_models({"m": "/nowhere"}, None, [64])
    with pytest.raises(ValueError, match="no query has a relevant passage"):
        split_eval_set([{"query": "q", "positive": ""}])
