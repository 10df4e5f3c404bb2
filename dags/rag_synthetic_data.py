"""
# rag_synthetic_data

Builds training data for the embedding model: (query, positive[, hard negative]) pairs from the
chunks of the live collection, as a Hugging Face `DatasetDict` (train, test) saved in the artifact
store and recorded in the lineage registry.

Each run **samples** chunks (stratified by document, or uniform), **generates** queries, **filters**
them (empty / too short / too long, copies of the passage, near-duplicates, and optionally a
round trip: a query must retrieve its own chunk in the top k with the current embedding model),
optionally mines **hard negatives** from the live collection (never from the positive's own
document), **splits** by document (no document on both sides), runs a great-expectations **suite**
(schema, nulls, lengths, duplicates, leakage, document balance) and **registers** the dataset,
content-hashed: identical inputs give the same version. A failed suite records the dataset as
`failed_dq`, raises an alert and publishes nothing. A sample is exported for **human review**
(`reviews/...` in the artifact store, columns `id, query, positive, decision, edited_query`);
a run with `review_labels` set imports a filled-in file into a new dataset version instead.

Generators: an OpenAI-compatible **LLM** (prompt files in `ragops/prompts`, versioned by content
hash and recorded as a `prompt` artifact; strict JSON answers; answers cached in Postgres table
`llm_cache` as they arrive, so a retried or resumed run never pays twice; a token/USD budget cap;
retries on 429/5xx honouring `Retry-After`), or the **offline** generator (headings and the
Inverse Cloze Task) when no LLM connection exists.

**Schedule**: weekly (Sunday 04:00 UTC) and whenever the collection alias moves
(`ragops://collection/RagDocs`). The dataset asset `ragops://dataset/synthetic-queries` is emitted
only when a new usable dataset version is created: an unchanged corpus yields the same version,
the publishing task skips, and the index -> data -> fine-tune -> index loop settles.

**Connections**: `ragops_postgres` (lineage registry and LLM cache, required); `ragops_llm` (optional,
OpenAI-compatible: host = base URL such as `https://api.openai.com/v1`, password = API key, extra
`{"model": "...", "price_prompt_per_1m": 0.15, "price_completion_per_1m": 0.6}`; without it the
offline generator runs, a named fallback); `ragops_weaviate` (optional); `ragops_slack`, `ragops_smtp`
(optional alerts). The API key never reaches logs, XCom or lineage records.

**Variables**: `ragops_lineage_schema`, `ragops_artifact_root`, `ragops_vector_dir` (embedded store only).

**Pools**: `llm_api` bounds concurrent generation tasks (each also bounds its own threads by `concurrency`).

**Params**: `alias`, `chunk_set`, `sample_size`, `sample_strategy`, `questions_per_chunk`, `generator`,
`llm_model`, `temperature`, `max_tokens`, `concurrency`, `budget_max_tokens`, `budget_max_usd`, prices,
`prompt`, query length bounds, `near_duplicate_jaccard`, `round_trip` + `round_trip_k`, `hard_negatives` +
`negatives_k`, `test_ratio`, `seed`, `max_doc_share`, `review_sample_size`, `review_format`,
`review_labels` + `review_dataset_id`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from ragops.assets import DATASET_ASSET_URI, collection_asset_uri
from ragops.orchestration import DEFAULT_ARGS, LLM_POOL, alert_on_failure

ALIAS = "RagDocs"
# Params that steer this run only, not the dataset (SyntheticParams leaves them out).
REVIEW_IMPORT_PARAMS = ("review_labels", "review_dataset_id")


@dag(
    dag_id="rag_synthetic_data",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
                                 assets=Asset(collection_asset_uri(ALIAS))),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training-data"],
    default_args={**DEFAULT_ARGS, "on_failure_callback": alert_on_failure},
    params={
        "alias": Param(ALIAS, type="string", pattern=r"^[A-Z][A-Za-z0-9_]*$",
                       description="Collection alias whose live chunk set (and embedding model) is used."),
        "chunk_set": Param("", type="string", pattern=r"^(v?[0-9]+)?$",
                           description="A chunk-set version of the alias (e.g. v3) instead of the live one; "
                                       "empty = the chunk set of the live collection."),
        "sample_size": Param(200, type="integer", minimum=1, description="Chunks to generate queries for."),
        "sample_strategy": Param("stratified", enum=["stratified", "uniform"],
                                 description="stratified: spread across documents (round robin); uniform: random chunks."),
        "min_chunk_words": Param(8, type="integer", minimum=1, description="Chunks shorter than this are not sampled."),
        "questions_per_chunk": Param(2, type="integer", minimum=1, maximum=20, description="Queries asked per chunk."),
        "generator": Param("auto", enum=["auto", "llm", "offline"],
                           description="auto: the LLM when the ragops_llm connection exists, else offline; "
                                       "llm: fail without the connection; offline: headings + Inverse Cloze Task."),
        "llm_model": Param("", type="string", description="LLM model name; empty = the connection extra 'model'."),
        "temperature": Param(0.7, type="number", minimum=0, maximum=2, description="LLM sampling temperature."),
        "max_tokens": Param(512, type="integer", minimum=16, description="LLM completion token limit per call."),
        "concurrency": Param(4, type="integer", minimum=1, maximum=64, description="Concurrent LLM calls (threads)."),
        "json_attempts": Param(3, type="integer", minimum=1, maximum=10,
                               description="Calls per chunk while the answer is not valid JSON; then it is dropped."),
        "budget_max_tokens": Param(0, type="integer", minimum=0,
                                   description="Stop new LLM calls at this many tokens (prompt + completion); 0 = no cap."),
        "budget_max_usd": Param(0.0, type="number", minimum=0, description="Stop new LLM calls at this cost; 0 = no cap."),
        "price_prompt_per_1m": Param(None, type=["null", "number"],
                                     description="USD per 1M prompt tokens; null = the connection extra (else 0)."),
        "price_completion_per_1m": Param(None, type=["null", "number"],
                                         description="USD per 1M completion tokens; null = the connection extra (else 0)."),
        "prompt": Param("query_generation.v1", type="string",
                        description="Prompt file <name>.<version> in ragops/prompts; recorded with its content hash."),
        "min_query_words": Param(3, type="integer", minimum=1, description="Filter: shorter queries are dropped."),
        "max_query_words": Param(64, type="integer", minimum=1, description="Filter: longer queries are dropped."),
        "near_duplicate_jaccard": Param(0.9, type="number", minimum=0.01, maximum=1,
                                        description="Filter: token Jaccard at which a query duplicates an earlier one."),
        "round_trip": Param(False, type="boolean",
                            description="Filter: keep a query only if it retrieves its own chunk in the top k."),
        "round_trip_k": Param(5, type="integer", minimum=1, description="k of the round-trip filter."),
        "hard_negatives": Param(False, type="boolean",
                                description="Mine a hard negative per query from the live collection (other documents)."),
        "negatives_k": Param(10, type="integer", minimum=1, description="Candidates searched per query for a negative."),
        "test_ratio": Param(0.2, type="number", minimum=0, maximum=0.9,
                            description="Share of documents (not queries) in the test split."),
        "seed": Param(13, type="integer", description="Seed of sampling, generation, the split and the review sample."),
        "max_doc_share": Param(0.2, type="number", minimum=0.01, maximum=1,
                               description="DQ: the largest share of rows one document may hold (or 2/documents "
                                           "when there are few documents)."),
        "review_sample_size": Param(50, type="integer", minimum=0,
                                    description="Rows exported for human review (0 = none)."),
        "review_format": Param("jsonl", enum=["jsonl", "csv"], description="Format of the review file."),
        "review_labels": Param("", type="string",
                               description="Import mode: a filled-in review file (path in the artifact store, e.g. "
                                           "reviews/.../labels.jsonl); the run then only imports it as a new version."),
        "review_dataset_id": Param(None, type=["null", "integer"],
                                   description="Import mode: the dataset artifact id the labels refer to."),
    },
)
def rag_synthetic_data():
    @task(multiple_outputs=False)
    def prepare(**context) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        settings = orchestration.runtime_settings()
        raw = dict(context["params"])
        review = {k: raw.pop(k, None) for k in REVIEW_IMPORT_PARAMS}
        params = pipeline.SyntheticParams.from_mapping(raw)
        fallbacks = orchestration.fallbacks_of(settings)
        llm_available = params.generator != "offline" and orchestration.llm_endpoint() is not None
        if params.generator == "auto" and not llm_available:
            fallbacks.append({"service": "LLM (ragops_llm)", "using": "offline generator (headings + ICT)",
                              "reason": "no ragops_llm connection"})
        registry = orchestration.open_registry(settings)
        if review["review_labels"]:
            if review["review_dataset_id"] is None:
                raise ValueError("param review_labels needs param review_dataset_id (the dataset it labels)")
            run_key = registry.start_run(context["dag"].dag_id, context["run_id"], {**params.as_dict(), **review},
                                         fallbacks)
            return {"mode": "import_review", "run_key": run_key, "params": params.as_dict(), "review": review}
        ctx = pipeline.prepare(registry, params, context["dag"].dag_id, context["run_id"],
                               artifacts=orchestration.open_artifacts(settings), fallbacks=fallbacks)
        return {**ctx, "mode": "generate", "llm_available": llm_available}

    @task.branch
    def choose_mode(ctx: dict) -> str:
        return "import_review" if ctx["mode"] == "import_review" else "sample"

    @task(multiple_outputs=False)
    def sample(ctx: dict) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        return pipeline.sample(ctx, orchestration.open_artifacts())

    @task(multiple_outputs=False, pool=LLM_POOL)
    def generate(ctx: dict, sampled: dict) -> dict:
        """The only task that holds the LLM key: it builds the client here and returns counts only."""
        from ragops import orchestration
        from ragops.synthetic import pipeline
        from ragops.synthetic.llm import LLMSettings

        settings = orchestration.runtime_settings()
        p = pipeline.SyntheticParams(**ctx["params"])
        llm = None
        if ctx["llm_available"]:
            endpoint = orchestration.llm_endpoint()
            if endpoint is not None:
                llm = LLMSettings.from_endpoint(
                    endpoint, model=p.llm_model, temperature=p.temperature, max_tokens=p.max_tokens,
                    json_attempts=p.json_attempts, price_prompt_per_1m=p.price_prompt_per_1m,
                    price_completion_per_1m=p.price_completion_per_1m)
        return pipeline.generate(ctx, sampled, orchestration.open_registry(settings),
                                 orchestration.open_artifacts(settings), llm=llm)

    @task(multiple_outputs=False)
    def filter_queries(ctx: dict, generated: dict, sampled: dict) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        settings = orchestration.runtime_settings()
        store = orchestration.open_vector_store(settings) if ctx["params"]["round_trip"] else None
        return pipeline.filter_queries(ctx, generated, sampled, orchestration.open_artifacts(settings), store=store)

    @task(multiple_outputs=False)
    def mine_negatives(ctx: dict, filtered: dict, sampled: dict) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        settings = orchestration.runtime_settings()
        store = orchestration.open_vector_store(settings) if ctx["params"]["hard_negatives"] else None
        return pipeline.mine_negatives(ctx, filtered, sampled, orchestration.open_artifacts(settings), store=store)

    @task(multiple_outputs=False)
    def split(ctx: dict, negatives: dict) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        return pipeline.split(ctx, negatives, orchestration.open_artifacts())

    @task(multiple_outputs=False)
    def validate(ctx: dict, split_info: dict) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        settings = orchestration.runtime_settings()
        return pipeline.validate(ctx, split_info, orchestration.open_registry(settings),
                                 orchestration.open_artifacts(settings))

    @task(multiple_outputs=False)
    def register(ctx: dict, split_info: dict, dq: dict, generated: dict, filtered: dict, negatives: dict) -> dict:
        """Records the dataset: usable, or failed_dq (alerted, never published)."""
        from ragops import orchestration
        from ragops.synthetic import pipeline

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        return pipeline.register(ctx, split_info, dq, registry, orchestration.open_artifacts(settings),
                                 orchestration.notifier(registry), generated=generated, filtered=filtered,
                                 negatives=negatives)

    @task(multiple_outputs=False)
    def export_review(ctx: dict, dataset: dict) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from ragops import orchestration
        from ragops.synthetic import pipeline

        p = ctx["params"]
        if not p["review_sample_size"]:
            raise AirflowSkipException("review_sample_size is 0: no review file")
        settings = orchestration.runtime_settings()
        return pipeline.export_review(dataset["dataset_id"], orchestration.open_registry(settings),
                                      orchestration.open_artifacts(settings), size=p["review_sample_size"],
                                      seed=p["seed"], fmt=p["review_format"])

    @task(multiple_outputs=False)
    def import_review(ctx: dict) -> dict:
        from ragops import orchestration
        from ragops.synthetic import pipeline

        settings = orchestration.runtime_settings()
        registry = orchestration.open_registry(settings)
        before = registry.list_artifacts("dataset")
        p = ctx["params"]
        result = pipeline.import_review(int(ctx["review"]["review_dataset_id"]), ctx["review"]["review_labels"],
                                        registry, orchestration.open_artifacts(settings),
                                        orchestration.notifier(registry), run_key=ctx["run_key"],
                                        min_words=p["min_query_words"], max_words=p["max_query_words"],
                                        max_doc_share=p["max_doc_share"])
        was = next((a for a in before if a.id == result["dataset_id"]), None)
        result["usable"] = result["status"] == "usable"
        result["new_version"] = result["usable"] and (was is None or was.status != "usable")
        return result

    @task(multiple_outputs=False, outlets=[Asset(DATASET_ASSET_URI)],
          trigger_rule="none_failed_min_one_success")
    def publish(generated_dataset: dict | None, reviewed_dataset: dict | None, **context) -> dict:
        """Emits the dataset asset, and only for a new usable version: otherwise it skips (no event)."""
        from airflow.sdk.exceptions import AirflowSkipException

        dataset = generated_dataset or reviewed_dataset
        if not dataset or not dataset.get("usable"):
            raise AirflowSkipException("no usable dataset from this run: nothing to publish")
        if not dataset.get("new_version"):
            raise AirflowSkipException(f"dataset v{dataset['version']} was already published: no new version")
        context["outlet_events"][Asset(DATASET_ASSET_URI)].extra = {
            "dataset_id": dataset["dataset_id"], "version": dataset["version"], "uri": dataset["uri"]}
        return {k: dataset[k] for k in ("dataset_id", "version", "uri", "status")}

    @task(multiple_outputs=False, trigger_rule="all_done")
    def lineage_summary(ctx: dict | None, **context) -> dict:
        """Records the run's outcome; fails if any step failed, so the run state tells the truth."""
        from airflow.sdk.exceptions import AirflowFailException

        from ragops import orchestration

        ti = context["ti"]
        failed = orchestration.failed_tasks(context)
        if ctx is None:
            raise AirflowFailException(f"rag_synthetic_data failed before it started its lineage record: {failed}")
        registry = orchestration.open_registry()
        steps = {name: ti.xcom_pull(task_ids=name) for name in
                 ("sample", "filter_queries", "mine_negatives", "split", "register", "import_review",
                  "export_review", "publish")}
        generated = ti.xcom_pull(task_ids="generate")
        steps["generate"] = generated and {k: v for k, v in generated.items() if k != "rel"}
        dq = ti.xcom_pull(task_ids="validate")
        steps["dq"] = dq and {"success": dq["success"], "failures": [f.get("message") for f in dq["failures"]]}
        summary = {"run_key": ctx["run_key"], "mode": ctx["mode"], "fallbacks": ctx.get("fallbacks", []),
                   "failed_tasks": failed or None, **{k: v for k, v in steps.items() if v is not None}}
        registry.finish_run(ctx["run_key"], "failed" if failed else "success", summary)
        if failed:
            raise AirflowFailException(f"rag_synthetic_data failed at {failed}")
        return summary

    ctx = prepare()
    mode = choose_mode(ctx)
    sampled = sample(ctx)
    generated = generate(ctx, sampled)
    filtered = filter_queries(ctx, generated, sampled)
    negatives = mine_negatives(ctx, filtered, sampled)
    split_info = split(ctx, negatives)
    dq = validate(ctx, split_info)
    dataset = register(ctx, split_info, dq, generated, filtered, negatives)
    reviewed = import_review(ctx)
    mode >> [sampled, reviewed]
    published = publish(dataset, reviewed)
    review_file = export_review(ctx, dataset)
    [published, review_file] >> lineage_summary(ctx)


rag_synthetic_data()
