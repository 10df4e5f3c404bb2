from __future__ import annotations

import json

import pytest

from ragops.retrieval_eval import LabelledQueries, aggregate_hits, load_golden_queries, metrics_from_run
from ragops.stores.base import SearchHit


def test_metrics_match_hand_computed_values():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 0.9, "x": 0.5}, "q2": {"x": 0.9, "d2": 0.8}}
    m = metrics_from_run(qrels, run)
    assert m["mrr@10"] == pytest.approx((1 + 0.5) / 2)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / 1.5849625) / 2, abs=1e-4)
    assert m["recall@100"] == 1.0 and m["queries"] == 2


def test_unretrieved_queries_count_as_zero():
    m = metrics_from_run({"q1": {"d1": 1}, "q2": {"d2": 1}}, {"q1": {"d1": 1.0}})
    assert m["ndcg@10"] == pytest.approx(0.5) and m["recall@100"] == pytest.approx(0.5)


def test_mrr_is_cut_at_ten():
    run = {"q": {f"x{i}": 1.0 - i / 100 for i in range(10)} | {"d": 0.001}}
    assert metrics_from_run({"q": {"d": 1}}, run)["mrr@10"] == 0.0


def test_chunk_hits_aggregate_to_documents_by_max():
    hits = [SearchHit("c1", 0.4, {"doc_id": "a"}), SearchHit("c2", 0.9, {"doc_id": "a"}),
            SearchHit("c3", 0.5, {"doc_id": "b"})]
    assert aggregate_hits(hits, "doc") == {"a": 0.9, "b": 0.5}
    assert aggregate_hits(hits, "chunk") == {"c1": 0.4, "c2": 0.9, "c3": 0.5}


def test_golden_queries_parse_and_errors_name_the_line(tmp_path):
    path = tmp_path / "golden.jsonl"
    path.write_text(json.dumps({"query": "what is wal", "doc_id": "wal.html"}) + "\n\n"
                    + json.dumps({"query": "vacuum", "doc_id": "v.html", "id": "g2"}) + "\n")
    golden = load_golden_queries(path)
    assert golden.level == "doc" and golden.qrels["g2"] == {"v.html": 1} and len(golden.queries) == 2
    path.write_text(json.dumps({"query": "x", "doc_id": "a"}) + "\n" + '{"query": "no target"}\n')
    with pytest.raises(ValueError, match=r"golden.jsonl:2"):
        load_golden_queries(path)


def test_qrels_without_query_text_are_rejected():
    with pytest.raises(ValueError, match="no text"):
        LabelledQueries({"q1": "a"}, {"q1": {"d": 1}, "q9": {"d": 1}})


@pytest.mark.parametrize("line", [
    '{"query": "vacuum", "doc_id": "v.html", "relevance": "high"}',
    '{"query": "vacuum", "doc_id": "v.html", "relevance": [1]}',
    '{"query": "vacuum", "doc_id": "v.html", "relevance": 1.5}',
    '{"query": "vacuum", "doc_id": "v.html", "relevance": true}',
    '["a list", "not an object"]',
])
def test_bad_relevance_and_rows_name_file_and_line(tmp_path, line):
    path = tmp_path / "golden.jsonl"
    path.write_text(json.dumps({"query": "wal", "doc_id": "wal.html"}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=r"golden.jsonl:2"):
        load_golden_queries(path)


def test_golden_relevance_grades_and_normalized_ids(tmp_path):
    import unicodedata

    path = tmp_path / "golden.jsonl"
    nfd = unicodedata.normalize("NFD", "docs:café.md")
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps({"query": "q", "doc_id": nfd, "relevance": "2"}) + "\r\n").encode())
    assert load_golden_queries(path).qrels == {next(iter(load_golden_queries(path).qrels)): {"docs:café.md": 2}}
