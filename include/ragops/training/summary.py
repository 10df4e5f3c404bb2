"""The lineage summaries of rag_finetune_embeddings and rag_model_rollback, built from their records."""

from __future__ import annotations

from typing import Any

from ragops.models import ModelRef, Promotion
from ragops.records import result_of
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.records import Evaluation, GateDecision, TrainedModel, TrainingInputs
from ragops.vocabulary import MODEL_NAME, ArtifactKind

# Stage changes of the model kept in a rollback's summary.
HISTORY_IN_SUMMARY = 10


def summarize(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """What the run trained, how the models scored and what the gate decided; never data.
    ``results`` maps task ids to their records' XCom forms (the DAG) or to the records (the CLI)."""
    inputs = result_of(results, "resolve_inputs", TrainingInputs)
    trained = result_of(results, "train", TrainedModel)
    candidate = result_of(results, "register_candidate", ModelRef)
    evaluation = result_of(results, "evaluate", Evaluation)
    decision = result_of(results, "gate", GateDecision)
    promotion = result_of(results, "promote", Promotion)
    stored = svc.registry.get_artifact(candidate.artifact_id) if candidate and candidate.artifact_id else None
    summary: dict[str, Any] = {
        "dataset": inputs and {"id": inputs.dataset.artifact_id, "version": inputs.dataset.version,
                               "uri": inputs.dataset.uri, "hash": inputs.dataset.content_hash},
        "base_model": inputs and inputs.base_model.model_id,
        "hyperparameters": inputs and inputs.hyperparameters.to_xcom(),
        "compute": inputs and inputs.compute.value,
        "trained": trained and {"skipped": trained.skipped, **{k: trained.metrics.get(k) for k in
                                                              ("global_step", "train_loss", "runtime_s", "device")}},
        "candidate": candidate and {"model_id": candidate.model_id, "hash": candidate.content_hash[:12],
                                    "stage": stored.stage if stored else None,
                                    "status": stored.status if stored else None},
        "live_before": decision and decision.live_model,
        "decision": decision and decision.verdict.value,
        "reasons": decision and list(decision.reasons),
        "evaluation_id": decision and decision.evaluation_id,
        "report_uri": evaluation and evaluation.report_uri,
        "chart_uri": evaluation and evaluation.chart_uri,
        "ndcg@10": evaluation and evaluation.ndcg_at_10,
        "promoted": promotion and promotion.promoted,
        # The candidate is the live model itself: the run found nothing new to make.
        "noop": bool(decision and decision.same_as_live),
    }
    return {k: v for k, v in summary.items() if v is not None}


def summarize_rollback(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """rag_model_rollback's summary: the version restored, the one it replaced, the stage history."""
    promotion = result_of(results, "rollback", Promotion)
    history = svc.registry.stage_history_of(ArtifactKind.MODEL, MODEL_NAME)[-HISTORY_IN_SUMMARY:]
    if promotion is None:
        return {"history": history}
    return {"model_id": promotion.model.model_id, "artifact_id": promotion.model.artifact_id,
            "promoted": promotion.promoted, "previous_artifact_id": promotion.previous_artifact_id,
            "previous_version": promotion.previous_version, "archived": list(promotion.archived),
            "history": history, "noop": not promotion.promoted}
