"""The query path over a real collection: the fixture corpus indexed by the real pipeline into
LanceDB with MiniLM, citations from the real lineage, evaluation and fusion tuning through it."""

from __future__ import annotations

import pytest
from tests.service.corpus import GOLDEN, SOURCE, indexed_corpus

from ragops.retrieval import DEFAULT_FUSION, FusionConfig, Retriever, UnknownCollection, tune_fusion_report
from ragops.retrieval_eval import LabelledQueries, evaluate_path, metrics_from_run, retrieve_run


@pytest.fixture(scope="module")
def corpus(pg_dsn, tmp_path_factory, embedder):
    yield from indexed_corpus(pg_dsn, tmp_path_factory.mktemp("retrieval"), embedder)


@pytest.fixture(scope="module")
def retriever(corpus):
    return Retriever(corpus.svc, corpus.alias)


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_each_mode_finds_the_page_and_every_hit_carries_its_citation(corpus, retriever, mode):
    result = retriever.search("how do I restore a backup to a point in time", k=4, mode=mode)
    assert result.version.collection == corpus.versions[-1] and result.version.name == "Docs"
    assert result.version.model_id and result.version.version == 1
    assert result.hits and result.hits[0].citation.doc_id == f"{SOURCE}:operations/backup.md"
    assert [h.rank for h in result.hits] == list(range(1, len(result.hits) + 1))
    assert set(result.timings) >= {"encode", "first_stage", "finish", "total"}
    citations = retriever.current().citations
    for hit in result.hits:
        c = hit.citation
        rel = c.doc_id.split(":", 1)[1]
        assert c.chunk_id == hit.chunk_id and c.source == SOURCE
        assert c.location == str(corpus.root / "docs" / rel)
        assert c.heading_path.startswith(c.title) and c.title
        document = citations.document_text(c.doc_id)
        assert " ".join(document[c.char_start:c.char_end].split()) == " ".join(hit.text.split())
        assert hit.similarity is not None and -1.0 <= hit.similarity <= 1.0   # keyword hits too
    if mode == "hybrid":
        assert result.fusion == DEFAULT_FUSION and all("fused" in h.scores for h in result.hits)


def test_source_filters_and_bad_requests(retriever):
    assert retriever.search("backup", k=3, sources=[SOURCE]).hits
    assert retriever.search("backup", k=3, sources=["elsewhere"]).hits == []
    from ragops.errors import InvalidInput

    for bad, field in (({"query": "  "}, "query"), ({"k": 0}, "k"), ({"mode": "fuzzy"}, "mode")):
        kwargs = {"query": "backup"} | bad
        with pytest.raises(InvalidInput, match=f"^{field}:"):
            retriever.search(kwargs.pop("query"), **kwargs)


def test_unknown_collections_are_named(corpus):
    with pytest.raises(UnknownCollection, match="'Nope'"):
        Retriever(corpus.svc, "Nope").search("backup")
    with pytest.raises(UnknownCollection, match="not a collection or alias name"):
        Retriever(corpus.svc, "no such name")


def test_a_reranker_reorders_the_top_n_and_the_final_top_k_is_cut_after_it(corpus):
    class Reverse:
        name = "reverse-test"

        def rerank(self, query, hits):
            return list(reversed(hits))

    retriever = Retriever(corpus.svc, corpus.alias, reranker_for=lambda svc, version: Reverse())
    plain = retriever.search("where is the configuration file read from", k=5, mode="dense")
    reranked = retriever.search("where is the configuration file read from", k=3, mode="dense", rerank=True,
                                rerank_top_n=5)
    assert plain.reranker is None and reranked.reranker == "reverse-test" and reranked.candidates == 5
    assert [h.chunk_id for h in reranked.hits] == [h.chunk_id for h in reversed(plain.hits)][:3]
    assert "rerank" in reranked.timings


def test_evaluation_runs_through_the_query_path_and_measures_what_the_store_would(corpus, retriever):
    """Routing evaluation through the query path changes no number: the default fusion is the
    stores' own hybrid search, hit for hit."""
    store, collection = corpus.svc.store, corpus.versions[-1]
    labelled = LabelledQueries({f"q{i}": q for i, (q, _) in enumerate(GOLDEN)},
                               {f"q{i}": {f"{SOURCE}:{d}": 1} for i, (_, d) in enumerate(GOLDEN)})
    encode = retriever.current().encode
    for mode in ("dense", "hybrid"):
        served = retrieve_run(store, collection, labelled, mode, encode, k=10)
        vectors = encode([labelled.queries[q] for q in sorted(labelled.queries)])
        for i, qid in enumerate(sorted(labelled.queries)):
            text = labelled.queries[qid]
            raw = (store.vector_search(collection, vectors[i], k=30) if mode == "dense"
                   else store.hybrid_search(collection, text, vectors[i], k=30))
            best: dict[str, float] = {}
            for hit in raw:
                best[hit.properties["doc_id"]] = max(best.get(hit.properties["doc_id"], float("-inf")), hit.score)
            expected = dict(sorted(best.items(), key=lambda kv: -kv[1])[:10])
            assert served[qid] == pytest.approx(expected)
    metrics = evaluate_path(retriever, labelled, modes=["hybrid"])["hybrid"]
    assert metrics["queries"] == len(GOLDEN) and metrics["ndcg@10"] > 0.6


def _labels_favouring(retriever, favoured: FusionConfig, other: FusionConfig) -> tuple[LabelledQueries, int]:
    """Chunk-level labels: each query's top passage under ``favoured``. Where the two fusions'
    top passages differ, ``favoured`` scores higher."""
    pool = [q for q, _ in GOLDEN] + ["Prometheus admin port", "snapshot archive restore", "release notes 2.4 changes",
                                     "tern.conf settings", "ternctl command line client", "WAL fsync durability"]
    tops = [r.hits[0].chunk_id for r in retriever.search_many(pool, k=1, fusion=favoured, cite=False)]
    others = [r.hits[0].chunk_id for r in retriever.search_many(pool, k=1, fusion=other, cite=False)]
    differ = sum(a != b for a, b in zip(tops, others, strict=True))
    return LabelledQueries({f"q{i}": q for i, q in enumerate(pool)},
                           {f"q{i}": {top: 1} for i, top in enumerate(tops)}, "chunk"), differ


def test_tuning_chooses_weighted_fusion_when_it_scores_better_and_records_it(corpus):
    retriever = Retriever(corpus.svc, corpus.alias, params_refresh_s=0.0, refresh_s=0.0)
    for alpha in (0.2, 0.8, 0.5):
        weighted = FusionConfig("weighted", alpha)
        labelled, differ = _labels_favouring(retriever, weighted, DEFAULT_FUSION)
        if differ:
            break
    else:
        pytest.fail("no query ranks differently under weighted and RRF fusion: the fixture cannot tell them apart")
    before = retriever.current()
    assert before.fusion == DEFAULT_FUSION
    tuning = tune_fusion_report(corpus.svc, corpus.alias, labelled, candidates=[DEFAULT_FUSION, weighted],
                                labels="test-labels")
    assert tuning.chosen == weighted and tuning.score > tuning.default_score
    art = corpus.registry.get_artifact(before.version.artifact_id)
    recorded = art.params["retrieval"]
    assert recorded["fusion"] == weighted.as_dict()
    assert recorded["tuned"]["labels"] == "test-labels" and recorded["tuned"]["queries"] == len(labelled.queries)
    assert {c["fusion"] for c in recorded["tuned"]["candidates"]} == {DEFAULT_FUSION.label, weighted.label}
    assert art.metrics["retrieval"]["fusion"] == weighted.label
    # readers pick it up without a restart; the served result is what tuning measured
    assert retriever.current().fusion == weighted
    served = evaluate_path(retriever, labelled, modes=["hybrid"])["hybrid"]["ndcg@10"]
    assert served == pytest.approx(tuning.score)

    # labels that favour RRF: the default is kept (and recorded as such)
    labelled, _ = _labels_favouring(retriever, DEFAULT_FUSION, weighted)
    tuning = tune_fusion_report(corpus.svc, corpus.alias, labelled, candidates=[DEFAULT_FUSION, weighted])
    assert tuning.chosen == DEFAULT_FUSION
    assert retriever.current().fusion == DEFAULT_FUSION


def test_tuning_grid_runs_on_golden_queries_without_recording(corpus):
    labelled = LabelledQueries({f"q{i}": q for i, (q, _) in enumerate(GOLDEN)},
                               {f"q{i}": {f"{SOURCE}:{d}": 1} for i, (_, d) in enumerate(GOLDEN)})
    before = corpus.registry.get_artifact(Retriever(corpus.svc, corpus.alias).current().version.artifact_id).params
    tuning = tune_fusion_report(corpus.svc, corpus.alias, labelled, record=False)
    assert len(tuning.scores) >= 15 and tuning.chosen in {s["fusion"] for s in tuning.scores}
    assert tuning.score == max(s["ndcg@10"] for s in tuning.scores)
    assert corpus.registry.get_artifact(Retriever(corpus.svc, corpus.alias).current().version.artifact_id).params == before
    assert metrics_from_run(labelled.qrels, {})["ndcg@10"] == 0.0
