"""
# rag_evaluate

Continuous evaluation of the live RAG system: the same query path the service serves (the alias's
live collection version, its embedding model and fusion, the production reranker), measured on every
evaluation set the registry knows, with trends and regression alerts.

1. **resolve**: pins the collection version the alias points at, its embedding model and the
   production reranker, and lists the sets: golden queries (the live collection's rag_index gate
   file and registered golden files), the latest usable dataset's test rows by label source
   (`review`, `imported-test`, `synthetic-test`), and registered BEIR qrels splits
   (`python -m ragops register-eval-set --beir <folder> --split <split>` or `--golden <file>`).
   A registered path outside the Variable `ragops_allowed_roots` is skipped, named, unread.
   Nothing behind the alias, or no set: the run skips (a no-op).
2. **retrieval**: nDCG@10, MRR@10 and Recall@k per set and per source (the source of each query's
   relevant documents).
3. **generation**: a fixed seeded sample answered as the service answers. Always: citation
   validity, cited relevance and the answer's overlap with the gold passages. With `ragops_llm`:
   LLM answers and an LLM judge (`include/ragops/prompts/rag_judge.v1.txt`: faithfulness, answer
   relevance, context precision, citation correctness), every call through the registry's LLM
   cache (a re-run pays nothing) and stopped at `cost_cap_usd`. Without it the judge is a named
   fallback.
4. **record**: one `evaluation` artifact named `rag-evaluation` (metrics
   `{"sets": {set: {"ndcg@10", "mrr@10", "recall@<k>", "queries", "by_source"}}, "generation": {...},
   "fallbacks": [...]}`; params naming the collection, model and reranker versions; `evaluates`
   edges to them) and a JSON report under `evaluations/`. A metric more than `tolerance` below the
   median of the alias's last `baseline_window` evaluations raises a data-quality alert naming the
   set, the metric, before and after and the version that changed; the evaluation is recorded as
   `failed` and the task fails without retry.
5. **close_run**: records the outcome and pushes the run's summary to XCom.

**Schedule**: on every collection promotion (the `ragops-collections` asset alias, and
`ragops://collection/RagDocs`), embedding-model promotion (`ragops://model/embeddings`) and
reranker promotion (`ragops://model/reranker`), nightly (06:00 UTC), or a UI trigger.

**Connections**: `ragops_postgres` (lineage registry, required); `ragops_weaviate` (optional: the
store); `ragops_llm` (optional: LLM answers and the judge); `ragops_slack`/`ragops_smtp` (alerts).

**Variables**: `ragops_allowed_roots` (what registered sets may be read from), `ragops_artifact_root`,
`ragops_vector_dir`, `ragops_lineage_schema`.

**Params** (`ragops.evaluation.params.EvaluateParams`): `alias`, `sets`, `mode`, `rerank`, `k`,
`max_queries`, `sample_size`, `cost_cap_usd`, `llm_model`, `seed`, `tolerance`, `baseline_window`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.sdk import Asset, AssetAlias, AssetOrTimeSchedule, CronTriggerTimetable, dag

from ragops.evaluation.params import EvaluateParams, evaluation_fallbacks
from ragops.evaluation.records import EvalTarget, EvaluationOutcome, GenerationResult, RetrievalResult
from ragops.evaluation.summary import summarize
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.runs import RunRef
from ragops.vocabulary import (
    COLLECTION_ASSET_ALIAS,
    DEFAULT_ALIAS,
    LLM_POOL,
    MODEL_ASSET_URI,
    RERANKER_ASSET_URI,
    VECTOR_STORE_POOL,
    collection_asset_uri,
)


@dag(
    dag_id="rag_evaluate",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 6 * * *", timezone="UTC"),
        assets=(AssetAlias(COLLECTION_ASSET_ALIAS) | Asset(collection_asset_uri(DEFAULT_ALIAS))
                | Asset(MODEL_ASSET_URI) | Asset(RERANKER_ASSET_URI))),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "evaluation"],
    default_args=DEFAULT_ARGS,
    params=airflow_params(EvaluateParams),
)
def rag_evaluate():
    @ragops_task(pool=VECTOR_STORE_POOL)
    def resolve(rt: TaskRuntime, run: RunRef, params: EvaluateParams) -> EvalTarget:
        """Pins the live collection version, its model, the production reranker and the sets."""
        from ragops.evaluation import steps

        return steps.resolve_target(rt, params, run)

    @ragops_task(pool=VECTOR_STORE_POOL)
    def retrieval(rt: TaskRuntime, target: EvalTarget, params: EvaluateParams) -> RetrievalResult:
        from ragops.evaluation import steps

        return steps.evaluate_retrieval(rt, params, target)

    @ragops_task(pool=LLM_POOL)
    def generation(rt: TaskRuntime, target: EvalTarget, params: EvaluateParams) -> GenerationResult:
        from ragops.evaluation import steps

        return steps.evaluate_generation(rt, params, target)

    @ragops_task
    def record(rt: TaskRuntime, target: EvalTarget, measured: RetrievalResult, answered: GenerationResult,
               params: EvaluateParams) -> EvaluationOutcome:
        """One evaluation artifact; a regression against the rolling baseline alerts, then fails."""
        from ragops.evaluation import steps

        return steps.record_evaluation(rt, params, target, measured, answered)

    run = run_opener(EvaluateParams, extra_fallbacks=evaluation_fallbacks)()
    target = resolve(run)
    record(target, retrieval(target), generation(target)) >> run_closer(summarize)(run)


rag_evaluate()
