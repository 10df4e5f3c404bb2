"""The LLM gate: a candidate goes live only if it is better and breaks nothing.

Rule: the candidate's perplexity on the held-out reference answers is lower than the live LLM's by
at least ``margin`` (relative: 0.02 = 2% lower); and no guard regresses by more than
``guard_tolerance``: the share of its own answers that cite only the passages given (always), and
the judge's faithfulness and answer relevance (when both models were judged). Anything else is a
rejection with its reasons: a successful run, not a failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragops.errors import InvalidInput
from ragops.training.gate import Decision
from ragops.vocabulary import LLM_MODEL_NAME

PRIMARY_METRIC = "perplexity"
GATE_EVALUATION_NAME = f"{LLM_MODEL_NAME}-gate"


def guard_values(report: Mapping[str, Any]) -> dict[str, float]:
    """A model report's guard metrics (higher is better)."""
    values = {"citation_valid_rate": float(report["citations"]["valid_rate"])}
    for metric, value in (report.get("judge") or {}).items():
        if metric in ("faithfulness", "relevance"):
            values[f"judge_{metric}"] = float(value)
    return values


def decide(candidate: Mapping[str, Any], live: Mapping[str, Any], *, margin: float,
           guard_tolerance: float) -> Decision:
    """Compares two model reports of one evaluation (``evaluation.evaluate_candidate``'s ``models[label]``)."""
    if margin < 0 or guard_tolerance < 0:
        raise InvalidInput(f"margin ({margin}) and guard_tolerance ({guard_tolerance}) must be >= 0")
    cand_ppl, live_ppl = float(candidate[PRIMARY_METRIC]), float(live[PRIMARY_METRIC])
    if not live_ppl > 0:
        raise InvalidInput(f"the live model's perplexity {live_ppl} is not a positive number")
    gain = (live_ppl - cand_ppl) / live_ppl
    primary_ok = gain > 0 and gain >= margin
    where = "perplexity of the held-out reference answers"
    reasons = [f"{where}: {cand_ppl:.4f} vs live {live_ppl:.4f} ({gain:+.2%} lower "
               + (f">= margin {margin:.2%})" if primary_ok else f"does not reach margin {margin:.2%})")]
    cand_guards, live_guards = guard_values(candidate), guard_values(live)
    guards, regressions = [], 0
    for name, value in cand_guards.items():
        if name not in live_guards:
            reasons.append(f"guard {name}: the live model has no value; not compared")
            continue
        before = live_guards[name]
        regressed = before - value > guard_tolerance
        regressions += regressed
        guards.append({"guard": name, "candidate": value, "live": before, "delta": round(value - before, 6),
                       "regressed": regressed})
        if regressed:
            reasons.append(f"guard {name}: {value:.4f} vs live {before:.4f} ({value - before:+.4f}) regresses beyond "
                           f"tolerance {guard_tolerance}")
    if not regressions:
        reasons.append(f"no guard regresses beyond {guard_tolerance} ({', '.join(g['guard'] for g in guards)})")
    judged = "judge_faithfulness" in cand_guards and "judge_faithfulness" in live_guards
    inputs = {"candidate": candidate.get("label"), "live": live.get("label"), "primary_metric": PRIMARY_METRIC,
              "margin": margin, "guard_tolerance": guard_tolerance, "candidate_value": cand_ppl,
              "live_value": live_ppl, "delta": round(gain, 6), "guards": guards, "judged": judged}
    return Decision(promote=primary_ok and regressions == 0, reasons=reasons, inputs=inputs)
