"""rag_evaluate's lineage summary, built from its records (and its evaluation artifact)."""

from __future__ import annotations

from typing import Any

from ragops.evaluation.records import EvalTarget, EvaluationOutcome, GenerationResult, RetrievalResult
from ragops.records import result_of
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import CONTINUOUS_EVAL_NAME, ArtifactKind


def summarize(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """What was evaluated, each set's headline metrics, the generation checks, and the trend's
    verdict. ``results`` maps task ids to their records' XCom forms (the DAG) or the records."""
    target = result_of(results, "resolve", EvalTarget)
    retrieval = result_of(results, "retrieval", RetrievalResult)
    generation = result_of(results, "generation", GenerationResult)
    outcome = result_of(results, "record", EvaluationOutcome)
    evaluation = outcome and svc.registry.get_artifact(outcome.evaluation_id)
    if evaluation is None and target is not None:   # a regression fails the task after recording it
        evaluation = next((a for a in reversed(svc.registry.list_artifacts(ArtifactKind.EVALUATION,
                                                                           CONTINUOUS_EVAL_NAME))
                           if a.run_key == run.run_key), None)
    summary: dict[str, Any] = {
        "versions": target and target.versions(),
        "fallbacks": list(run.fallbacks),
        "sets": retrieval and {name: {m: v for m, v in metrics.items() if m != "by_source"}
                               for name, metrics in retrieval.sets.items()},
        "skipped_sets": target and target.skipped_sets or None,
        "generation": generation and generation.metrics or None,
        "judge_fallback": generation and generation.fallback,
        "evaluation": evaluation and evaluation.summary(),
        "regressions": evaluation and evaluation.status == "failed" and _regressions(svc, evaluation.uri) or None,
        "changed": outcome and list(outcome.changed) or None,
        "noop": target is None,
    }
    return {k: v for k, v in summary.items() if v is not None}


def _regressions(svc: Services, uri: str) -> list[dict[str, Any]]:
    try:
        return list(svc.artifacts.read_json(svc.artifacts.rel_of(uri)).get("regressions") or [])
    except (OSError, ValueError):
        return []
