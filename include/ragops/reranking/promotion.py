"""The reranker gate and what follows it: decide, promote (emitting ragops://model/reranker) or record
why not, and roll back. The registry moves are ``ragops.models.promote`` and ``rollback`` under the
reranker's registry name (one transaction each, exclusive production, stage history)."""

from __future__ import annotations

import logging

from ragops.errors import InvalidInput
from ragops.models import ModelRef, promote, rollback
from ragops.reranking.gate import decide
from ragops.reranking.params import RerankerParams
from ragops.reranking.records import RerankerEvaluation, RerankerInputs, RerankerPromotion
from ragops.services import Services
from ragops.training.gate import Decision, record_decision
from ragops.training.records import GateDecision
from ragops.vocabulary import RERANKER_NAME, ArtifactKind, Stage

log = logging.getLogger(__name__)

GATE_EVALUATION_NAME = f"{RERANKER_NAME}-gate"


def _registered(model: ModelRef) -> int:
    if model.artifact_id is None:
        raise InvalidInput(f"reranker {model.model_id} is not registered: only registered rerankers are gated")
    return model.artifact_id


def gate_candidate(svc: Services, params: RerankerParams, inputs: RerankerInputs, candidate: ModelRef,
                   evaluation: RerankerEvaluation) -> GateDecision:
    """Decides on the candidate; records the evaluation (with the report) and the decision."""
    candidate_id = _registered(candidate)
    live_id = evaluation.artifact_ids.get("live")
    report = svc.artifacts.read_json(svc.artifacts.rel_of(evaluation.report_uri))
    same = live_id == candidate_id
    if same:
        decision = Decision(False, ["the candidate is the live reranker itself (same model): nothing to promote"],
                            {"delta": 0.0, "guards": [], "candidate": "candidate", "live": "live"})
    else:
        decision = decide(report, margin=params.margin, guard_tolerance=params.guard_tolerance)
    recorded = record_decision(svc.registry, decision, candidate_id=candidate_id, report=report,
                               report_uri=evaluation.report_uri, live_id=live_id,
                               dataset_id=inputs.dataset.artifact_id, run_key=inputs.run_key,
                               name=GATE_EVALUATION_NAME, update_candidate=not same,
                               extra_uris={"collection": evaluation.collection})
    for reason in decision.reasons:
        log.info("gate: %s", reason)
    log.info("gate %s %s", decision.verdict.value, candidate.model_id)
    return GateDecision(decision.promote, decision.verdict, tuple(decision.reasons), recorded.id, candidate,
                        evaluation.model_ids["live"], decision.inputs.get("delta"), same)


def promote_candidate(svc: Services, inputs: RerankerInputs, decision: GateDecision) -> RerankerPromotion:
    """Makes an approved candidate the production reranker; a rejected one stays a candidate and the
    returned promotion says why (the task skips: no asset event)."""
    if not decision.promote:
        live = svc.registry.in_stage(ArtifactKind.MODEL, inputs.model_name, Stage.PRODUCTION)
        return RerankerPromotion(False, decision.candidate, live.id if live else None, live.version if live else None,
                                 refused=f"gate rejected {decision.candidate.model_id}: nothing to promote")
    reason = f"gate approved (evaluation {decision.evaluation_id}, nDCG@10 {decision.delta or 0.0:+.4f})"
    return RerankerPromotion.of(promote(svc.registry, _registered(decision.candidate), inputs.run_key, reason))


def rollback_reranker(svc: Services, to_version: int, *, run_key: str | None = None, reason: str = ""
                      ) -> RerankerPromotion:
    """Puts an earlier production version of the reranker back in production (emits the asset)."""
    return RerankerPromotion.of(rollback(svc.registry, to_version, run_key=run_key, name=RERANKER_NAME,
                                         reason=reason or f"rollback to {RERANKER_NAME}:v{to_version}"))
