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

**Review before publishing (opt-in)**: with the param `require_approval` true for a run, or the
Variable `ragops_require_approval` listing `rag_synthetic_data` (a run's `false` still wins),
`review_dataset` waits, after the review sample is exported, for a person to choose in the run's
**Required actions**: *Accept all* (publish as is), *Use review file* (apply the filled-in sample,
or the file named in the form's `review_file`, as a new reviewed version and publish that), or
*Reject* (publish nothing; the version is marked rejected and never trained on). Unanswered after
`approval_timeout_hours`, it is rejected. Who, when and why are recorded on the dataset artifact
and in the run summary. Off (the default), the step passes at once.
`close_run` records the outcome (`noop` when the same inputs gave the version already registered)
and pushes the run's lineage summary to XCom.

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

**Params** (`ragops.synthetic.params.SyntheticParams`): `alias`, `chunk_set`, `sample_size`, `sample_strategy`,
`questions_per_chunk`, `generator`, `llm_model`, `temperature`, `max_tokens`, `concurrency`, `budget_max_tokens`,
`budget_max_usd`, prices, `prompt`, query length bounds, `near_duplicate_jaccard`, `round_trip` + `round_trip_k`,
`hard_negatives` + `negatives_k`, `test_ratio`, `seed`, `max_doc_share`, `review_sample_size`, `review_format`,
`review_labels` + `review_dataset_id`, `require_approval`, `approval_timeout_hours`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from ragops.approval import LabelReviewResult
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.orchestration.hitl import label_review
from ragops.runs import RunRef
from ragops.synthetic.params import SyntheticParams, first_task_of_mode, generator_fallbacks
from ragops.synthetic.records import (
    DatasetQuality,
    DatasetVersion,
    Filtered,
    Generated,
    Negatives,
    Publication,
    ReviewExport,
    ReviewImport,
    Sample,
    Split,
    SyntheticRun,
)
from ragops.synthetic.summary import summarize
from ragops.vocabulary import DATASET_ASSET_URI, DEFAULT_ALIAS, LLM_POOL, collection_asset_uri


@dag(
    dag_id="rag_synthetic_data",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 4 * * 0", timezone="UTC"),
                                 assets=Asset(collection_asset_uri(DEFAULT_ALIAS))),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training-data"],
    default_args=DEFAULT_ARGS,
    params=airflow_params(SyntheticParams),
)
def rag_synthetic_data():
    @task.branch
    def choose_mode(_run: dict, params: dict | None = None) -> str:
        """Import mode (`review_labels` set) imports labels; any other run generates a dataset."""
        return first_task_of_mode(params or {})

    @ragops_task
    def prepare(rt: TaskRuntime, run: RunRef, params: SyntheticParams) -> SyntheticRun:
        from ragops.synthetic import steps

        return steps.prepare(rt, params, run)

    @ragops_task
    def sample(rt: TaskRuntime, run: SyntheticRun, params: SyntheticParams) -> Sample:
        from ragops.synthetic import steps

        return steps.sample(rt, params, run)

    @ragops_task(pool=LLM_POOL)
    def generate(rt: TaskRuntime, run: SyntheticRun, sampled: Sample, params: SyntheticParams) -> Generated:
        """The only task that holds the LLM key: it builds the client here and returns counts only."""
        from ragops.synthetic import steps

        return steps.generate(rt, params, run, sampled)

    @ragops_task
    def filter_queries(rt: TaskRuntime, run: SyntheticRun, generated: Generated, sampled: Sample,
                       params: SyntheticParams) -> Filtered:
        from ragops.synthetic import steps

        return steps.filter_queries(rt, params, run, generated, sampled)

    @ragops_task
    def mine_negatives(rt: TaskRuntime, run: SyntheticRun, filtered: Filtered, sampled: Sample,
                       params: SyntheticParams) -> Negatives:
        from ragops.synthetic import steps

        return steps.mine_negatives(rt, params, run, filtered, sampled)

    @ragops_task
    def split(rt: TaskRuntime, run: SyntheticRun, negatives: Negatives, params: SyntheticParams) -> Split:
        from ragops.synthetic import steps

        return steps.split(rt, params, run, negatives)

    @ragops_task
    def validate(rt: TaskRuntime, run: SyntheticRun, split_set: Split, params: SyntheticParams) -> DatasetQuality:
        from ragops.synthetic import publish

        return publish.validate(rt, params, run, split_set)

    @ragops_task
    def register(rt: TaskRuntime, run: SyntheticRun, split_set: Split, dq: DatasetQuality, generated: Generated,
                 filtered: Filtered, negatives: Negatives, params: SyntheticParams) -> DatasetVersion:
        """Records the dataset: usable, or failed_dq (alerted, never published)."""
        from ragops.synthetic import publish

        return publish.register(rt, params, run, split_set, dq, generated, filtered, negatives)

    @ragops_task
    def export_review(rt: TaskRuntime, dataset: DatasetVersion, params: SyntheticParams) -> ReviewExport:
        from ragops.synthetic import publish

        return publish.export_review(rt, params, dataset)

    @ragops_task
    def import_review(rt: TaskRuntime, run: RunRef, params: SyntheticParams) -> ReviewImport:
        from ragops.synthetic import review

        return review.import_review(rt, params, run)

    @ragops_task(outlets=[Asset(DATASET_ASSET_URI)], trigger_rule="none_failed_min_one_success")
    def publish(rt: TaskRuntime, dataset: DatasetVersion | None, reviewed: ReviewImport | None,
                review: LabelReviewResult | None) -> Publication:
        """Emits the dataset asset, and only for a new usable version: otherwise it skips (no event)."""
        from ragops.synthetic.publish import publish_dataset

        return publish_dataset(dataset, reviewed or (review and review.labels))

    run = run_opener(SyntheticParams, extra_fallbacks=generator_fallbacks)()
    synth = prepare(run)
    sampled = sample(synth)
    generated = generate(synth, sampled)
    filtered = filter_queries(synth, generated, sampled)
    negatives = mine_negatives(synth, filtered, sampled)
    split_set = split(synth, negatives)
    dataset = register(synth, split_set, validate(synth, split_set), generated, filtered, negatives)
    reviewed = import_review(run)
    choose_mode(run) >> [synth, reviewed]
    exported = export_review(dataset)
    review = label_review("review_dataset", dataset_task="register", export_task="export_review",
                          publish_task="publish")
    published = publish(dataset, reviewed, review.output)
    exported >> review >> published
    [published, exported] >> run_closer(summarize)(run)


rag_synthetic_data()
