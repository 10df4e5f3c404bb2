"""Tier 3: whole rag_synthetic_data runs through dag.test() after a rag_index run on the fixture
corpus: offline and LLM generation (the local OpenAI-compatible server as ragops_llm), the asset
emitted only for a new usable version, and the review import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .conftest import run_dag, task_states, xcom

FIXTURE_CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
pytestmark = pytest.mark.dagrun
API_KEY = "sk-dag-test-SECRET"


@pytest.fixture
def indexed(ragops_env, tmp_path):
    corpus = tmp_path / "docs"
    shutil.copytree(FIXTURE_CORPUS, corpus)
    conf = {"sources": [{"type": "folder", "name": "fixture", "path": str(corpus), "root": str(corpus.parent)}],
            "alias": "TestDocs", "chunk_size": 96, "chunk_overlap": 16, "mode": "full", "smoke_sample": 10,
            "smoke_min_hit_rate": 0.7}
    run = run_dag("rag_index", conf)
    assert run.state == "success", task_states(run)
    return ragops_env


def conf(**overrides) -> dict:
    return {"alias": "TestDocs", "sample_size": 40, "questions_per_chunk": 2, "generator": "auto",
            "round_trip": True, "round_trip_k": 5, "hard_negatives": True, "negatives_k": 5, "test_ratio": 0.3,
            "max_doc_share": 0.5, "review_sample_size": 6, **overrides}


def asset_events() -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ragops.vocabulary import DATASET_ASSET_URI

    with create_session() as session:
        return (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == DATASET_ASSET_URI).count())


def test_offline_then_llm_then_review(indexed, monkeypatch):
    from tests.llm_server import LLMTestServer

    registry, artifacts = indexed.registry, indexed.artifacts()
    events_before = asset_events()
    monkeypatch.delenv("AIRFLOW_CONN_RAGOPS_LLM", raising=False)

    first = run_dag("rag_synthetic_data", conf())
    states = task_states(first)
    assert first.state == "success", states
    assert states["publish"] == "success" and states["import_review"] == "skipped"
    assert states["close_run"] == "success"
    dataset = xcom(first, "register")
    assert dataset["status"] == "usable" and dataset["new_version"]
    art = registry.get_artifact(dataset["dataset_id"])
    live = registry.get_alias("collection", "TestDocs")
    assert art.metrics["generator"] == "offline" and art.status == "usable"
    assert {p.id for p, rel in registry.parents(art.id) if rel == "generated_from"} == {live.params["chunk_set_id"]}
    assert xcom(first, "filter_queries")["round_trip_corpus"] == "live collection"
    assert xcom(first, "mine_negatives")["corpus"] == "live collection"
    summary = xcom(first, "close_run")
    assert any(f.startswith("LLM (ragops_llm) -> offline generator") for f in summary["fallbacks"])
    assert summary["status"] == "success" and summary["published"] and summary["dataset"]["version"] == 1
    assert asset_events() == events_before + 1

    # the same inputs: the same version, the publishing task skips, no asset event
    second = run_dag("rag_synthetic_data", conf())
    assert second.state == "success", task_states(second)
    assert task_states(second)["publish"] == "skipped"
    assert xcom(second, "register")["dataset_id"] == dataset["dataset_id"]
    assert asset_events() == events_before + 1
    assert xcom(second, "close_run")["status"] == "noop"

    # with an LLM connection, "auto" uses it; the key stays out of XCom and lineage
    with LLMTestServer(api_key=API_KEY) as server:
        monkeypatch.setenv("AIRFLOW_CONN_RAGOPS_LLM", json.dumps(
            {"conn_type": "http", "host": server.base_url, "password": API_KEY,
             "extra": {"model": "test-model", "price_prompt_per_1m": 1.0, "price_completion_per_1m": 2.0}}))
        third = run_dag("rag_synthetic_data", conf(round_trip=False, hard_negatives=False))
        assert third.state == "success", task_states(third)
        assert server.calls == xcom(third, "sample")["chunks"]
    llm_dataset = xcom(third, "register")
    llm_art = registry.get_artifact(llm_dataset["dataset_id"])
    assert llm_art.metrics["generator"] == "llm" and llm_art.metrics["total_tokens"] > 0
    assert {rel for _, rel in registry.parents(llm_art.id)} >= {"generated_from", "prompt", "generated_by"}
    assert task_states(third)["publish"] == "success"
    assert API_KEY not in json.dumps(xcom(third, "close_run"), default=str)
    assert API_KEY not in json.dumps([llm_art.params, llm_art.metrics, registry.get_run(xcom(third, "open_run")["run_key"])],
                                     default=str)
    assert not any(f.startswith("LLM") for f in xcom(third, "open_run")["fallbacks"])   # the LLM was there

    # human review: label the exported sample, import it as a new version
    exported = xcom(third, "export_review")
    rows = [json.loads(line) for line in artifacts.read_bytes(artifacts.rel_of(exported["uri"])).decode().splitlines()]
    rows[0]["decision"] = "reject"
    rows[1] |= {"decision": "edit", "edited_query": "how is the write ahead log archived for recovery"}
    artifacts.write_bytes("reviews/labels-test.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    fourth = run_dag("rag_synthetic_data", conf(review_labels="reviews/labels-test.jsonl",
                                                review_dataset_id=llm_dataset["dataset_id"]))
    states = task_states(fourth)
    assert fourth.state == "success", states
    assert states["sample"] == "skipped" and states["import_review"] == "success" and states["publish"] == "success"
    reviewed = xcom(fourth, "import_review")
    assert reviewed["dataset"]["version"] > llm_dataset["version"] and reviewed["counts"]["rejected"] == 1
    parents = {rel: p.id for p, rel in registry.parents(reviewed["dataset"]["dataset_id"])}
    assert parents["reviewed_from"] == llm_dataset["dataset_id"]
