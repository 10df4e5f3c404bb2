"""Labelled queries in: document labels on their best chunk, label sources, the split, the CLI,
and a labelled version the embedding trainer reads. The fixture corpus is indexed for real
(LanceDB, MiniLM, a lineage schema of its own)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tests.service.corpus import GOLDEN, SOURCE, indexed_corpus

from ragops.errors import InvalidInput
from ragops.labels import (
    LABEL_COLUMNS,
    collection_chunks,
    import_labels,
    label_rows,
    label_sources_of,
    merge_split,
    read_labels,
    with_hard_negatives,
)
from ragops.retrieval_eval import LabelledQueries
from ragops.synthetic.dataset import dataset_rows, query_id


@pytest.fixture(scope="module")
def corpus(pg_dsn, tmp_path_factory, embedder):
    yield from indexed_corpus(pg_dsn, tmp_path_factory.mktemp("labels"), embedder)


@pytest.fixture(scope="module")
def chunks(corpus):
    return collection_chunks(corpus.svc, corpus.alias)


def golden_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_document_label_maps_to_the_documents_best_chunk_by_dense_score(chunks, embedder):
    labelled = LabelledQueries({f"q{i}": q for i, (q, _) in enumerate(GOLDEN)},
                               {f"q{i}": {f"{SOURCE}:{d}": 1} for i, (_, d) in enumerate(GOLDEN)}, "doc")
    rows, dropped = label_rows(labelled, chunks)
    assert not dropped and len(rows) == len(GOLDEN)
    multi = 0
    for row in rows:
        doc_chunks = chunks.by_doc[row["doc_id"]]
        assert row["chunk_id"] in doc_chunks and row["label_source"] == "imported" and row["kind"] == "imported"
        assert row["query_id"] == query_id(row["chunk_id"], row["query"])
        if len(doc_chunks) > 1:
            multi += 1
            vectors = chunks.vectors(doc_chunks)
            q = embedder.encode([row["query"]])[0]
            best = max(doc_chunks, key=lambda c: float(np.dot(vectors[c], q)))
            assert row["chunk_id"] == best
    assert multi >= 2, "the fixture's documents must have several chunks for this test to mean anything"

    two, _ = label_rows(labelled, chunks, chunks_per_doc=2)
    assert len(two) > len(rows) and {r["chunk_id"] for r in rows} <= {r["chunk_id"] for r in two}


def test_chunk_labels_are_taken_as_given_and_unknown_targets_are_dropped(chunks):
    some = sorted(chunks.rows)[:2]
    labelled = LabelledQueries({"a": "first", "b": "second", "c": "gone"},
                               {"a": {some[0]: 1}, "b": {some[1]: 2, "nope": 1}, "c": {"nope#0": 1}}, "chunk")
    rows, dropped = label_rows(labelled, chunks)
    assert [r["chunk_id"] for r in rows] == some and dropped == {"unknown_chunk": 2}
    docs = LabelledQueries({"a": "x"}, {"a": {"fx:missing.md": 1, f"{SOURCE}:faq.txt": 0}}, "doc")
    rows, dropped = label_rows(docs, chunks)
    assert rows == [] and dropped == {"unknown_doc": 1, "not_relevant": 1}


def row(doc, q, split_source="synthetic", kind="llm"):
    cid = f"{doc}#0"
    return {"query_id": query_id(cid, q), "query": q, "positive": "p", "negative": None, "doc_id": doc,
            "chunk_id": cid, "kind": kind, "label_source": split_source}


def test_the_split_keeps_base_documents_on_their_side_and_no_query_on_both():
    base = {"train": [row("d1", "q1")], "test": [row("d2", "q2")]}
    imported = [row("d1", "new on d1", "imported", "imported"), row("d2", "new on d2", "imported", "imported"),
                row("d1", "q2", "imported", "imported"),           # q2 is tested: not trained on
                row("d2", "q2", "imported", "imported")]           # the very row of the base: not added twice
    imported += [row(f"n{i}", f"fresh {i}", "imported", "imported") for i in range(40)]
    splits, dropped = merge_split(imported, base, test_ratio=0.3, seed=13)
    side = {r["doc_id"]: name for name in ("train", "test") for r in splits[name]}
    assert side["d1"] == "train" and side["d2"] == "test"
    train_docs = {r["doc_id"] for r in splits["train"]}
    test_docs = {r["doc_id"] for r in splits["test"]}
    assert not train_docs & test_docs and 3 < len(test_docs) < 30
    assert not {r["query"] for r in splits["train"]} & {r["query"] for r in splits["test"]}
    assert dropped["already_in_base"] == 1 and dropped["straddling"] == 1
    again, _ = merge_split(list(reversed(imported)), base, test_ratio=0.3, seed=13)
    assert again == splits   # deterministic: a document's side is a hash of its id
    alone, _ = merge_split([r for r in imported if r["doc_id"].startswith("n")], None, test_ratio=0.3, seed=13)
    assert alone["train"] and alone["test"]


def test_read_labels_reads_beir_and_jsonl_and_names_bad_input(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "a claim"}) + "\n")
    (folder / "qrels" / "dev-train.tsv").write_text("query-id\tcorpus-id\tscore\n1\t42\t1\n")
    found = read_labels(folder / "qrels" / "dev-train.tsv")
    assert found.format == "beir" and found.labelled.qrels == {"1": {"42": 1}} and found.description["split"] == "dev-train"
    assert read_labels(folder, "dev-train").content_hash == found.content_hash
    jsonl = golden_jsonl(tmp_path / "g.jsonl", [{"query": "q", "chunk_id": "c1"}])
    assert read_labels(jsonl).labelled.level == "chunk"
    with pytest.raises(InvalidInput, match="name its qrels split"):
        read_labels(folder)
    with pytest.raises(InvalidInput, match="expected a BEIR qrels"):
        read_labels(tmp_path / "labels.csv")


def test_import_merges_into_a_base_version_with_label_sources_and_lineage(corpus, chunks, tmp_path):
    from ragops.hashing import sha256_bytes
    from ragops.synthetic.dataset import dataset_hash, record_version, to_rows

    svc, registry = corpus.svc, corpus.registry
    # A synthetic base version (one row per chunk of two documents), reviewed: one row accepted.
    docs = [f"{SOURCE}:guides/installation.md", f"{SOURCE}:reference/cli.html"]
    synthetic = [{"query": f"synthetic question {i} about {c}", "positive": "text", "negative": None, "doc_id": d,
                  "chunk_id": c, "kind": "llm"} for d in docs for i, c in enumerate(chunks.by_doc[d][:2])]
    base_rows = to_rows(synthetic)
    splits = {"train": [r for r in base_rows if r["doc_id"] == docs[0]],
              "test": [r for r in base_rows if r["doc_id"] == docs[1]]}
    chunk_set = registry.get_artifact(chunks.chunk_set_id)
    base = record_version(svc, splits, dataset_hash(splits), usable=True, params={}, metrics={},
                          parents=[(chunk_set.id, "generated_from")], run_key=None)
    review_rel = "reviews/test/labels.jsonl"
    accepted = splits["train"][0]["query_id"]
    svc.artifacts.write_bytes(review_rel, (json.dumps({"id": accepted, "decision": "accept"}) + "\n").encode())
    review = registry.record_artifact("review", "synthetic-queries", sha256_bytes(b"r"), svc.artifacts.uri(review_rel),
                                      status="applied")
    registry.add_edge(review.id, base.dataset_id, "labels")

    labels = golden_jsonl(tmp_path / "golden.jsonl", [{"query": q, "doc_id": f"{SOURCE}:{d}"} for q, d in GOLDEN]
                          + [{"query": "nowhere", "doc_id": "fx:missing.md"}])
    result = import_labels(svc, str(labels), alias=corpus.alias, merge_with="latest", test_ratio=0.3)
    assert result.merged_with == base.dataset_id and result.dataset.version == base.version + 1
    assert result.dropped["unknown_doc"] == 1 and result.rows == len(GOLDEN) and result.level == "doc"
    assert result.label_sources == {"synthetic": 3, "reviewed": 1, "imported": len(GOLDEN)}
    art = registry.get_artifact(result.dataset.dataset_id)
    assert art.status == "usable" and art.metrics["label_sources"] == result.label_sources
    assert {(p.kind, rel) for p, rel in registry.parents(art.id)} == {
        ("labels", "imported_from"), ("chunks", "generated_from"), ("dataset", "extends")}
    stored = dataset_rows(svc.artifacts, svc.artifacts.rel_of(art.uri))
    assert all(set(r) == set(LABEL_COLUMNS) for name in stored for r in stored[name])
    side = {r["doc_id"]: name for name in stored for r in stored[name]}
    assert side[docs[0]] == "train" and side[docs[1]] == "test"
    assert not {r["doc_id"] for r in stored["train"]} & {r["doc_id"] for r in stored["test"]}
    # Sources survive a second read (the version records them).
    assert label_sources_of(svc, art.id, stored) == stored

    # The same labels again: the same content, the same version (not new).
    again = import_labels(svc, str(labels), alias=corpus.alias, merge_with=base.version, test_ratio=0.3)
    assert again.dataset.dataset_id == art.id and not again.dataset.new_version

    # The embedding trainer reads it as it reads a synthetic version.
    from ragops.training.train_embeddings import load_pairs

    pairs, _ = load_pairs(svc.artifacts.local_path(svc.artifacts.rel_of(art.uri)).as_posix(), "train", {})
    assert set(pairs.column_names) >= {"anchor", "positive"} and len(pairs) == result.dataset.rows_train


def test_hard_negatives_skip_every_labelled_document_and_passages_near_the_positive(chunks, monkeypatch):
    queries = {f"q{i}": q for i, (q, _) in enumerate(GOLDEN)}
    own = {f"q{i}": f"{SOURCE}:{d}" for i, (_, d) in enumerate(GOLDEN)}
    # What the collection ranks first for each query among other documents: labelled relevant
    # too, so it must never come back as that query's negative.
    vectors = chunks.encode(list(queries.values()))
    first_foreign = {}
    for qid, vector in zip(queries, vectors):
        hits = chunks.store.vector_search(chunks.collection, vector.tolist(), 20)
        first_foreign[qid] = next(h.properties["doc_id"] for h in hits if h.properties["doc_id"] != own[qid])
    labelled = LabelledQueries(queries, {q: {own[q]: 1, first_foreign[q]: 1} for q in queries}, "doc")
    rows, _ = label_rows(labelled, chunks)
    rows = [r for r in rows if r["doc_id"] == own[next(q for q, t in queries.items() if t == r["query"])]]

    mined, left_out = with_hard_negatives(rows, chunks, labelled, margin=0.0)
    assert left_out == 0 and len(mined) == len(rows)
    for row in mined:
        qid = next(q for q, t in queries.items() if t == row["query"])
        negative_doc = chunks.rows[row["negative_chunk_id"]]["doc_id"]
        assert negative_doc not in {own[qid], first_foreign[qid]}
        assert row["negative"] and row["negative"] != row["positive"]
    # With a margin, a negative scores at most (1 - margin) x the positive's similarity: the
    # passages nearer than that are likelier unlabelled answers than negatives.
    qvec = dict(zip((r["query"] for r in rows), chunks.encode([r["query"] for r in rows])))
    near = with_hard_negatives(rows, chunks, labelled, margin=0.5)[0]
    changed = 0
    for row, before in zip(near, mined):
        vecs = chunks.vectors([row["chunk_id"], row["negative_chunk_id"]])
        positive, negative = (float(vecs[c] @ qvec[row["query"]]) for c in (row["chunk_id"], row["negative_chunk_id"]))
        assert negative <= 0.5 * positive + 1e-4
        changed += row["negative_chunk_id"] != before["negative_chunk_id"]
    assert changed, "a margin of 0.5 changed no negative: the margin is not applied"
    # One candidate searched first (each golden query's first hit is its own document): the
    # deeper search finds the same negatives the wider first search did.
    monkeypatch.setattr("ragops.labels.NEGATIVES_K", 1)
    deep, left_out = with_hard_negatives(rows, chunks, labelled, margin=0.0)
    assert left_out == 0 and [r["negative_chunk_id"] for r in deep] == [r["negative_chunk_id"] for r in mined]
    # A row no negative can be found for, even deeper, leaves the train split, counted.
    monkeypatch.setattr("ragops.labels.NEGATIVES_MAX_K", 1)
    kept, left_out = with_hard_negatives(rows, chunks, labelled, margin=0.0)
    assert kept == [] and left_out == len(rows)
    with pytest.raises(InvalidInput, match="negative_margin"):
        with_hard_negatives(rows, chunks, labelled, margin=1.0)


def test_an_import_with_hard_negatives_trains_on_triplets(corpus, tmp_path):
    from ragops.training.train_embeddings import load_pairs

    svc = corpus.svc
    labels = golden_jsonl(tmp_path / "golden.jsonl", [{"query": q, "doc_id": f"{SOURCE}:{d}"} for q, d in GOLDEN])
    result = import_labels(svc, str(labels), alias=corpus.alias, merge_with="none", test_ratio=0.3,
                           hard_negatives=True, negative_margin=0.0)
    art = corpus.registry.get_artifact(result.dataset.dataset_id)
    assert art.params["hard_negatives"] == {"k": 50, "max_k": 500, "margin": 0.0} and result.dropped.get("no_negative") == 0
    stored = dataset_rows(svc.artifacts, svc.artifacts.rel_of(art.uri))
    assert stored["train"] and all(r["negative"] for r in stored["train"])
    pairs, _ = load_pairs(svc.artifacts.local_path(svc.artifacts.rel_of(art.uri)).as_posix(), "train", {})
    assert pairs.column_names == ["anchor", "positive", "negative"]


def test_the_cli_imports_labels_alone(corpus, tmp_path, monkeypatch, capsys):
    from ragops.cli import main

    for key, value in corpus.settings_env.items():
        monkeypatch.setenv(key, value)
    labels = golden_jsonl(tmp_path / "golden.jsonl", [{"query": q, "doc_id": f"{SOURCE}:{d}"} for q, d in GOLDEN])
    assert main(["import-labels", "--labels", str(labels), "--collection", corpus.alias, "--merge-with", "none",
                 "--test-ratio", "0.4"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.split("\n", 1)[1])
    assert summary["merged_with"] is None and summary["label_sources"] == {"imported": len(GOLDEN)}
    assert main(["import-labels", "--labels", str(tmp_path / "missing.jsonl"), "--collection", corpus.alias]) == 2
