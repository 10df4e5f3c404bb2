"""The gate and what follows it: decide on the candidate, promote it (or record why not), roll back.

The rule is ``ragops.training.gate``; the registry moves are ``ragops.models.promote`` and
``rollback`` (one transaction each, with stage history). A rejected candidate is a successful
run: the decision and its reasons are recorded, and the promotion is skipped with that reason.
"""

from __future__ import annotations

import logging

from ragops.errors import InvalidInput
from ragops.models import ModelRef, Promotion, promote, rollback
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.gate import Decision, decide, record_decision
from ragops.training.params import FinetuneParams, ModelRollbackParams
from ragops.training.records import Evaluation, GateDecision, TrainingInputs
from ragops.vocabulary import MODEL_NAME, ArtifactKind, Stage

log = logging.getLogger(__name__)


def _registered(model: ModelRef) -> int:
    if model.artifact_id is None:
        raise InvalidInput(f"model {model.model_id} is not registered: only registered models are gated")
    return model.artifact_id


def gate_candidate(svc: Services, params: FinetuneParams, inputs: TrainingInputs, candidate: ModelRef,
                   evaluation: Evaluation) -> GateDecision:
    """Decides on the candidate against the live model, and records the evaluation and the decision."""
    from ragops.training.evaluate import model_report

    candidate_id = _registered(candidate)
    live_id = evaluation.artifact_ids.get("live")
    report = svc.artifacts.read_json(svc.artifacts.rel_of(evaluation.report_uri))
    same = live_id == candidate_id
    if same:
        decision = Decision(False, ["the candidate is the live model itself (same weights): nothing to promote"],
                            {"delta": 0.0, "guards": [], "candidate": "candidate", "live": "live"})
    else:
        decision = decide(model_report(report, "candidate"), model_report(report, "live"), margin=params.margin,
                          guard_tolerance=params.guard_tolerance)
    recorded = record_decision(svc.registry, decision, candidate_id=candidate_id, report=report,
                               report_uri=evaluation.report_uri, live_id=live_id,
                               dataset_id=inputs.dataset.artifact_id, extra_uris={"chart_uri": evaluation.chart_uri},
                               run_key=inputs.run_key, update_candidate=not same)
    for reason in decision.reasons:
        log.info("gate: %s", reason)
    log.info("gate %s %s", decision.verdict.value, candidate.model_id)
    return GateDecision(decision.promote, decision.verdict, tuple(decision.reasons), recorded.id, candidate,
                        evaluation.model_ids["live"], decision.inputs.get("delta"), same)


def promote_candidate(svc: Services, inputs: TrainingInputs, decision: GateDecision) -> Promotion:
    """Makes an approved candidate the production model; a rejected one stays where it is (the
    returned promotion says why, and the task skips: no model asset event, nothing re-embedded)."""
    if not decision.promote:
        live = svc.registry.in_stage(ArtifactKind.MODEL, inputs.model_name, Stage.PRODUCTION)
        return Promotion(False, decision.candidate, live.id if live else None, live.version if live else None,
                         refused=f"gate rejected {decision.candidate.model_id}: nothing to promote")
    reason = f"gate approved (evaluation {decision.evaluation_id}, delta {decision.delta or 0.0:+.4f})"
    return promote(svc.registry, _registered(decision.candidate), inputs.run_key, reason)


def rollback_model(svc: Services, params: ModelRollbackParams, run: RunRef, *, name: str = MODEL_NAME) -> Promotion:
    """Puts an earlier production version (or the base model) back in production."""
    reason = params.reason or f"rollback to v{params.to_version} ({run.run_id})"
    return rollback(svc.registry, params.to_version, run_key=run.run_key, reason=reason, name=name)
