"""
# rag_finetune_embeddings

Finetunes the embedding model on the synthetic query dataset and promotes it only if it wins.

1. **resolve_inputs**: the dataset version (latest usable by default), the base model, the
   hyperparameters and a content-addressed output location; builds the trainer's arguments.
2. **train**: `include/ragops/training/train_embeddings.py` (MNRL in MatryoshkaLoss, checkpoints,
   warm restart) on a GPU pod (KubernetesPodOperator, image from `docker/Dockerfile.trainer`) or in
   a local process: the same arguments either way, chosen by configuration. A finished model at
   the output location (keyed by the inputs) is not trained again.
3. **register_candidate**: the model becomes a `candidate` version in the lineage registry.
4. **evaluate**: base, live (production) and candidate through one evaluator (nDCG@10, MRR@10,
   Recall@k at every Matryoshka dim) on the dataset's test split and the optional guard sets, and
   in the served mode of the live collection `alias` (`served-hybrid`: the test queries through
   the service's query path, hybrid with the collection's fusion, over a pool of its top hits
   for at most `served_max_queries` test queries, each model encoding the pool itself); the report and a chart are saved as artifacts (the task
   log prints the chart's URL; the UI's "RAG artifacts" menu lists them).
5. **gate**: promote only if the candidate beats the live model by `margin` on nDCG@10 at full
   dim in the served mode and regresses nowhere beyond `guard_tolerance` (the test split at every
   dim is then a guard). Without a searchable live collection the test split is the primary set,
   named in the log and the report's `skipped_sets`. A rejection is a successful run, recorded
   with its reasons.
6. **promote**: one registry transaction (the old production version is archived), and the model
   asset `ragops://model/embeddings` is emitted, which re-embeds the collection (`rag_index`).
   Skipped when the gate rejected, so nothing downstream runs.
7. **close_run**: records the outcome and pushes the run's lineage summary to XCom.

**Approval (opt-in)**: with the param `require_approval` true for a run, or the Variable
`ragops_require_approval` listing `rag_finetune_embeddings` (a run's `false` still wins),
`approve_promotion` waits after a gate that would promote for a person to approve or reject in the
run's **Required actions**, showing the gate's decision, delta and reasons. Unanswered after
`approval_timeout_hours`, it is rejected. A rejection skips the promotion (production stays as it
was) and records who, when and why on the gate's evaluation artifact and in the run summary. Off
(the default), the step passes at once.

Roll back with `rag_model_rollback`.

**Schedule**: on each new usable dataset (`ragops://dataset/synthetic-queries`), or manually.

**Connections**: `ragops_postgres` (lineage registry, required); `kubernetes_default` (or the
`kubernetes_conn_id` of `ragops_training`) for GPU pods; `ragops_slack`/`ragops_smtp` (optional alerts).

**Variables**: `ragops_training` (JSON: `compute` local|kubernetes, `image`, `namespace`, `gpus`,
`node_selector`, `tolerations`, `secret_env`, `secret_env_from`, ... see `ragops/training/compute.py`;
default local), `ragops_artifact_root` (object storage for pods), `ragops_lineage_schema`.

**Params** (`ragops.training.params.FinetuneParams`): `dataset_version`, `base_model`, `epochs`,
`batch_size`, `lr`, `matryoshka_dims`, `max_steps`, `checkpoint_steps`, `seed`, `alias`, `served_max_queries`, `margin`,
`guard_tolerance`, `ks`, `compute`, `golden_queries`, `beir_folder`, `beir_split`,
`beir_max_queries`, `beir_distractors`, `require_approval`, `approval_timeout_hours`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, dag

from ragops.models import ModelRef, Promotion
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.orchestration.hitl import gate_approval
from ragops.orchestration.pod import training_fallbacks
from ragops.runs import RunRef
from ragops.training.params import FinetuneParams
from ragops.training.records import Evaluation, GateDecision, TrainedModel, TrainingInputs
from ragops.training.summary import summarize
from ragops.vocabulary import DATASET_ASSET_URI, MODEL_ASSET_URI


@dag(
    dag_id="rag_finetune_embeddings",
    doc_md=__doc__,
    schedule=[Asset(DATASET_ASSET_URI)],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "embeddings"],
    default_args=DEFAULT_ARGS,
    params=airflow_params(FinetuneParams),
)
def rag_finetune_embeddings():
    @ragops_task
    def resolve_inputs(rt: TaskRuntime, run: RunRef, params: FinetuneParams) -> TrainingInputs:
        from ragops.training import steps

        return steps.resolve_inputs(rt, params, run)

    @ragops_task(execution_timeout=timedelta(hours=12))
    def train(rt: TaskRuntime, inputs: TrainingInputs) -> TrainedModel:
        """Local process or GPU pod, the same entrypoint and arguments; a retry resumes from the last checkpoint."""
        from ragops.training import steps

        return steps.train(rt, inputs)

    @ragops_task
    def register_candidate(rt: TaskRuntime, inputs: TrainingInputs, trained: TrainedModel) -> ModelRef:
        from ragops.training import steps

        return steps.register_trained(rt, inputs, trained)

    @ragops_task
    def evaluate(rt: TaskRuntime, inputs: TrainingInputs, candidate: ModelRef, params: FinetuneParams) -> Evaluation:
        from ragops.training.evaluation import evaluate_candidate

        return evaluate_candidate(rt, params, inputs, candidate)

    @ragops_task
    def gate(rt: TaskRuntime, inputs: TrainingInputs, candidate: ModelRef, evaluation: Evaluation,
             params: FinetuneParams) -> GateDecision:
        from ragops.training import promotion

        return promotion.gate_candidate(rt, params, inputs, candidate, evaluation)

    @ragops_task(outlets=[Asset(MODEL_ASSET_URI)])
    def promote(rt: TaskRuntime, inputs: TrainingInputs, decision: GateDecision) -> Promotion:
        from ragops.training import promotion

        return promotion.promote_candidate(rt, inputs, decision)

    run = run_opener(FinetuneParams, extra_fallbacks=training_fallbacks)()
    inputs = resolve_inputs(run)
    candidate = register_candidate(inputs, train(inputs))
    decision = gate(inputs, candidate, evaluate(inputs, candidate))
    approval = gate_approval("approve_promotion", gate_task="gate", spec=FinetuneParams, what="the promotion")
    decision >> approval >> promote(inputs, decision) >> run_closer(summarize)(run)


rag_finetune_embeddings()
