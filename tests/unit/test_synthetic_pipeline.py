"""The whole rag_synthetic_data pipeline on a tiny chunk set, with real Postgres and real files:
offline and LLM generation, lineage, idempotent versions, the DQ suite, and human review."""

from __future__ import annotations

import csv
import io
import json

import pytest
from tests.llm_server import LLMTestServer
from tests.unit.synthetic_corpus import register_chunk_set

from ragops.notify import Notifier
from ragops.synthetic.dataset import COLUMNS, load_dataset, rel_of_uri
from ragops.synthetic.llm import LLMSettings
from ragops.synthetic.pipeline import (
    SyntheticParams,
    export_review,
    import_review,
    register,
    run_pipeline,
    split,
    validate,
)
from ragops.synthetic.review import ReviewFileError


def offline_params(**overrides) -> SyntheticParams:
    values = {"sample_size": 50, "questions_per_chunk": 2, "generator": "offline", "test_ratio": 0.34, "seed": 3,
              "max_doc_share": 0.4, **overrides}
    return SyntheticParams(**values)


def test_offline_pipeline_builds_registers_and_is_idempotent(registry, artifact_store):
    chunk_set = register_chunk_set(registry, artifact_store)
    summary = run_pipeline(offline_params(), "run-1", registry=registry, artifacts=artifact_store)
    ds = summary["dataset"]
    assert ds["status"] == "usable" and ds["new_version"] and ds["version"] == 1
    assert summary["dq"]["success"], summary["dq"]["failures"]
    dd = load_dataset(artifact_store, ds["rel"])
    assert set(dd) == {"train", "test"} and dd["train"].num_rows > 0 and dd["test"].num_rows > 0
    assert set(COLUMNS) <= set(dd["train"].column_names)
    assert not set(dd["train"]["doc_id"]) & set(dd["test"]["doc_id"])
    art = registry.get_artifact(ds["dataset_id"])
    assert art.metrics["generator"] == "offline" and art.params["generator"] == "offline"
    assert art.metrics["rows_train"] == dd["train"].num_rows and "filter_counts" in art.metrics
    assert [(p.id, rel) for p, rel in registry.parents(art.id)] == [(chunk_set.id, "generated_from")]
    # the same inputs give the same version, and it is not "new" (no asset event)
    again = run_pipeline(offline_params(), "run-2", registry=registry, artifacts=artifact_store)["dataset"]
    assert (again["dataset_id"], again["version"], again["new_version"]) == (ds["dataset_id"], 1, False)
    # another seed is another version
    other = run_pipeline(offline_params(seed=4), "run-3", registry=registry, artifacts=artifact_store)["dataset"]
    assert other["version"] == 2 and other["new_version"]


def test_llm_pipeline_records_prompt_tokens_cost_and_negatives(registry, artifact_store, embedder):
    register_chunk_set(registry, artifact_store)
    with LLMTestServer(api_key="sk-secret-xyz") as server:
        llm = LLMSettings(base_url=server.base_url, api_key="sk-secret-xyz", model="test-model",
                          price_prompt_per_1m=3.0, price_completion_per_1m=6.0)
        params = offline_params(generator="llm", round_trip=True, round_trip_k=3, hard_negatives=True)
        summary = run_pipeline(params, "llm-1", registry=registry, artifacts=artifact_store, llm=llm,
                               embedder=embedder)
        calls = server.calls
        assert calls == summary["sample"]["chunks"]
        rerun = run_pipeline(params, "llm-2", registry=registry, artifacts=artifact_store, llm=llm, embedder=embedder)
        assert server.calls == calls                                  # the cache answered everything
    ds = summary["dataset"]
    assert rerun["dataset"]["dataset_id"] == ds["dataset_id"]
    art = registry.get_artifact(ds["dataset_id"])
    assert art.params["generator"] == "llm" and art.params["llm_model"] == "test-model"
    assert art.metrics["total_tokens"] > 0 and art.metrics["cost_usd"] > 0
    assert art.params["prompt_version"].startswith("query_generation.v1@")
    relations = {rel: p for p, rel in registry.parents(art.id)}
    assert relations["prompt"].kind == "prompt" and relations["prompt"].content_hash
    assert relations["generated_by"].name == "test-model"
    assert relations["filtered_with"].kind == "model"
    assert "sk-secret-xyz" not in json.dumps([art.params, art.metrics, summary], default=str)
    dd = load_dataset(artifact_store, ds["rel"])
    rows = dd["train"].to_list() + dd["test"].to_list()
    assert summary["filter"]["filter_counts"]["round_trip"] >= 0 and summary["negatives"]["mined"] > 0
    with_negative = [r for r in rows if r["negative"]]
    assert with_negative and all(r["negative"] != r["positive"] for r in with_negative)


def test_llm_generator_required_but_missing_is_a_clear_error(registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    with pytest.raises(ValueError, match="ragops_llm"):
        run_pipeline(offline_params(generator="llm"), "no-llm", registry=registry, artifacts=artifact_store)


def test_auto_generator_without_endpoint_runs_offline(registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    summary = run_pipeline(offline_params(generator="auto"), "auto", registry=registry, artifacts=artifact_store)
    assert summary["generate"]["generator"] == "offline"


def test_dq_failure_records_failed_dataset_and_alerts(registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    summary = run_pipeline(offline_params(), "good", registry=registry, artifacts=artifact_store)
    # a leak: one test document's query also lands in train
    table = artifact_store.read_table(summary["split"]["rel"]).to_pylist()
    leaked = next(r for r in table if r["split"] == "test")
    bad_rows = [*table, {**leaked, "split": "train", "query_id": "leak", "query": "a different leaked query text"}]
    import pyarrow as pa

    artifact_store.write_table("synthetic/splits/leaky.parquet", pa.Table.from_pylist(bad_rows))
    ctx = {"run_key": registry.start_run("ragops_cli", "bad"), "params": offline_params().as_dict(),
           "source": summary["source"], "model": {"model_id": "base", "artifact_id": None}}
    split_info = {**summary["split"], "rel": "synthetic/splits/leaky.parquet", "hash": "f" * 64}
    dq = validate(ctx, split_info, registry, artifact_store)
    assert not dq["success"]
    assert any("leakage" in f["message"] for f in dq["failures"])
    result = register(ctx, split_info, dq, registry, artifact_store, Notifier(registry),
                      generated={"generator": "offline", "chunks": 1, "queries": 1},
                      filtered={"filter_counts": {}, "kept": 1})
    assert result["status"] == "failed_dq" and not result["usable"] and not result["new_version"]
    assert registry.get_artifact(result["dataset_id"]).status == "failed_dq"
    alerts = registry.alerts(ctx["run_key"])
    assert len(alerts) == 1 and "failed data quality" in alerts[0]["title"]
    assert registry.dq_results(ctx["run_key"])[0]["success"] is False


def test_dq_flags_a_dominating_document(registry, artifact_store):
    from ragops.synthetic.quality import validate_dataset

    def row(i, doc):
        return {"query_id": f"q{i}", "query": f"question number {i} about things", "positive": "p", "negative": None,
                "doc_id": doc, "chunk_id": f"c{i}", "kind": "ict"}

    rows = [row(i, "big") for i in range(30)] + [row(100 + i, f"d{i}") for i in range(20)]
    result = validate_dataset({"train": rows, "test": []}, max_doc_share=0.2)
    assert not result.success and [f["column"] for f in result.failures] == ["doc_share"]


def test_split_step_is_content_addressed(registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    summary = run_pipeline(offline_params(), "s", registry=registry, artifacts=artifact_store)
    ctx = {"params": offline_params().as_dict()}
    assert split(ctx, {"rel": summary["negatives"]["rel"]}, artifact_store)["hash"] == summary["split"]["hash"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_review_round_trip_creates_a_new_version(registry, artifact_store, fmt):
    register_chunk_set(registry, artifact_store)
    ds = run_pipeline(offline_params(), "r", registry=registry, artifacts=artifact_store)["dataset"]
    exported = export_review(ds["dataset_id"], registry, artifact_store, size=5, seed=1, fmt=fmt)
    data = artifact_store.read_bytes(exported["rel"]).decode()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in data.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(data)))
    assert len(rows) == 5 and set(rows[0]) == {"id", "query", "positive", "decision", "edited_query"}
    rows[0]["decision"] = "reject"
    rows[1]["decision"] = "edit"
    rows[1]["edited_query"] = "how do reviewers rewrite a query by hand"
    rows[2]["decision"] = "accept"
    if fmt == "jsonl":
        labelled = "".join(json.dumps(r) + "\n" for r in rows).encode()
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        labelled = buf.getvalue().encode()
    labels_rel = f"reviews/labelled.{fmt}"
    artifact_store.write_bytes(labels_rel, labelled)
    run_key = registry.start_run("ragops_cli", f"review-{fmt}")
    result = import_review(ds["dataset_id"], labels_rel, registry, artifact_store, Notifier(registry),
                           run_key=run_key, max_doc_share=0.4)
    assert result["counts"] == {"accepted": 1, "rejected": 1, "edited": 1}
    assert result["version"] == ds["version"] + 1 and result["status"] == "usable"
    assert result["rows_train"] + result["rows_test"] == ds["rows_train"] + ds["rows_test"] - 1
    new = registry.get_artifact(result["dataset_id"])
    parents = {rel: p for p, rel in registry.parents(new.id)}
    assert parents["reviewed_from"].id == ds["dataset_id"] and parents["labels"].kind == "review"
    dd = load_dataset(artifact_store, rel_of_uri(artifact_store, new.uri))
    queries = list(dd["train"]["query"]) + list(dd["test"]["query"])
    assert "how do reviewers rewrite a query by hand" in queries
    assert rows[0]["query"] not in queries and rows[1]["query"] not in queries
    # importing the same labels again is idempotent
    assert import_review(ds["dataset_id"], labels_rel, registry, artifact_store, Notifier(registry),
                         run_key=run_key, max_doc_share=0.4)["dataset_id"] == new.id


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "nope", "decision": "accept"}', "line 2: id 'nope' is not a row"),
    ("{not json", "line 2: not valid JSON"),
    ('{"id": "ID1", "decision": "maybe"}', "line 2: decision 'maybe' is not one of accept, reject, edit"),
    ('{"id": "ID1", "decision": "edit", "edited_query": ""}', "line 2: decision 'edit' needs"),
    ('{"id": "ID0", "decision": "accept"}', "line 2: id 'ID0' is labelled twice (first on line 1)"),
])
def test_bad_label_files_name_file_and_line(registry, artifact_store, line, message):
    register_chunk_set(registry, artifact_store)
    ds = run_pipeline(offline_params(), "bad", registry=registry, artifacts=artifact_store)["dataset"]
    exported = export_review(ds["dataset_id"], registry, artifact_store, size=2, seed=1)
    first, second = (json.loads(x) for x in artifact_store.read_bytes(exported["rel"]).decode().splitlines())
    line = line.replace("ID0", first["id"]).replace("ID1", second["id"])
    labels = json.dumps({**first, "decision": "accept"}) + "\n" + line + "\n"
    artifact_store.write_bytes("reviews/bad.jsonl", labels.encode())
    with pytest.raises(ReviewFileError) as err:
        import_review(ds["dataset_id"], "reviews/bad.jsonl", registry, artifact_store, Notifier(registry))
    assert str(err.value).startswith("reviews/bad.jsonl line 2: ")
    assert message.replace("ID0", first["id"]) in str(err.value)


def test_csv_label_file_without_columns_is_rejected(registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    ds = run_pipeline(offline_params(), "csv", registry=registry, artifacts=artifact_store)["dataset"]
    artifact_store.write_bytes("reviews/bad.csv", b"id,query\nx,y\n")
    with pytest.raises(ReviewFileError, match=r"reviews/bad.csv line 1: the header lacks"):
        import_review(ds["dataset_id"], "reviews/bad.csv", registry, artifact_store, Notifier(registry))


def test_params_are_validated():
    with pytest.raises(ValueError, match="sample_strategy='random'"):
        SyntheticParams(sample_strategy="random")
    with pytest.raises(ValueError, match="unknown rag_synthetic_data params"):
        SyntheticParams.from_mapping({"sample_sise": 3})
