"""The LLM gate and what follows it: decide on the candidate, promote it (or record why not), roll back.

The rule is ``ragops.llm.gate``; the registry moves are ``ragops.models.promote`` and ``rollback``
with the LLM's registry name (one transaction each, exclusive production, stage history). The
promotion emits the LLM asset ``ragops://model/llm``; a rejection skips it with the gate's reasons.
"""

from __future__ import annotations

import logging

from ragops.errors import InvalidInput
from ragops.llm.gate import GATE_EVALUATION_NAME, decide
from ragops.llm.params import LLMFinetuneParams, LLMRollbackParams
from ragops.llm.records import LLMEvaluation, LLMGateDecision, LLMPromotion, LLMTrainingInputs, MergedModel
from ragops.models import ModelRef, promote, rollback
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.gate import Decision, record_decision
from ragops.vocabulary import LLM_MODEL_NAME, ArtifactKind, Stage

log = logging.getLogger(__name__)


def _registered(model: ModelRef) -> int:
    if model.artifact_id is None:
        raise InvalidInput(f"model {model.model_id} is not registered: only registered models are gated")
    return model.artifact_id


def gate_candidate(svc: Services, params: LLMFinetuneParams, inputs: LLMTrainingInputs, merged: MergedModel,
                   evaluation: LLMEvaluation) -> LLMGateDecision:
    """Decides on the merged candidate against the live LLM; records the evaluation and the decision."""
    candidate = merged.candidate
    candidate_id = _registered(candidate)
    live_id = evaluation.artifact_ids.get("live")
    report = svc.artifacts.read_json(svc.artifacts.rel_of(evaluation.report_uri))
    same = live_id == candidate_id
    if same:
        decision = Decision(False, ["the candidate is the live LLM itself (same weights): nothing to promote"],
                            {"delta": 0.0, "guards": [], "candidate": "candidate", "live": "live"})
    else:
        decision = decide(report["models"]["candidate"], report["models"]["live"], margin=params.margin,
                          guard_tolerance=params.guard_tolerance)
    if evaluation.judge_skipped:
        decision.reasons.append(f"judge skipped: {evaluation.judge_skipped}")
    recorded = record_decision(svc.registry, decision, candidate_id=candidate_id, report=report,
                               report_uri=evaluation.report_uri, live_id=live_id, dataset_id=inputs.dataset.dataset_id,
                               run_key=inputs.run_key, name=GATE_EVALUATION_NAME, update_candidate=not same)
    for reason in decision.reasons:
        log.info("gate: %s", reason)
    log.info("gate %s %s", decision.verdict.value, candidate.model_id)
    return LLMGateDecision(decision.promote, decision.verdict, tuple(decision.reasons), recorded.id, candidate,
                           evaluation.model_ids["live"], decision.inputs.get("delta"), same)


def promote_candidate(svc: Services, inputs: LLMTrainingInputs, decision: LLMGateDecision) -> LLMPromotion:
    """Makes an approved candidate the production LLM (the LLM asset is emitted); a rejected one stays a
    candidate, and the returned promotion says why (the task skips: no asset event)."""
    if not decision.promote:
        live = svc.registry.in_stage(ArtifactKind.MODEL, LLM_MODEL_NAME, Stage.PRODUCTION)
        return LLMPromotion(False, decision.candidate, live.id if live else None, live.version if live else None,
                            refused=f"gate rejected {decision.candidate.model_id}: nothing to promote")
    reason = f"gate approved (evaluation {decision.evaluation_id}, perplexity {decision.delta or 0.0:+.2%} lower)"
    return LLMPromotion.of(promote(svc.registry, _registered(decision.candidate), inputs.run_key, reason))


def rollback_llm(svc: Services, params: LLMRollbackParams, run: RunRef) -> LLMPromotion:
    """Puts an earlier production version of the LLM back in production (emits the LLM asset)."""
    reason = params.reason or f"rollback to v{params.to_version} ({run.run_id})"
    return LLMPromotion.of(rollback(svc.registry, params.to_version, run_key=run.run_key, reason=reason,
                                    name=LLM_MODEL_NAME))
