"""rag_evaluate's trends: the rolling baseline, regressions beyond the tolerance, what changed."""

from __future__ import annotations

from ragops.errors import DataQualityError
from ragops.evaluation.trends import EvaluationRegression, alert_text, baseline, changed_versions, regressions


def point(ndcg: float, recall: float = 0.9, extra: str = "golden") -> dict:
    return {"sets": {extra: {"ndcg@10": ndcg, "mrr@10": ndcg, "recall@100": recall, "queries": 6,
                             "by_source": {"fx": {"ndcg@10": ndcg}}}}}


def test_baseline_is_the_median_of_the_last_n_points():
    history = [point(0.1), point(0.8), point(0.9), point(0.7)]
    assert baseline(history, 3)["golden"]["ndcg@10"] == 0.8          # median of 0.8, 0.9, 0.7
    assert baseline(history, 4)["golden"]["ndcg@10"] == 0.75         # the old 0.1 now counts
    assert "queries" not in baseline(history, 3)["golden"]           # counts are not trended
    assert baseline([], 5) == {}


def test_only_drops_beyond_the_tolerance_are_regressions():
    base = baseline([point(0.8, 0.9)] * 3, 5)
    assert regressions(point(0.76)["sets"], base, 0.05) == []                  # within tolerance
    assert regressions(point(0.95)["sets"], base, 0.05) == []                  # better is fine
    found = regressions(point(0.5, 0.6)["sets"], base, 0.05)
    assert [(r["set"], r["metric"]) for r in found] == [("golden", "mrr@10"), ("golden", "ndcg@10"),
                                                       ("golden", "recall@100")]
    assert found[1] == {"set": "golden", "metric": "ndcg@10", "before": 0.8, "after": 0.5, "drop": 0.3}
    # a set without a baseline (new) is not a regression
    assert regressions(point(0.1, extra="beir-test")["sets"], base, 0.05) == []


def test_changed_versions_name_collection_model_and_reranker():
    last = {"collection": "Docs_a", "collection_id": 3, "collection_version": 1, "model_id": "embeddings:v1",
            "reranker_id": None}
    now = {**last, "collection": "Docs_b", "collection_id": 7, "collection_version": 2, "reranker_id": "reranker:v1"}
    assert changed_versions(now, last) == ["collection Docs_a v1 -> Docs_b v2", "reranker none -> reranker:v1"]
    assert changed_versions(now, now) == [] and changed_versions(now, None) == []


def test_the_alert_names_set_metric_before_after_and_the_change():
    found = regressions(point(0.5)["sets"], baseline([point(0.8)], 5), 0.05)
    title, message = alert_text("Docs", found, ["collection Docs_a v1 -> Docs_b v2"], 5, 0.05)
    assert title.startswith("evaluation regression: Docs golden ") and title.split()[-1] in {"ndcg@10", "mrr@10"}
    assert "golden ndcg@10: 0.8000 -> 0.5000" in message and "collection Docs_a v1 -> Docs_b v2" in message
    assert issubclass(EvaluationRegression, DataQualityError)   # fails without retry, alerted once
