"""
# rag_train_reranker

Trains the second stage of the query path on our own labelled queries and promotes it only if it
wins: a reranker over the live collection's first-stage top N, behind the `Reranker` protocol.

1. **resolve_inputs**: imports labelled queries first when `labels_source` is set (a BEIR qrels
   split or a JSONL of `{query, doc_id|chunk_id}`: document labels map to the document's
   best-matching chunks by the collection's dense score; the rows keep their label source,
   synthetic / reviewed / imported; a new dataset version, merged into the latest by default);
   then the dataset version (latest usable by default) and the collection version the alias
   points at now (mining and evaluation both use it, whatever the alias does meanwhile).
2. **mine**: the train split's queries through the first stage (`mode`, `top_n`): positives,
   hard negatives, false negatives dropped by `negative_margin` (sentence-transformers'
   `mine_hard_negatives` relative margin), other chunks of a positive's document left out;
   each candidate with its first-stage features.
3. **train**: `ltr` (LightGBM LambdaRank over the features, in the task, seconds) or
   `cross-encoder` (`include/ragops/reranking/train_cross_encoder.py` from the MiniLM backbone
   with `CrossEncoderTrainer`, on a GPU pod or in a local process, the same arguments either
   way). A finished model at the output location (keyed by its inputs) is not trained again.
4. **register_candidate**: a `candidate` version of the registry's `reranker`.
5. **evaluate**: the first stage alone vs the live reranker vs the candidate, on the same
   candidates of the collection, on the held-out test split and each guard set on its own
   (synthetic test split, review labels, imported labels, `golden_queries`, a registered BEIR
   qrels split).
6. **gate**: promote only if the candidate beats the live reranker (or the first stage alone)
   by `margin` nDCG@10 on the held-out queries and no guard set regresses beyond
   `guard_tolerance`. A rejection is a successful run, recorded with its reasons.
7. **promote**: one registry transaction (the previous production reranker is archived) and the
   asset `ragops://model/reranker`; the service and CLI (`Retriever`) pick it up without a restart.
   Skipped when the gate rejected.
8. **close_run**: records the outcome and pushes the run's lineage summary to XCom.

Roll back with `ragops.reranking.promotion.rollback_reranker` (an earlier production version).

**Schedule**: on each new usable dataset (`ragops://dataset/synthetic-queries`), weekly (Monday
05:00 UTC), or a UI trigger.

**Connections**: `ragops_postgres` (lineage registry, required); `ragops_weaviate` (optional: the
store); `kubernetes_default` for the cross-encoder's GPU pod; `ragops_slack`/`ragops_smtp` (alerts).

**Variables**: `ragops_training` (compute of the cross-encoder, the pod's image and resources),
`ragops_artifact_root`, `ragops_vector_dir`, `ragops_lineage_schema`.

**Params** (`ragops.reranking.params.RerankerParams`): `kind`, `alias`, `dataset_version`,
`labels_source`, `labels_split`, `labels_merge`, `mode`, `top_n`, `negative_margin`,
`negatives_per_query`, `max_train_queries`, `trees`, `leaves`, `ltr_learning_rate`,
`min_data_in_leaf`, `epochs`, `batch_size`, `lr`, `max_steps`, `seed`, `margin`,
`guard_tolerance`, `golden_queries`, `beir_folder`, `beir_split`, `beir_max_queries`, `compute`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, AssetOrTimeSchedule, CronTriggerTimetable, dag

from ragops.models import ModelRef
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.reranking.params import RerankerParams, reranker_fallbacks
from ragops.reranking.records import MinedData, RerankerEvaluation, RerankerInputs, RerankerPromotion, TrainedReranker
from ragops.reranking.summary import summarize
from ragops.runs import RunRef
from ragops.training.records import GateDecision
from ragops.vocabulary import DATASET_ASSET_URI, RERANKER_ASSET_URI, VECTOR_STORE_POOL


@dag(
    dag_id="rag_train_reranker",
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 5 * * 1", timezone="UTC"),
                                 assets=Asset(DATASET_ASSET_URI)),
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "reranker"],
    default_args=DEFAULT_ARGS,
    params=airflow_params(RerankerParams),
)
def rag_train_reranker():
    @ragops_task(pool=VECTOR_STORE_POOL)
    def resolve_inputs(rt: TaskRuntime, run: RunRef, params: RerankerParams) -> RerankerInputs:
        """Imports labels (labels_source) into a dataset version, then pins the dataset and the collection version."""
        from ragops.reranking import steps

        return steps.resolve_inputs(rt, params, run)

    @ragops_task(pool=VECTOR_STORE_POOL)
    def mine(rt: TaskRuntime, inputs: RerankerInputs) -> MinedData:
        from ragops.reranking import steps

        return steps.mine_training_data(rt, inputs)

    @ragops_task(execution_timeout=timedelta(hours=12))
    def train(rt: TaskRuntime, inputs: RerankerInputs, mined: MinedData) -> TrainedReranker:
        """LTR in the task; the cross-encoder in a GPU pod or a local process (the same entrypoint and arguments)."""
        from ragops.reranking import steps

        return steps.train(rt, inputs, mined)

    @ragops_task
    def register_candidate(rt: TaskRuntime, inputs: RerankerInputs, mined: MinedData,
                           trained: TrainedReranker) -> ModelRef:
        from ragops.reranking import steps

        return steps.register_trained(rt, inputs, mined, trained)

    @ragops_task(pool=VECTOR_STORE_POOL)
    def evaluate(rt: TaskRuntime, inputs: RerankerInputs, candidate: ModelRef,
                 params: RerankerParams) -> RerankerEvaluation:
        from ragops.reranking.evaluation import evaluate_candidate

        return evaluate_candidate(rt, params, inputs, candidate)

    @ragops_task
    def gate(rt: TaskRuntime, inputs: RerankerInputs, candidate: ModelRef, evaluation: RerankerEvaluation,
             params: RerankerParams) -> GateDecision:
        from ragops.reranking import promotion

        return promotion.gate_candidate(rt, params, inputs, candidate, evaluation)

    @ragops_task(outlets=[Asset(RERANKER_ASSET_URI)])
    def promote(rt: TaskRuntime, inputs: RerankerInputs, decision: GateDecision) -> RerankerPromotion:
        from ragops.reranking import promotion

        return promotion.promote_candidate(rt, inputs, decision)

    run = run_opener(RerankerParams, extra_fallbacks=reranker_fallbacks)()
    inputs = resolve_inputs(run)
    mined = mine(inputs)
    candidate = register_candidate(inputs, mined, train(inputs, mined))
    decision = gate(inputs, candidate, evaluate(inputs, candidate))
    promote(inputs, decision) >> run_closer(summarize)(run)


rag_train_reranker()
