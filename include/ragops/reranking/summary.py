"""rag_train_reranker's lineage summary, built from its records."""

from __future__ import annotations

from typing import Any

from ragops.models import ModelRef
from ragops.records import result_of
from ragops.reranking.records import MinedData, RerankerEvaluation, RerankerInputs, RerankerPromotion, TrainedReranker
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.records import GateDecision


def summarize(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """What the run mined and trained, how the rerankers scored and what the gate decided; never data.
    ``results`` maps task ids to their records' XCom forms (the DAG) or to the records (in process)."""
    inputs = result_of(results, "resolve_inputs", RerankerInputs)
    mined = result_of(results, "mine", MinedData)
    trained = result_of(results, "train", TrainedReranker)
    candidate = result_of(results, "register_candidate", ModelRef)
    evaluation = result_of(results, "evaluate", RerankerEvaluation)
    decision = result_of(results, "gate", GateDecision)
    promotion = result_of(results, "promote", RerankerPromotion)
    stored = svc.registry.get_artifact(candidate.artifact_id) if candidate and candidate.artifact_id else None
    summary: dict[str, Any] = {
        "kind": inputs and inputs.hyperparameters.kind.value,
        "dataset": inputs and {"id": inputs.dataset.artifact_id, "version": inputs.dataset.version,
                               "uri": inputs.dataset.uri},
        "imported": inputs and inputs.imported and {"labels_id": inputs.imported.labels_id,
                                                    "rows": inputs.imported.rows,
                                                    "dropped": inputs.imported.dropped,
                                                    "label_sources": inputs.imported.label_sources},
        "collection": inputs and inputs.collection,
        "compute": inputs and inputs.compute.value,
        "mined": mined and {"queries": mined.queries, "missed": mined.missed, "positives": mined.positives,
                            "negatives": mined.negatives, "false_negatives": mined.false_negatives,
                            "same_document": mined.same_document},
        "trained": trained and {"skipped": trained.skipped, **{k: trained.metrics.get(k) for k in
                                                              ("queries", "rows", "runtime_s", "device", "train_loss")
                                                              if k in trained.metrics}},
        "candidate": candidate and {"model_id": candidate.model_id, "hash": candidate.content_hash[:12],
                                    "stage": stored.stage if stored else None,
                                    "status": stored.status if stored else None},
        "live_before": decision and decision.live_model,
        "decision": decision and decision.verdict.value,
        "reasons": decision and list(decision.reasons),
        "evaluation_id": decision and decision.evaluation_id,
        "report_uri": evaluation and evaluation.report_uri,
        "sets": evaluation and list(evaluation.sets),
        "ndcg@10": evaluation and evaluation.ndcg_at_10,
        "promoted": promotion and promotion.promoted,
        "noop": bool(decision and decision.same_as_live),
    }
    return {k: v for k, v in summary.items() if v is not None}
