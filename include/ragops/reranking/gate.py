"""The reranker gate: a candidate goes live only if it is better than what is served and breaks nothing.

Rule: on the held-out set, the candidate beats the live reranker (the first stage alone when none
is live) by at least ``margin`` nDCG@10. On every set, guard sets each on their own (golden
queries, review labels, the synthetic test split, imported labels, registered BEIR qrels), it
loses no more than ``guard_tolerance`` against the live reranker, nor against the first stage
alone (a reranker that makes the first stage worse should not be served at all). Anything else is
a rejection with its reasons: a successful run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragops.errors import InvalidInput
from ragops.training.gate import Decision

METRIC = "ndcg@10"


def decide(report: Mapping[str, Any], *, margin: float, guard_tolerance: float, metric: str = METRIC) -> Decision:
    """Decides on ``report`` (``evaluation.evaluate_candidate``'s: ``metrics[set][label][metric]``)."""
    if margin < 0 or guard_tolerance < 0:
        raise InvalidInput(f"margin ({margin}) and guard_tolerance ({guard_tolerance}) must be >= 0")
    metrics, primary = report["metrics"], report["primary_set"]
    try:
        cand = float(metrics[primary]["candidate"][metric])
        live = float(metrics[primary]["live"][metric])
    except KeyError as exc:
        raise InvalidInput(f"the reranker report lacks {metric} on {primary!r}: {exc}") from exc
    live_name = "the first stage alone (no live reranker)" if report.get("live_is_first_stage") else \
        f"live {report.get('model_ids', {}).get('live', 'reranker')}"
    delta = cand - live
    primary_ok = delta > 0 and delta >= margin
    where = f"{metric} on {primary}"
    reasons = [f"{where}: {cand:.4f} vs {live_name} {live:.4f} ({delta:+.4f}) "
               + (f">= margin {margin}" if primary_ok else f"does not beat it by margin {margin}")]
    baselines = ["first_stage"] if report.get("live_is_first_stage") else ["live", "first_stage"]
    guards: list[dict[str, Any]] = []
    for set_name, per_label in metrics.items():
        c = float(per_label["candidate"][metric])
        for baseline in baselines:
            if set_name == primary and baseline == "live":
                continue   # the primary comparison above
            v = float(per_label[baseline][metric])
            regressed = v - c > guard_tolerance
            guards.append({"set": set_name, "against": baseline, "candidate": c, "baseline": v,
                           "delta": round(c - v, 6), "regressed": regressed})
            if regressed:
                reasons.append(f"guard {set_name} vs {baseline}: {metric} {c:.4f} vs {v:.4f} ({c - v:+.4f}) regresses "
                               f"beyond tolerance {guard_tolerance}")
    regressions = sum(g["regressed"] for g in guards)
    if not regressions:
        reasons.append(f"no guard regresses beyond {guard_tolerance} ({len(guards)} set/baseline pairs checked)")
    inputs = {"candidate": "candidate", "live": report.get("model_ids", {}).get("live"), "primary_metric": metric,
              "primary_set": primary, "margin": margin, "guard_tolerance": guard_tolerance, "candidate_value": cand,
              "live_value": live, "delta": round(delta, 6), "guards": guards}
    return Decision(promote=primary_ok and not regressions, reasons=reasons, inputs=inputs)
