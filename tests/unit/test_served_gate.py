"""The model gate's served-mode set: each model through the live query path, over a pool of the
live collection's hits. The fixture corpus is indexed for real (LanceDB, MiniLM, its own schema)."""

from __future__ import annotations

import pytest
from tests.service.corpus import GOLDEN, SOURCE, indexed_corpus
from tests.unit.training_data import save_broken_model

from ragops.labels import collection_chunks, label_rows
from ragops.retrieval import Retriever
from ragops.retrieval_eval import LabelledQueries
from ragops.training.evaluate import chart_png, evaluate_models, model_report
from ragops.training.evaluation import add_served_set
from ragops.training.gate import SERVED_SET, decide
from ragops.training.served import POOL_DEPTH, served_metrics, served_path, served_pool


@pytest.fixture(scope="module")
def corpus(pg_dsn, tmp_path_factory, embedder):
    yield from indexed_corpus(pg_dsn, tmp_path_factory.mktemp("served"), embedder)


@pytest.fixture(scope="module")
def test_rows(corpus):
    """The golden queries on their documents' best chunks, as a synthetic test split (chunk level)."""
    labelled = LabelledQueries({f"q{i}": q for i, (q, _) in enumerate(GOLDEN)},
                               {f"q{i}": {f"{SOURCE}:{d}": 1} for i, (_, d) in enumerate(GOLDEN)}, "doc")
    rows, _ = label_rows(labelled, collection_chunks(corpus.svc, corpus.alias))
    return [{**r, "label_source": "synthetic"} for r in rows]


@pytest.fixture(scope="module")
def broken_model(base_model_path, tmp_path_factory):
    return str(save_broken_model(base_model_path, tmp_path_factory.mktemp("broken") / "model"))


def test_the_live_model_on_its_pool_ranks_exactly_as_the_service_serves(corpus, test_rows, base_model_path,
                                                                        broken_model):
    pool = served_pool(corpus.svc, corpus.alias, test_rows)
    assert pool.labelled.level == "chunk" and len(pool.labelled.queries) == len(GOLDEN)
    assert {r["chunk_id"] for r in test_rows} <= set(pool.texts)
    assert len(pool.texts) <= len(test_rows) + 2 * POOL_DEPTH * len(GOLDEN)
    # The pool holds the live dense and keyword top 30 of every query, so hybrid over it with the
    # live model is the service's own top 10, hit for hit (the model encodes the pool afresh).
    live = Retriever(corpus.svc, corpus.alias, cite=False)
    queries = [pool.labelled.queries[q] for q in sorted(pool.labelled.queries)]
    served = [[h.chunk_id for h in r.hits] for r in live.search_many(queries, k=10, cite=False, similarity=False)]
    pooled = [[h.chunk_id for h in r.hits]
              for r in served_path(pool, base_model_path).search_many(queries, k=10, cite=False, similarity=False)]
    assert pooled == served and all(len(hits) == 10 for hits in served)
    # A bound on the queries keeps the same sample whatever the rows' order.
    three = served_pool(corpus.svc, corpus.alias, test_rows, max_queries=3)
    again = served_pool(corpus.svc, corpus.alias, list(reversed(test_rows)), max_queries=3)
    assert len(three.labelled.queries) == 3 and three.labelled.queries == again.labelled.queries
    assert set(three.labelled.queries) < set(pool.labelled.queries)
    base = served_metrics(pool, base_model_path)
    # A model that retrieves badly ranks the same pool worse, keyword list and fusion alike.
    assert served_metrics(pool, broken_model)["ndcg@10"] < base["ndcg@10"] - 0.05


def test_the_served_set_becomes_the_gates_primary_set_and_the_test_split_a_guard(corpus, test_rows,
                                                                                   base_model_path, broken_model):
    paths = {"live": base_model_path, "candidate": broken_model}
    report = evaluate_models(paths, test_rows, [384, 64], [10])
    add_served_set(corpus.svc, corpus.alias, test_rows, paths, report)
    assert report["primary_set"] == SERVED_SET and "skipped_sets" not in report
    assert report["sets"][SERVED_SET]["guard"] is False and report["sets"]["synthetic-test"]["guard"] is True
    assert corpus.svc.store.get_alias(corpus.alias) in report["sets"][SERVED_SET]["notes"][0]
    assert set(report["models"]["candidate"]["metrics"][SERVED_SET]) == {"384"}
    assert chart_png(report).startswith(b"\x89PNG")   # a panel for a set scored at one dim only
    decision = decide(model_report(report, "candidate"), model_report(report, "live"), margin=0.0)
    assert not decision.promote and decision.reasons[0].startswith(f"ndcg@10 on {SERVED_SET}@384")
    assert decision.inputs["primary_set"] == SERVED_SET
    assert {(g["set"], g["dim"]) for g in decision.inputs["guards"]} == {("synthetic-test", 384),
                                                                        ("synthetic-test", 64)}

    # No live collection to search: the test split stays primary, and the report says why.
    alone = evaluate_models(paths, test_rows, [384], [10])
    add_served_set(corpus.svc, "NoSuchAlias", test_rows, paths, alone)
    assert alone["primary_set"] == "synthetic-test" and SERVED_SET not in alone["sets"]
    assert "NoSuchAlias" in alone["skipped_sets"][SERVED_SET]
