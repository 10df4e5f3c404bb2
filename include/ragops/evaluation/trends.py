"""Trends: each run is one point; a metric that falls beyond a tolerance below its rolling
baseline (the median of the last N evaluations of that set and metric) is a regression.

The alert names the set, the metric, before (the baseline) and after, and the versions that
changed since the latest evaluation in the window (collection, embedding model, reranker): what a
team looks at first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import median
from typing import Any

from ragops.errors import DataQualityError

# Versions an evaluation names, as (label, the id param, how it reads).
VERSIONS = (("collection", "collection_id", ("collection", "collection_version")),
            ("embedding model", "model_id", ("model_id",)),
            ("reranker", "reranker_id", ("reranker_id",)))


class EvaluationRegression(DataQualityError):
    """A metric fell beyond the tolerance below its rolling baseline: fail without retry (the
    evaluation and the alert are recorded first)."""


def trended(metric: str) -> bool:
    """The metrics a regression is measured on: nDCG@10, MRR@10, Recall@k."""
    return metric in ("ndcg@10", "mrr@10") or metric.startswith("recall@")


def baseline(history: Sequence[Mapping[str, Any]], window: int) -> dict[str, dict[str, float]]:
    """``{set: {metric: median}}`` over the last ``window`` evaluations' metrics (oldest first in)."""
    values: dict[str, dict[str, list[float]]] = {}
    for point in list(history)[-window:] if window > 0 else []:
        for set_name, metrics in (point.get("sets") or {}).items():
            for metric, value in metrics.items():
                if trended(metric) and isinstance(value, int | float):
                    values.setdefault(set_name, {}).setdefault(metric, []).append(float(value))
    return {s: {m: round(median(v), 4) for m, v in ms.items()} for s, ms in values.items()}


def regressions(current: Mapping[str, Mapping[str, Any]], base: Mapping[str, Mapping[str, float]],
                tolerance: float) -> list[dict[str, Any]]:
    """Every (set, metric) whose value fell more than ``tolerance`` below its baseline."""
    out = []
    for set_name, metrics in sorted(current.items()):
        for metric, after in sorted(metrics.items()):
            before = base.get(set_name, {}).get(metric)
            if before is None or not trended(metric) or not isinstance(after, int | float):
                continue
            if before - float(after) > tolerance + 1e-9:
                out.append({"set": set_name, "metric": metric, "before": before, "after": float(after),
                            "drop": round(before - float(after), 4)})
    return out


def changed_versions(current: Mapping[str, Any], last: Mapping[str, Any] | None) -> list[str]:
    """What changed between the latest baseline evaluation's versions and this one's, readably."""
    if last is None:
        return []
    return [f"{label} {_shown(last, shown)} -> {_shown(current, shown)}"
            for label, key, shown in VERSIONS if current.get(key) != last.get(key)]


def _shown(params: Mapping[str, Any], keys: Sequence[str]) -> str:
    parts = [str(params.get(k)) for k in keys if params.get(k) is not None]
    return " v".join(parts) if parts else "none"


def alert_text(alias: str, found: Sequence[Mapping[str, Any]], changed: Sequence[str], window: int,
               tolerance: float) -> tuple[str, str]:
    """The alert's title and message: set, metric, before and after, what changed."""
    worst = max(found, key=lambda r: r["drop"])
    title = f"evaluation regression: {alias} {worst['set']} {worst['metric']}"
    lines = [f"{r['set']} {r['metric']}: {r['before']:.4f} -> {r['after']:.4f} (drop {r['drop']:.4f})" for r in found]
    why = "; ".join(changed) if changed else "no collection, model or reranker version changed (the sets did?)"
    message = (f"{len(found)} metric(s) of {alias} fell more than {tolerance} below the median of the last "
               f"{window} evaluations: " + "; ".join(lines) + f". Changed since the baseline: {why}.")
    return title, message
