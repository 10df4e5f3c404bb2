"""rag_evaluate's retrieval metrics: per set (as the gates measure) and per source."""

from __future__ import annotations

import math

import pytest

from ragops.evaluation.metrics import UNKNOWN_SOURCE, per_query, query_source, set_metrics, source_lookup

QRELS = {"q1": {"a:d1": 1}, "q2": {"b:d2": 1}, "q3": {"b:d3": 1, "b:d4": 1}}
RUN = {"q1": {"a:d1": 3.0, "x:d9": 2.0},            # relevant at rank 1
       "q2": {"x:d9": 3.0, "b:d2": 2.0},            # relevant at rank 2
       "q3": {"b:d3": 1.0}}                         # one of two relevant, at rank 1
ROWS = {"c1": {"doc_id": "a:d1", "source": "alpha"}, "c2": {"doc_id": "b:d2", "source": "beta"},
        "c3": {"doc_id": "b:d3", "source": "beta"}}


def test_per_query_values_match_hand_computation():
    values = per_query(QRELS, RUN, k=1)
    assert values["q1"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@1": 1.0}
    assert values["q2"]["mrr@10"] == 0.5 and values["q2"]["recall@1"] == 0.0
    assert values["q2"]["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert values["q3"]["recall@1"] == 0.5
    assert values["q3"]["ndcg@10"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_set_metrics_break_down_by_the_source_of_the_relevant_documents():
    metrics = set_metrics(QRELS, RUN, 1, source_lookup(ROWS))
    assert metrics["queries"] == 3 and set(metrics) == {"ndcg@10", "mrr@10", "recall@1", "queries", "by_source"}
    assert metrics["by_source"]["alpha"] == {"ndcg@10": 1.0, "mrr@10": 1.0, "recall@1": 1.0, "queries": 1}
    beta = metrics["by_source"]["beta"]
    assert beta["queries"] == 2 and beta["mrr@10"] == 0.75 and beta["recall@1"] == 0.25
    # the overall mean is the queries-weighted mean of the sources
    for m in ("ndcg@10", "mrr@10", "recall@1"):
        weighted = sum(s[m] * s["queries"] for s in metrics["by_source"].values()) / 3
        assert metrics[m] == pytest.approx(weighted, abs=2e-4)


def test_unretrieved_queries_score_zero_and_sources_fall_back_to_the_id_prefix():
    metrics = set_metrics({"q": {"gone:doc": 1}, "r": {"42": 1}}, {}, 10, source_lookup({}))
    assert metrics["ndcg@10"] == metrics["mrr@10"] == metrics["recall@10"] == 0.0
    assert set(metrics["by_source"]) == {"gone", UNKNOWN_SOURCE}


def test_a_query_takes_the_source_the_collection_knows_first():
    lookup = source_lookup(ROWS)
    assert query_source({"b:d2": 1, "a:d1": 1}, lookup) == "alpha"
    assert query_source({"b:d2": 0}, lookup) == UNKNOWN_SOURCE   # not relevant: no source
    assert lookup("c1") == "alpha" and lookup("zzz") is None
