"""Tier 3: rag_evaluate through dag.test() on the fixture corpus (indexed with the indexing pipeline
into the test's own schema, artifact root and LanceDB), real Postgres.

- Without an LLM: retrieval metrics per set and per source, the non-LLM answer checks, the judge
  named as a fallback; one evaluation artifact with lineage to the collection and model.
- With the chat-completions test server: the judge's four metrics, the LLM calls counted, and a
  re-run answered from the registry's cache (the server sees no new call).
- A planted regression: a collection that lost the documents the golden queries need is promoted
  with the gate's tolerance opened; the next evaluation alerts (set, metric, before, after, the
  collection version that changed) and fails without retry, after recording the evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.llm_server import LLMTestServer, Reply
from tests.service.corpus import FIXTURE_CORPUS, GOLDEN, SOURCE, golden_file

from .conftest import run_dag, task_states, xcom

pytestmark = pytest.mark.dagrun
ALIAS = "Docs"
API_KEY = "eval-test-key"
VERDICT = {"faithfulness": 1.0, "answer_relevance": 0.75, "context_precision": 0.5, "citation_correctness": 1.0}


class JudgingServer(LLMTestServer):
    """The test server, answering the judge's prompt with a fixed verdict (other prompts as usual)."""

    def _answer(self, h, body, reply):
        user = next((m["content"] for m in body.get("messages") or [] if m.get("role") == "user"), "")
        if reply.content is None and "Grade the answer" in user:
            reply = Reply(content=json.dumps(VERDICT))
        super()._answer(h, body, reply)


def index(ragops_env, root: Path, docs: Path, golden: Path, embedder, run_id: str, **overrides):
    """One rag_index run (the pipeline, the DAG's steps) gated on the golden queries."""
    import shutil

    from ragops.config import RagopsSettings
    from ragops.indexing.params import IndexParams
    from ragops.indexing.pipeline import run_pipeline
    from ragops.services import Services

    if not docs.exists():
        shutil.copytree(FIXTURE_CORPUS, docs)
    svc = Services(RagopsSettings.from_env({"RAGOPS_PG_DSN": ragops_env.registry.dsn,
                                            "RAGOPS_SCHEMA": ragops_env.schema,
                                            "RAGOPS_ARTIFACT_ROOT": str(ragops_env.artifact_root),
                                            "RAGOPS_VECTOR_DIR": str(ragops_env.vector_dir)}))
    params = IndexParams(alias=ALIAS, sources=[{"type": "folder", "name": SOURCE, "path": str(docs), "root": str(root)}],
                         chunk_size=96, chunk_overlap=16, smoke_sample=8, smoke_min_hit_rate=0.0,
                         golden_queries=str(golden), **overrides)
    try:
        return run_pipeline(svc, params, run_id, embedder=embedder)
    finally:
        svc.close()


@pytest.fixture
def indexed(ragops_env, tmp_path, embedder):
    golden = golden_file(tmp_path / "golden.jsonl")
    index(ragops_env, tmp_path, tmp_path / "docs", golden, embedder, "index-1")
    return {"golden": golden, "docs": tmp_path / "docs"}


def evaluations(registry) -> list:
    return registry.list_artifacts("evaluation", "rag-evaluation")


def test_without_an_llm_retrieval_per_set_and_source_and_the_judge_named_as_fallback(ragops_env, indexed,
                                                                                      monkeypatch, embedder, tmp_path):
    from ragops.config import RagopsSettings
    from ragops.evaluation.sets import register_eval_set
    from ragops.services import Services

    monkeypatch.delenv("AIRFLOW_CONN_RAGOPS_LLM", raising=False)
    registry = ragops_env.registry
    # a second golden set, registered as a user would (chunk-free: two of the queries)
    extra = tmp_path / "ops.jsonl"
    extra.write_text("".join(json.dumps({"query": q, "doc_id": f"{SOURCE}:{d}"}) + "\n" for q, d in GOLDEN[:2]))
    svc = Services(RagopsSettings.from_env({"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": ragops_env.schema,
                                            "RAGOPS_ARTIFACT_ROOT": str(ragops_env.artifact_root),
                                            "RAGOPS_VECTOR_DIR": str(ragops_env.vector_dir)}))
    registered = register_eval_set(svc, golden=str(extra))
    svc.close()

    run = run_dag("rag_evaluate", {"alias": ALIAS, "sample_size": 4})
    assert run.state == "success", task_states(run)
    (evaluation,) = evaluations(registry)
    assert evaluation.status == "done" and evaluation.run_key == f"rag_evaluate/{run.run_id}"
    sets = evaluation.metrics["sets"]
    assert set(sets) == {"golden", "golden-ops"}
    golden = sets["golden"]
    assert golden["queries"] == len(GOLDEN) and sets["golden-ops"]["queries"] == 2
    assert {"ndcg@10", "mrr@10", "recall@100"} <= set(golden) and golden["ndcg@10"] > 0.5
    assert set(golden["by_source"]) == {SOURCE} and golden["by_source"][SOURCE]["queries"] == len(GOLDEN)
    # the non-LLM generation checks ran; the judge is a named fallback
    generation = evaluation.metrics["generation"]
    assert generation["answered"] == 4 and generation["answers"] == {"extractive": 4}
    assert generation["citation_validity"] == 1.0 and 0 < generation["gold_overlap"] <= 1
    assert "faithfulness" not in generation and "llm" not in generation
    assert any(f.startswith("LLM judge (ragops_llm) -> non-LLM checks") for f in evaluation.metrics["fallbacks"])
    summary = xcom(run, "close_run")
    assert any("LLM judge" in f for f in summary["fallbacks"]) and summary["judge_fallback"]
    assert any(fb["service"] == "LLM judge (ragops_llm)" for fb in registry.get_run(evaluation.run_key)["fallbacks"])
    assert summary["sets"]["golden"]["ndcg@10"] == golden["ndcg@10"] and summary["status"] == "success"
    # what was evaluated, by version, with lineage edges
    live = registry.get_alias("collection", ALIAS)
    assert evaluation.params["collection_id"] == live.id and evaluation.params["collection_version"] == live.version
    parents = {(a.kind, rel) for a, rel in registry.parents(evaluation.id)}
    assert {("collection", "evaluates"), ("model", "evaluates"), ("eval_set", "evaluated_on")} <= parents
    assert evaluation.params["reranker_id"] is None
    report = ragops_env.artifacts().read_json(ragops_env.artifacts().rel_of(evaluation.uri))
    assert evaluation.uri.split("/evaluations/", 1)[1].startswith(f"{ALIAS}/")
    assert report["metrics"] == evaluation.metrics and report["regressions"] == []
    assert registered.kind == "eval_set" and registered.params["level"] == "doc"

    # Planted regression: the documents four golden queries need are gone; the gate's tolerance is
    # opened so the worse collection goes live. The next evaluation alerts and fails.
    for _, doc in GOLDEN[:4]:
        (indexed["docs"] / doc).unlink()
    index(ragops_env, tmp_path, indexed["docs"], indexed["golden"], embedder, "index-2", ndcg_tolerance=1.0)
    worse = registry.get_alias("collection", ALIAS)
    assert worse.id != live.id

    failed = run_dag("rag_evaluate", {"alias": ALIAS, "sets": ["golden"], "sample_size": 0})
    assert failed.state == "failed"
    states = task_states(failed)
    assert states["record"] == "failed" and states["close_run"] == "failed"
    run_key = f"rag_evaluate/{failed.run_id}"
    latest = evaluations(registry)[-1]
    assert latest.run_key == run_key and latest.status == "failed"
    assert latest.metrics["sets"]["golden"]["ndcg@10"] < golden["ndcg@10"] - 0.05
    (alert,) = [a for a in registry.alerts(run_key) if a["title"].startswith("evaluation regression")]
    assert alert["title"].startswith(f"evaluation regression: {ALIAS} golden")
    before = f"{golden['ndcg@10']:.4f}"
    after = f"{latest.metrics['sets']['golden']['ndcg@10']:.4f}"
    assert f"golden ndcg@10: {before} -> {after}" in alert["message"]
    assert f"collection {live.uri} v{live.version} -> {worse.uri} v{worse.version}" in alert["message"]
    assert registry.get_run(run_key)["status"] == "failed"
    from airflow.utils.session import create_session

    with create_session() as session:
        record_ti = next(ti for ti in failed.get_task_instances(session=session) if ti.task_id == "record")
        assert record_ti.try_number == 1   # a data-quality failure: no retry


def test_with_an_llm_the_judge_scores_and_a_rerun_pays_nothing(ragops_env, indexed, monkeypatch):
    registry = ragops_env.registry
    with JudgingServer(api_key=API_KEY) as server:
        monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_LLM", json.dumps(
            {"conn_type": "http", "host": server.base_url, "password": API_KEY,
             "extra": {"model": "test-model", "price_prompt_per_1m": 1.0, "price_completion_per_1m": 2.0}}))
        first = run_dag("rag_evaluate", {"alias": ALIAS, "sample_size": 3})
        assert first.state == "success", task_states(first)
        generation = evaluations(registry)[-1].metrics["generation"]
        paid = server.calls
        assert paid > 0 and generation["llm"]["calls"] == paid and generation["llm"]["cache_hits"] == 0
        assert generation["llm"]["cost_usd"] > 0 and generation["capped"] is False
        answered = generation["answers"].get("generated", 0)
        assert answered >= 1 and generation["judged"] == answered
        assert paid == answered * 2 and generation["faithfulness"] == VERDICT["faithfulness"]
        assert generation["context_precision"] == VERDICT["context_precision"]
        assert not any("LLM judge" in f for f in evaluations(registry)[-1].metrics["fallbacks"])

        second = run_dag("rag_evaluate", {"alias": ALIAS, "sample_size": 3})
        assert second.state == "success", task_states(second)
        assert server.calls == paid                        # nothing paid twice
        again = evaluations(registry)[-1]
        assert again.run_key == f"rag_evaluate/{second.run_id}" and len(evaluations(registry)) == 2
        assert again.metrics["generation"]["llm"] == {**generation["llm"], "calls": 0, "cache_hits": paid,
                                                      "cost_usd": 0.0}
        assert again.metrics["generation"]["faithfulness"] == generation["faithfulness"]
        assert again.status == "done"
