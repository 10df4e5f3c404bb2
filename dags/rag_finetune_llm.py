"""
# rag_finetune_llm

Finetunes the generator LLM (LoRA, or QLoRA on a GPU) on instruction data built from the synthetic
query dataset, merges the adapters into the base, and promotes the merged model only if it wins.

1. **build_instructions**: each (question, positive passage) pair of a `synthetic-queries` version
   becomes a chat row in the serving path's answer prompt (`prompts/answer.v1.txt`): the positive
   among numbered distractor passages, and a reference answer citing it as `[n]`, written by the
   `ragops_llm` endpoint (cached in the registry) or, without it, extractively (the passage's best
   sentences: a named fallback). Content-addressed in the store; the query dataset's split by document.
2. **register_instructions**: a great-expectations suite (citations valid and present, no leakage,
   no duplicates), recorded with the run; the version is registered (`llm-instructions`) with an
   edge to its query dataset. A failed suite is recorded as `failed_dq`, alerted, and stops the run.
3. **resolve_inputs**: the base LLM, the hyperparameters, a content-addressed output location in the
   artifact store (the checkpoint mirror) and `train_llm.py`'s arguments.
4. **train**: `include/ragops/training/train_llm.py` (TRL SFT + peft LoRA; QLoRA with `load_in_4bit`)
   on a GPU pod (KubernetesPodOperator, image from `docker/Dockerfile.llm-trainer`) or in a local
   process, the same arguments either way. Checkpoints are mirrored to the store every `save_steps`;
   a retried task or restarted pod resumes from the newest complete one; a finished run is not
   trained again. The adapter is registered (kind `adapter`, name `llm`).
5. **merge**: the adapter merged into the base (`merge_and_unload`), or combined first with the
   earlier adapters of `merge_adapters` by weight (`combination_type`, default `cat`: the exact
   weighted sum); the merged model is a `candidate` version of `llm`, with lineage edges to every
   adapter and to the base.
6. **evaluate**: base, live and candidate on the held-out split: perplexity of the reference answers
   and citation validity always; the judge's faithfulness and relevance only with `ragops_llm`.
7. **gate**: promote only if perplexity drops by `margin` (relative) and no guard regresses beyond
   `guard_tolerance`. A rejection is a successful run, recorded with its reasons.
8. **promote**: one registry transaction (the old production version archived, stage history), and
   the asset `ragops://model/llm` is emitted. Skipped when the gate rejected.
9. **close_run**: records the outcome and pushes the run's lineage summary to XCom.

Roll back with `rag_llm_rollback`. Serve the promoted model with vLLM's OpenAI-compatible server and
point `ragops_llm` at it (README, "Serving the finetuned LLM"):
`vllm serve <artifact root>/models/llm/merged/<key> --served-model-name ragops-llm`, then the
connection `ragops_llm` with host `http://<vllm host>:8000/v1` and extra `{"model": "ragops-llm"}`.

**Schedule**: on each new usable dataset (`ragops://dataset/synthetic-queries`), or manually.

**Connections**: `ragops_postgres` (lineage registry, required); `ragops_llm` (optional:
answer writer and judge; without it extractive answers and no judge, both named fallbacks);
`kubernetes_default` (or the `kubernetes_conn_id` of `ragops_training`) for GPU pods;
`ragops_slack`/`ragops_smtp` (optional alerts).

**Variables**: `ragops_training` (JSON: `compute` local|kubernetes, `llm_image` (the LLM trainer's
image), `namespace`, `gpus`, `node_selector`, `tolerations`, `secret_env`, `secret_env_from`, ...
see `ragops/training/compute.py`; default local), `ragops_artifact_root` (object storage for pods),
`ragops_lineage_schema`.

**Params** (`ragops.llm.params.LLMFinetuneParams`): `dataset_version`, `base_model`, `lora_r`,
`lora_alpha`, `lora_dropout`, `target_modules`, `load_in_4bit`, `max_steps`, `lr`, `max_seq_length`,
`batch_size`, `grad_accum`, `save_steps`, `seed`, `adapter_weight`, `merge_adapters`,
`combination_type`, `answers`, `llm_model`, `passages_per_prompt`, `passage_chars`, `max_rows`,
`eval_sample_size`, `max_new_tokens`, `margin`, `guard_tolerance`, `compute`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import Asset, dag

from ragops.llm.params import LLMFinetuneParams, llm_fallbacks
from ragops.llm.records import (
    InstructionBuild,
    InstructionDataset,
    LLMEvaluation,
    LLMGateDecision,
    LLMPromotion,
    LLMTrainingInputs,
    MergedModel,
    TrainedAdapter,
)
from ragops.llm.summary import summarize
from ragops.orchestration import DEFAULT_ARGS, TaskRuntime, airflow_params, ragops_task, run_closer, run_opener
from ragops.runs import RunRef
from ragops.vocabulary import DATASET_ASSET_URI, LLM_ASSET_URI, LLM_POOL


@dag(
    dag_id="rag_finetune_llm",
    doc_md=__doc__,
    schedule=[Asset(DATASET_ASSET_URI)],
    start_date=datetime(2026, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["ragops", "training", "llm"],
    default_args=DEFAULT_ARGS,
    params=airflow_params(LLMFinetuneParams),
)
def rag_finetune_llm():
    @ragops_task(pool=LLM_POOL)
    def build_instructions(rt: TaskRuntime, run: RunRef, params: LLMFinetuneParams) -> InstructionBuild:
        """The only data task that may call the LLM (answer writer): it returns counts and URIs only."""
        from ragops.llm import data

        return data.build_instructions(rt, params, run)

    @ragops_task
    def register_instructions(rt: TaskRuntime, build: InstructionBuild) -> InstructionDataset:
        from ragops.llm import data

        return data.register_instructions(rt, build)

    @ragops_task
    def resolve_inputs(rt: TaskRuntime, run: RunRef, dataset: InstructionDataset,
                       params: LLMFinetuneParams) -> LLMTrainingInputs:
        from ragops.llm import steps

        return steps.resolve_inputs(rt, params, run, dataset)

    @ragops_task(execution_timeout=timedelta(hours=24))
    def train(rt: TaskRuntime, inputs: LLMTrainingInputs) -> TrainedAdapter:
        """Local process or GPU pod, the same entrypoint; a retry resumes from the newest mirrored checkpoint."""
        from ragops.llm import steps

        return steps.train(rt, inputs)

    @ragops_task(execution_timeout=timedelta(hours=4))
    def merge(rt: TaskRuntime, inputs: LLMTrainingInputs, trained: TrainedAdapter,
              params: LLMFinetuneParams) -> MergedModel:
        from ragops.llm import steps

        return steps.merge(rt, params, inputs, trained)

    @ragops_task(pool=LLM_POOL, execution_timeout=timedelta(hours=4))
    def evaluate(rt: TaskRuntime, inputs: LLMTrainingInputs, merged: MergedModel,
                 params: LLMFinetuneParams) -> LLMEvaluation:
        from ragops.llm.evaluation import evaluate_candidate

        return evaluate_candidate(rt, params, inputs, merged)

    @ragops_task
    def gate(rt: TaskRuntime, inputs: LLMTrainingInputs, merged: MergedModel, evaluation: LLMEvaluation,
             params: LLMFinetuneParams) -> LLMGateDecision:
        from ragops.llm import promotion

        return promotion.gate_candidate(rt, params, inputs, merged, evaluation)

    @ragops_task(outlets=[Asset(LLM_ASSET_URI)])
    def promote(rt: TaskRuntime, inputs: LLMTrainingInputs, decision: LLMGateDecision) -> LLMPromotion:
        from ragops.llm import promotion

        return promotion.promote_candidate(rt, inputs, decision)

    run = run_opener(LLMFinetuneParams, extra_fallbacks=llm_fallbacks)()
    dataset = register_instructions(build_instructions(run))
    inputs = resolve_inputs(run, dataset)
    merged = merge(inputs, train(inputs))
    decision = gate(inputs, merged, evaluate(inputs, merged))
    promote(inputs, decision) >> run_closer(summarize)(run)


rag_finetune_llm()
