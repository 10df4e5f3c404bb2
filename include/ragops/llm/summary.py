"""The lineage summaries of rag_finetune_llm and rag_llm_rollback, built from their records."""

from __future__ import annotations

from typing import Any

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
from ragops.records import result_of
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import LLM_MODEL_NAME, ArtifactKind

HISTORY_IN_SUMMARY = 10


def summarize(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """What the run built, trained and merged, how the models scored and what the gate decided; never data.
    ``results`` maps task ids to their records' XCom forms (the DAG) or to the records (a CLI)."""
    build = result_of(results, "build_instructions", InstructionBuild)
    dataset = result_of(results, "register_instructions", InstructionDataset)
    inputs = result_of(results, "resolve_inputs", LLMTrainingInputs)
    trained = result_of(results, "train", TrainedAdapter)
    merged = result_of(results, "merge", MergedModel)
    evaluation = result_of(results, "evaluate", LLMEvaluation)
    decision = result_of(results, "gate", LLMGateDecision)
    promotion = result_of(results, "promote", LLMPromotion)
    stored = svc.registry.get_artifact(merged.candidate.artifact_id) if merged and merged.candidate.artifact_id else None
    summary: dict[str, Any] = {
        "fallbacks": list(run.fallbacks),
        "source_dataset": build and {"id": build.source.artifact_id, "version": build.source.version},
        "instructions": dataset and {"id": dataset.dataset_id, "version": dataset.version, "uri": dataset.uri,
                                     "rows_train": dataset.rows_train, "rows_test": dataset.rows_test,
                                     "answers": dataset.answers.value, "dq_success": dataset.dq_success},
        "base_model": inputs and inputs.base_model.model_id,
        "hyperparameters": inputs and inputs.hyperparameters.to_xcom(),
        "compute": inputs and inputs.compute.value,
        "output_uri": inputs and inputs.output_uri,
        "trained": trained and {"adapter": trained.adapter.model_id, "skipped": trained.skipped,
                                **{k: trained.metrics.get(k) for k in ("global_step", "resumed_from_step",
                                                                       "steps_this_run", "train_loss", "runtime_s",
                                                                       "device", "load_in_4bit")}},
        "merged": merged and {"adapters": [a.model_id for a in merged.adapters], "weights": list(merged.weights),
                              "method": merged.method, "skipped": merged.skipped},
        "candidate": merged and {"model_id": merged.candidate.model_id, "hash": merged.candidate.content_hash[:12],
                                 "uri": merged.candidate.uri, "stage": stored.stage if stored else None,
                                 "status": stored.status if stored else None},
        "live_before": decision and decision.live_model,
        "perplexity": evaluation and evaluation.perplexity,
        "citation_valid_rate": evaluation and evaluation.citation_valid_rate,
        "judge": evaluation and (evaluation.judge or {"skipped": evaluation.judge_skipped}),
        "report_uri": evaluation and evaluation.report_uri,
        "decision": decision and decision.verdict.value,
        "reasons": decision and list(decision.reasons),
        "evaluation_id": decision and decision.evaluation_id,
        "promoted": promotion and promotion.promoted,
        "noop": bool(decision and decision.same_as_live),
    }
    return {k: v for k, v in summary.items() if v is not None}


def summarize_rollback(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """rag_llm_rollback's summary: the version restored, the one it replaced, the stage history."""
    promotion = result_of(results, "rollback", LLMPromotion)
    history = svc.registry.stage_history_of(ArtifactKind.MODEL, LLM_MODEL_NAME)[-HISTORY_IN_SUMMARY:]
    if promotion is None:
        return {"history": history}
    return {"model_id": promotion.model.model_id, "artifact_id": promotion.model.artifact_id, "uri": promotion.model.uri,
            "promoted": promotion.promoted, "previous_artifact_id": promotion.previous_artifact_id,
            "previous_version": promotion.previous_version, "archived": list(promotion.archived),
            "history": history, "noop": not promotion.promoted}
