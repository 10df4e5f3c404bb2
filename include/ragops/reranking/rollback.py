"""rag_reranker_rollback's params, step and summary: the production reranker back to an earlier version.

The registry move is ``reranking.promotion.rollback_reranker`` (``ragops.models.rollback``: one
transaction, exclusive production, stage history). Only a version that was production before
qualifies; without a version the previous production one is chosen from the stage history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.errors import InvalidInput
from ragops.params import ParamSpec, param
from ragops.records import result_of
from ragops.reranking.promotion import rollback_reranker
from ragops.reranking.records import RerankerPromotion
from ragops.runs import RunRef
from ragops.services import Services
from ragops.training.summary import HISTORY_IN_SUMMARY
from ragops.vocabulary import RERANKER_NAME, ArtifactKind, Stage


@dataclass(frozen=True)
class RerankerRollbackParams(ParamSpec):
    to_version: int | None = param(None, f"The reranker version (of {RERANKER_NAME!r}) to make production again; "
                                         "empty: the previous production version.", minimum=1)
    reason: str = param("", "Why (recorded in the stage history).")


def previous_production(svc: Services) -> int:
    """The most recent version, other than the current production one, that was production."""
    live = svc.registry.in_stage(ArtifactKind.MODEL, RERANKER_NAME, Stage.PRODUCTION)
    for change in reversed(svc.registry.stage_history_of(ArtifactKind.MODEL, RERANKER_NAME)):
        if change["to_stage"] == Stage.PRODUCTION and (live is None or change["version"] != live.version):
            return int(change["version"])
    raise InvalidInput(f"rollback: reranker {RERANKER_NAME!r} has no earlier production version"
                       + (f" than v{live.version}" if live else "") + "; name one with param to_version")


def rollback(svc: Services, params: RerankerRollbackParams, run: RunRef) -> RerankerPromotion:
    """Puts the chosen (default: previous) production version back; a no-op when it is production already."""
    version = params.to_version or previous_production(svc)
    reason = params.reason or f"rollback to v{version} ({run.run_id})"
    return rollback_reranker(svc, version, run_key=run.run_key, reason=reason)


def summarize_rollback(svc: Services, run: RunRef, results: dict[str, Any]) -> dict[str, Any]:
    """The version restored, the one it replaced, and the stage history; never data."""
    promotion = result_of(results, "rollback", RerankerPromotion)
    history = svc.registry.stage_history_of(ArtifactKind.MODEL, RERANKER_NAME)[-HISTORY_IN_SUMMARY:]
    if promotion is None:
        return {"history": history}
    return {"model_id": promotion.model.model_id, "artifact_id": promotion.model.artifact_id,
            "uri": promotion.model.uri, "promoted": promotion.promoted,
            "previous_artifact_id": promotion.previous_artifact_id, "previous_version": promotion.previous_version,
            "archived": list(promotion.archived), "history": history, "noop": not promotion.promoted}
