"""The promotion gate: a candidate model goes live only if it is better and breaks nothing.

Rule: the candidate beats the live model on the primary metric (nDCG@10 on the primary set at
the full dim) by at least ``margin``, and on every other (set, dim) pair, guard sets included,
it loses no more than ``guard_tolerance``. Anything else is a rejection, recorded with its
reasons: a rejected candidate is a successful run, not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ragops.errors import InvalidInput
from ragops.hashing import hash_object
from ragops.vocabulary import MODEL_NAME, ArtifactKind, Relation, Status

if TYPE_CHECKING:
    from ragops.lineage import Artifact, Registry

PRIMARY_METRIC = "ndcg@10"
DEFAULT_MARGIN = 0.005
DEFAULT_GUARD_TOLERANCE = 0.01
# The gate's primary set when the live collection can be searched (``training.served``), and the
# default bound on its queries: at most 30k pooled passages for each model to encode.
SERVED_SET = "served-hybrid"
SERVED_MAX_QUERIES = 500
# The registry name of the model gate's evaluations.
GATE_EVALUATION_NAME = f"{MODEL_NAME}-gate"


@dataclass
class Decision:
    promote: bool
    reasons: list[str]
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> Status:
        return Status.PROMOTED if self.promote else Status.REJECTED


def _metric(report: Mapping[str, Any], set_name: str, dim: int, metric: str) -> float:
    try:
        return float(report["metrics"][set_name][str(dim)][metric])
    except KeyError as exc:
        raise InvalidInput(f"report {report.get('label', '?')!r} lacks {metric} on {set_name!r} at dim {dim}") from exc


def decide(candidate_report: Mapping[str, Any], live_report: Mapping[str, Any], *,
           primary_metric: str = PRIMARY_METRIC, primary_dim: int | None = None,
           primary_set: str | None = None, margin: float = DEFAULT_MARGIN,
           guard_tolerance: float = DEFAULT_GUARD_TOLERANCE) -> Decision:
    """Compares two model reports (``evaluate.model_report`` shape: ``metrics[set][dim][metric]``)."""
    if margin < 0 or guard_tolerance < 0:
        raise InvalidInput(f"margin ({margin}) and guard_tolerance ({guard_tolerance}) must be >= 0")
    primary_set = primary_set or candidate_report.get("primary_set") or next(iter(candidate_report["metrics"]))
    dims = sorted({int(d) for d in candidate_report["metrics"][primary_set]}, reverse=True)
    primary_dim = int(primary_dim or dims[0])
    cand = _metric(candidate_report, primary_set, primary_dim, primary_metric)
    live = _metric(live_report, primary_set, primary_dim, primary_metric)
    delta = cand - live
    reasons: list[str] = []
    primary_ok = delta > 0 and delta >= margin
    where = f"{primary_metric} on {primary_set}@{primary_dim}"
    if primary_ok:
        reasons.append(f"{where}: {cand:.4f} vs live {live:.4f} (+{delta:.4f} >= margin {margin})")
    else:
        reasons.append(f"{where}: {cand:.4f} vs live {live:.4f} ({delta:+.4f}) does not beat it by "
                       f"margin {margin}")

    guards: list[dict[str, Any]] = []
    regressions = 0
    for set_name, per_dim in candidate_report["metrics"].items():
        if set_name not in live_report["metrics"]:
            reasons.append(f"guard {set_name}: the live model was not evaluated on it; not compared")
            continue
        for dim_key in per_dim:
            dim = int(dim_key)
            if set_name == primary_set and dim == primary_dim:
                continue
            c = _metric(candidate_report, set_name, dim, primary_metric)
            v = _metric(live_report, set_name, dim, primary_metric)
            regressed = v - c > guard_tolerance
            regressions += regressed
            guards.append({"set": set_name, "dim": dim, "candidate": c, "live": v, "delta": round(c - v, 6),
                           "regressed": regressed})
            if regressed:
                reasons.append(f"guard {set_name}@{dim}: {primary_metric} {c:.4f} vs live {v:.4f} "
                               f"({c - v:+.4f}) regresses beyond tolerance {guard_tolerance}")
    if not regressions:
        reasons.append(f"no guard regresses beyond {guard_tolerance} ({len(guards)} set/dim pairs checked)")
    inputs = {
        "candidate": candidate_report.get("label"), "live": live_report.get("label"),
        "primary_metric": primary_metric, "primary_set": primary_set, "primary_dim": primary_dim,
        "margin": margin, "guard_tolerance": guard_tolerance,
        "candidate_value": cand, "live_value": live, "delta": round(delta, 6), "guards": guards,
    }
    return Decision(promote=primary_ok and regressions == 0, reasons=reasons, inputs=inputs)


def record_decision(registry: Registry, decision: Decision, *, candidate_id: int, report: Mapping[str, Any],
                    report_uri: str, live_id: int | None = None, dataset_id: int | None = None,
                    extra_uris: Mapping[str, str] | None = None, run_key: str | None = None,
                    name: str = GATE_EVALUATION_NAME, update_candidate: bool = True) -> Artifact:
    """Records the evaluation (an artifact with the report and the decision, linked to the models
    and the dataset) and writes the decision onto the candidate. Idempotent: keyed by the report.

    ``update_candidate=False`` leaves the candidate's row alone (when it is the live model itself)."""
    parents = [(candidate_id, Relation.EVALUATES)]
    if live_id is not None and live_id != candidate_id:
        parents.append((live_id, Relation.BASELINE))
    if dataset_id is not None:
        parents.append((dataset_id, Relation.EVALUATED_ON))
    evaluation = registry.record_artifact(
        ArtifactKind.EVALUATION, name, hash_object({"report": report, "decision": decision.inputs}), report_uri,
        params={"decision_inputs": {k: v for k, v in decision.inputs.items() if k != "guards"},
                **{k: v for k, v in (extra_uris or {}).items()}},
        metrics={"decision": decision.verdict, "reasons": decision.reasons, "guards": decision.inputs["guards"]},
        status=decision.verdict, run_key=run_key, parents=parents)
    if not update_candidate:
        return evaluation
    registry.update_artifact(candidate_id, metrics={"gate": {"decision": decision.verdict,
                                                             "reasons": decision.reasons,
                                                             "evaluation_id": evaluation.id,
                                                             "delta": decision.inputs["delta"]}},
                             status=Status.APPROVED if decision.promote else Status.REJECTED)
    return evaluation
