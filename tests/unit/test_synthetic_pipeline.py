"""The whole rag_synthetic_data pipeline on a tiny chunk set, with real Postgres and real files:
offline and LLM generation, lineage, idempotent versions, the DQ suite, and human review."""

from __future__ import annotations

import csv
import io
import json

import pytest
from tests.llm_server import LLMTestServer
from tests.unit.synthetic_corpus import register_chunk_set, services

from ragops.errors import InvalidInput
from ragops.runs import open_run
from ragops.services import LLMEndpoint
from ragops.synthetic.dataset import COLUMNS, load_dataset, read_rows
from ragops.synthetic.filters import FilterConfig, apply_filters, local_retriever
from ragops.synthetic.params import SyntheticParams
from ragops.synthetic.pipeline import run_pipeline, run_steps
from ragops.synthetic.publish import export_review, register, validate
from ragops.synthetic.review import ReviewFileError, import_review
from ragops.synthetic.steps import split


def offline_params(**overrides) -> SyntheticParams:
    values = {"sample_size": 50, "questions_per_chunk": 2, "generator": "offline", "test_ratio": 0.34, "seed": 3,
              "max_doc_share": 0.4, **overrides}
    return SyntheticParams.from_mapping(values)


@pytest.fixture
def svc(registry, artifact_store, tmp_path):
    service = services(registry, artifact_store, tmp_path / "vectors")
    yield service
    service.close()


def steps_of(svc, params, run_id):
    """Every step's record, in a run of their own."""
    return run_steps(svc, params, open_run(svc, "ragops_cli", run_id, params.as_dict()))


def test_offline_pipeline_builds_registers_and_is_idempotent(svc, registry, artifact_store):
    chunk_set = register_chunk_set(registry, artifact_store)
    summary = run_pipeline(svc, offline_params(), "run-1")
    ds = summary["dataset"]
    assert ds["status"] == "usable" and ds["new_version"] and ds["version"] == 1
    assert summary["dq"]["success"], summary["dq"]["failures"]
    assert summary["published"] and not summary["noop"]
    assert registry.get_run(summary["run_key"])["status"] == "success"
    dd = load_dataset(artifact_store, artifact_store.rel_of(ds["uri"]))
    assert set(dd) == {"train", "test"} and dd["train"].num_rows > 0 and dd["test"].num_rows > 0
    assert set(COLUMNS) <= set(dd["train"].column_names)
    assert not set(dd["train"]["doc_id"]) & set(dd["test"]["doc_id"])
    art = registry.get_artifact(ds["dataset_id"])
    assert art.metrics["generator"] == "offline" and art.params["generator"] == "offline"
    assert art.metrics["rows_train"] == dd["train"].num_rows and "filter_counts" in art.metrics
    assert [(p.id, rel) for p, rel in registry.parents(art.id)] == [(chunk_set.id, "generated_from")]
    # the same inputs give the same version, and it is not "new" (no asset event): a no-op run
    again = run_pipeline(svc, offline_params(), "run-2")
    assert (again["dataset"]["dataset_id"], again["dataset"]["version"], again["dataset"]["new_version"]) == (
        ds["dataset_id"], 1, False)
    assert again["noop"] and not again["published"] and registry.get_run(again["run_key"])["status"] == "noop"
    # another seed is another version
    other = run_pipeline(svc, offline_params(seed=4), "run-3")["dataset"]
    assert other["version"] == 2 and other["new_version"]


def expected_round_trip_drops(svc, params, results, embedder) -> int:
    """The round trip recomputed by hand: text-filtered queries whose own chunk is not among the
    top k of the sampled chunks."""
    generated = read_rows(svc.artifacts, results["generate"].uri)
    config = FilterConfig(min_words=params.min_query_words, max_words=params.max_query_words,
                          near_duplicate_jaccard=params.near_duplicate_jaccard)
    kept, _ = apply_filters(generated, config)
    retrieve = local_retriever(embedder, read_rows(svc.artifacts, results["sample"].uri))
    found = retrieve([r["query"] for r in kept], params.round_trip_k)
    return sum(r["chunk_id"] not in ids for r, ids in zip(kept, found))


def test_llm_pipeline_records_prompt_tokens_cost_and_negatives(registry, artifact_store, embedder, tmp_path):
    register_chunk_set(registry, artifact_store)
    with LLMTestServer(api_key="sk-secret-xyz") as server:
        svc = services(registry, artifact_store, tmp_path / "vectors", llm=LLMEndpoint(
            server.base_url, "sk-secret-xyz", {"price_prompt_per_1m": 3.0, "price_completion_per_1m": 6.0}))
        params = offline_params(generator="llm", llm_model="test-model", round_trip=True, round_trip_k=3,
                                hard_negatives=True)
        summary = run_pipeline(svc, params, "llm-1", embedder=embedder)
        calls = server.calls
        assert calls == summary["sample"]["chunks"]
        rerun = run_pipeline(svc, params, "llm-2", embedder=embedder)
        assert server.calls == calls                                  # the cache answered everything
        results = steps_of(svc, params, "llm-3")
        assert server.calls == calls
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
    dd = load_dataset(artifact_store, artifact_store.rel_of(ds["uri"]))
    rows = dd["train"].to_list() + dd["test"].to_list()
    filtered = summary["filter"]
    assert filtered["round_trip_corpus"] == "sampled chunks"
    assert filtered["filter_counts"]["round_trip"] == expected_round_trip_drops(svc, params, results, embedder)
    assert filtered["filter_counts"]["round_trip"] > 0           # on this corpus the round trip drops queries
    assert filtered["input"] == filtered["kept"] + sum(filtered["filter_counts"].values())
    assert summary["negatives"]["mined"] > 0
    with_negative = [r for r in rows if r["negative"]]
    assert with_negative and all(r["negative"] != r["positive"] for r in with_negative)


def test_llm_generator_required_but_missing_is_a_clear_error(svc, registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    with pytest.raises(ValueError, match="ragops_llm"):
        run_pipeline(svc, offline_params(generator="llm"), "no-llm")
    assert registry.get_run("ragops_cli/no-llm")["status"] == "failed"


def test_auto_generator_without_endpoint_runs_offline(svc, registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    summary = run_pipeline(svc, offline_params(generator="auto"), "auto")
    assert summary["generate"]["generator"] == "offline"
    assert any(f.endswith("-> offline generator (headings + ICT)") for f in summary["fallbacks"])


def test_dq_failure_records_failed_dataset_and_alerts(svc, registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    params = offline_params()
    results = steps_of(svc, params, "good")
    # a leak: one test document's query also lands in train
    table = artifact_store.read_table(artifact_store.rel_of(results["split"].uri)).to_pylist()
    leaked = next(r for r in table if r["split"] == "test")
    bad_rows = [*table, {**leaked, "split": "train", "query_id": "leak", "query": "a different leaked query text"}]
    import pyarrow as pa

    leaky_uri = artifact_store.write_table("synthetic/splits/leaky.parquet", pa.Table.from_pylist(bad_rows))
    run = results["prepare"].replace(run=open_run(svc, "ragops_cli", "bad", params.as_dict()))
    leaky = results["split"].replace(uri=leaky_uri, content_hash="f" * 64)
    dq = validate(svc, params, run, leaky)
    assert not dq.success
    assert any("leakage" in f["message"] for f in dq.failures)
    result = register(svc, params, run, leaky, dq, results["generate"], results["filter_queries"],
                      results["mine_negatives"])
    assert result.status == "failed_dq" and not result.usable and not result.new_version
    assert registry.get_artifact(result.dataset_id).status == "failed_dq"
    alerts = registry.alerts(run.run_key)
    assert len(alerts) == 1 and "failed data quality" in alerts[0]["title"]
    assert registry.dq_results(run.run_key)[0]["success"] is False


def test_dq_flags_a_dominating_document(registry, artifact_store):
    from ragops.synthetic.quality import validate_dataset

    def row(i, doc):
        return {"query_id": f"q{i}", "query": f"question number {i} about things", "positive": "p", "negative": None,
                "doc_id": doc, "chunk_id": f"c{i}", "kind": "ict"}

    rows = [row(i, "big") for i in range(30)] + [row(100 + i, f"d{i}") for i in range(20)]
    result = validate_dataset({"train": rows, "test": []}, max_doc_share=0.2)
    assert not result.success and [f["column"] for f in result.failures] == ["doc_share"]


def test_split_step_is_content_addressed(svc, registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    results = steps_of(svc, offline_params(), "s")
    again = split(svc, offline_params(), results["prepare"], results["mine_negatives"])
    assert again.content_hash == results["split"].content_hash and again.uri == results["split"].uri


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_review_round_trip_creates_a_new_version(svc, registry, artifact_store, fmt):
    register_chunk_set(registry, artifact_store)
    ds = steps_of(svc, offline_params(), "r")["register"]
    exported = export_review(svc, offline_params(review_sample_size=5, seed=1, review_format=fmt), ds)
    data = artifact_store.read_bytes(artifact_store.rel_of(exported.uri)).decode()
    if fmt == "jsonl":
        rows = [json.loads(line) for line in data.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(data)))
    assert len(rows) == 5 == exported.rows and set(rows[0]) == {"id", "query", "positive", "decision", "edited_query"}
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
    params = offline_params(review_labels=labels_rel, review_dataset_id=ds.dataset_id)
    run = open_run(svc, "ragops_cli", f"review-{fmt}", params.as_dict())
    result = import_review(svc, params, run)
    assert result.counts == {"accepted": 1, "rejected": 1, "edited": 1}
    assert result.dataset.version == ds.version + 1 and result.dataset.status == "usable"
    assert result.dataset.new_version and result.reviewed_from == ds.dataset_id
    assert result.dataset.rows_train + result.dataset.rows_test == ds.rows_train + ds.rows_test - 1
    new = registry.get_artifact(result.dataset.dataset_id)
    parents = {rel: p for p, rel in registry.parents(new.id)}
    assert parents["reviewed_from"].id == ds.dataset_id and parents["labels"].kind == "review"
    dd = load_dataset(artifact_store, artifact_store.rel_of(new.uri))
    queries = list(dd["train"]["query"]) + list(dd["test"]["query"])
    assert "how do reviewers rewrite a query by hand" in queries
    assert rows[0]["query"] not in queries and rows[1]["query"] not in queries
    # importing the same labels again is idempotent
    again = import_review(svc, params, run)
    assert again.dataset.dataset_id == new.id and not again.dataset.new_version
    # the whole import-mode run publishes the new version
    summary = run_pipeline(svc, offline_params(review_labels=labels_rel, review_dataset_id=ds.dataset_id,
                                               max_doc_share=0.4), f"import-{fmt}")
    assert summary["mode"] == "import_review" and summary["dataset"]["dataset_id"] == new.id
    assert "sample" not in summary and summary["review"]["counts"]["rejected"] == 1


def labelled_file(svc, artifact_store, line: str) -> tuple[int, str, str]:
    ds = steps_of(svc, offline_params(), "bad")["register"]
    exported = export_review(svc, offline_params(review_sample_size=2, seed=1), ds)
    first, second = (json.loads(x) for x in artifact_store.read_bytes(artifact_store.rel_of(exported.uri))
                     .decode().splitlines())
    return ds.dataset_id, first["id"], second["id"]


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "nope", "decision": "accept"}', "line 2: id 'nope' is not a row"),
    ("{not json", "line 2: not valid JSON"),
    ('{"id": "ID1", "decision": "maybe"}', "line 2: decision 'maybe' is not one of accept, reject, edit"),
    ('{"id": "ID1", "decision": "edit", "edited_query": ""}', "line 2: decision 'edit' needs"),
    ('{"id": "ID0", "decision": "accept"}', "line 2: id 'ID0' is labelled twice (first on line 1)"),
])
def test_bad_label_files_name_file_and_line(svc, registry, artifact_store, line, message):
    register_chunk_set(registry, artifact_store)
    dataset_id, first, second = labelled_file(svc, artifact_store, line)
    line = line.replace("ID0", first).replace("ID1", second)
    labels = json.dumps({"id": first, "decision": "accept"}) + "\n" + line + "\n"
    artifact_store.write_bytes("reviews/bad.jsonl", labels.encode())
    params = offline_params(review_labels="reviews/bad.jsonl", review_dataset_id=dataset_id)
    with pytest.raises(ReviewFileError) as err:
        import_review(svc, params, open_run(svc, "ragops_cli", "import-bad", params.as_dict()))
    assert isinstance(err.value, InvalidInput)            # a bad file fails its task without retries
    assert str(err.value).startswith("reviews/bad.jsonl line 2: ")
    assert message.replace("ID0", first) in str(err.value)


def test_csv_label_file_without_columns_is_rejected(svc, registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    ds = steps_of(svc, offline_params(), "csv")["register"]
    artifact_store.write_bytes("reviews/bad.csv", b"id,query\nx,y\n")
    params = offline_params(review_labels="reviews/bad.csv", review_dataset_id=ds.dataset_id)
    with pytest.raises(ReviewFileError, match=r"reviews/bad.csv line 1: the header lacks"):
        import_review(svc, params, open_run(svc, "ragops_cli", "import-csv", params.as_dict()))


def test_params_are_validated():
    with pytest.raises(InvalidInput, match="sample_strategy='random'"):
        SyntheticParams.from_mapping({"sample_strategy": "random"})
    with pytest.raises(InvalidInput, match="unknown SyntheticParams params"):
        SyntheticParams.from_mapping({"sample_sise": 3})
    with pytest.raises(InvalidInput, match="review_labels needs param review_dataset_id"):
        SyntheticParams.from_mapping({"review_labels": "reviews/x.jsonl"})
    with pytest.raises(InvalidInput, match="min_query_words"):
        SyntheticParams.from_mapping({"min_query_words": 10, "max_query_words": 5})


def test_records_round_trip_through_xcom_and_json(svc, registry, artifact_store):
    """Every record that crosses a task boundary comes back unchanged from its XCom form, and
    that form survives JSON (what XCom stores)."""
    register_chunk_set(registry, artifact_store)
    params = offline_params(hard_negatives=False)
    results = steps_of(svc, params, "records")
    exported = export_review(svc, offline_params(review_sample_size=1), results["register"])
    first = json.loads(artifact_store.read_bytes(artifact_store.rel_of(exported.uri)))
    labels_rel = "reviews/one.jsonl"
    artifact_store.write_bytes(labels_rel, json.dumps({**first, "decision": "reject"}).encode())
    review_params = offline_params(review_labels=labels_rel, review_dataset_id=results["register"].dataset_id)
    results["import_review"] = import_review(svc, review_params, results["prepare"].run)
    results["open_run"] = results["prepare"].run
    results["no_export"] = export_review(svc, offline_params(review_sample_size=0), results["register"])
    kinds = {type(r).__name__ for r in results.values()}
    assert kinds >= {"RunRef", "SyntheticRun", "Sample", "Generated", "Filtered", "Negatives", "Split",
                     "DatasetQuality", "DatasetVersion", "ReviewExport", "ReviewImport", "Publication"}
    for task_id, record in results.items():
        form = record.to_xcom()
        assert type(record).from_xcom(form) == record, task_id
        assert type(record).from_xcom(json.loads(json.dumps(form))) == record, task_id
    # the skip and asset rules ride on the records
    assert results["publish"].skip_reason is None and results["publish"].asset_events()[0][0] == (
        "ragops://dataset/synthetic-queries")
    assert results["no_export"].skip_reason == "review_sample_size is 0: no review file"
    assert results["import_review"].counts == {"accepted": 0, "rejected": 1, "edited": 0}


def test_a_review_that_changes_nothing_keeps_the_version(svc, registry, artifact_store):
    register_chunk_set(registry, artifact_store)
    ds = steps_of(svc, offline_params(), "accepting")["register"]
    exported = export_review(svc, offline_params(review_sample_size=3), ds)
    rows = [json.loads(x) for x in artifact_store.read_bytes(artifact_store.rel_of(exported.uri)).decode().splitlines()]
    artifact_store.write_bytes("reviews/accept.jsonl", "".join(json.dumps({**r, "decision": "accept"}) + "\n"
                                                               for r in rows).encode())
    params = offline_params(review_labels="reviews/accept.jsonl", review_dataset_id=ds.dataset_id)
    result = import_review(svc, params, open_run(svc, "ragops_cli", "accept", params.as_dict()))
    assert result.counts == {"accepted": 3, "rejected": 0, "edited": 0}
    assert (result.dataset.dataset_id, result.dataset.version, result.dataset.new_version) == (ds.dataset_id, 1, False)
    assert all(p.id != ds.dataset_id for p, _ in registry.parents(ds.dataset_id))      # never its own parent
    assert "reviewed_from" not in registry.get_artifact(ds.dataset_id).params
