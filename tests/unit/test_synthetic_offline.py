"""The offline generator, sampling and the document split: deterministic, spread, leak-free."""

from __future__ import annotations

from collections import Counter

import pytest
from tests.unit.synthetic_corpus import chunk_rows

from ragops.synthetic.offline import heading_query, offline_queries, split_sentences
from ragops.synthetic.sampling import sample_chunks
from ragops.synthetic.split import split_by_document


def test_heading_query_uses_informative_headings_only():
    assert heading_query({"heading_path": "Guide > How autovacuum picks tables", "title": "Guide"}) == \
        "How autovacuum picks tables"
    # a generic or too-short heading falls back to the title, if that is informative
    assert heading_query({"heading_path": "Paper > Introduction", "title": "Microstructure of white matter"}) == \
        "Microstructure of white matter"
    assert heading_query({"heading_path": "Overview", "title": "Notes"}) is None


def test_ict_query_is_a_sentence_removed_from_its_positive():
    records = offline_queries(chunk_rows(), questions_per_chunk=3, seed=1, use_headings=False)
    assert records and all(r["kind"] == "ict" for r in records)
    by_chunk = {c["chunk_id"]: c for c in chunk_rows()}
    for r in records:
        chunk = by_chunk[r["chunk_id"]]
        assert r["query"] in split_sentences(chunk["text"])          # the query is a sentence of the chunk
        assert r["query"] not in r["positive"]                       # ... taken out of the positive
        assert r["positive"].startswith(chunk["heading_path"])       # the positive keeps its context
    per_chunk = Counter(r["chunk_id"] for r in records)
    assert max(per_chunk.values()) <= 3


def test_offline_generation_is_deterministic_and_seeded():
    chunks = chunk_rows()
    a = offline_queries(chunks, questions_per_chunk=2, seed=7)

    def key(r):
        return r["chunk_id"], r["question_index"]

    reordered = offline_queries(list(reversed(chunks)), questions_per_chunk=2, seed=7)
    assert sorted(a, key=key) == sorted(reordered, key=key)          # input order does not matter
    assert a == offline_queries(chunks, questions_per_chunk=2, seed=7)
    b = offline_queries(chunks, questions_per_chunk=2, seed=8)
    assert [r["query"] for r in a] != [r["query"] for r in b]
    kinds = Counter(r["kind"] for r in a)
    assert kinds["heading"] > 0 and kinds["ict"] > 0


def test_stratified_sampling_spreads_across_documents():
    chunks = chunk_rows()
    docs = {c["doc_id"] for c in chunks}
    picked = sample_chunks(chunks, size=len(docs), strategy="stratified", seed=3)
    assert {c["doc_id"] for c in picked} == docs                      # one chunk from every document first
    assert sample_chunks(chunks, size=5, strategy="uniform", seed=3) == \
        sample_chunks(list(reversed(chunks)), size=5, strategy="uniform", seed=3)
    assert len(sample_chunks(chunks, size=1000, strategy="uniform", seed=3)) == len(chunks)
    with pytest.raises(ValueError, match="sample_strategy"):
        sample_chunks(chunks, size=3, strategy="random")


def test_min_words_excludes_stub_chunks():
    chunks = chunk_rows() + [{**chunk_rows()[0], "chunk_id": "stub", "text": "Too short."}]
    assert "stub" not in {c["chunk_id"] for c in sample_chunks(chunks, size=100, seed=0, min_words=5)}


def test_split_by_document_has_no_leakage_and_is_stable():
    records = [{"doc_id": f"doc{d}", "query": f"q{d}-{i}"} for d in range(40) for i in range(3)]
    train, test = split_by_document(records, test_ratio=0.25, seed=5)
    assert not {r["doc_id"] for r in train} & {r["doc_id"] for r in test}
    assert len(train) + len(test) == len(records)
    assert 0.1 < len({r["doc_id"] for r in test}) / 40 < 0.45
    reordered_test = split_by_document(records[::-1], test_ratio=0.25, seed=5)[1]
    assert {r["doc_id"] for r in reordered_test} == {r["doc_id"] for r in test}
    # a document keeps its side when the dataset grows
    grown = records + [{"doc_id": f"new{d}", "query": "x"} for d in range(10)]
    test_docs = {r["doc_id"] for r in test}
    grown_test = {r["doc_id"] for r in split_by_document(grown, test_ratio=0.25, seed=5)[1]}
    assert test_docs <= grown_test
    other_seed = {r["doc_id"] for r in split_by_document(records, test_ratio=0.25, seed=6)[1]}
    assert other_seed != test_docs


def test_split_never_leaves_a_side_empty_with_two_documents():
    records = [{"doc_id": "a", "query": "1"}, {"doc_id": "b", "query": "2"}]
    for seed in range(10):
        train, test = split_by_document(records, test_ratio=0.1, seed=seed)
        assert len(train) == 1 and len(test) == 1
    with pytest.raises(ValueError, match="test_ratio"):
        split_by_document(records, test_ratio=1.5)


def test_heading_queries_survive_the_copy_filter():
    from ragops.synthetic.filters import apply_filters

    records = [r for r in offline_queries(chunk_rows(), questions_per_chunk=1, seed=0) if r["kind"] == "heading"]
    assert records and all(r["query"] not in r["positive"] for r in records)
    kept, counts = apply_filters(records)
    assert counts["copies_passage"] == 0 and len(kept) == len(records)
