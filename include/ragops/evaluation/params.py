"""rag_evaluate's params: the trigger form, the CLI, the steps, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ragops.params import ParamSpec, param
from ragops.vocabulary import ALIAS_PATTERN, DEFAULT_ALIAS, LLM_CONN_ID, EvalSetKind, SearchMode

if TYPE_CHECKING:
    from ragops.services import Services

# A drop of more than this (absolute, on a 0..1 metric) against the rolling baseline is a regression.
DEFAULT_TOLERANCE = 0.05
DEFAULT_BASELINE_WINDOW = 5

# The fallback a run names when no LLM endpoint exists: the judge's metrics are skipped.
NO_JUDGE_FALLBACK = {"service": f"LLM judge ({LLM_CONN_ID})",
                     "using": "non-LLM checks (citation validity, extractive-answer overlap with the gold passage)",
                     "reason": f"no {LLM_CONN_ID} connection: faithfulness, answer relevance, context precision "
                               "and citation correctness are skipped"}


@dataclass(frozen=True)
class EvaluateParams(ParamSpec):
    alias: str = param(DEFAULT_ALIAS, "The collection alias whose live version is evaluated.", pattern=ALIAS_PATTERN)
    sets: list[str] = param(factory=list, description="Evaluation sets to run (empty: every set the registry "
                                                      "knows): golden, review, imported, synthetic, beir.",
                            items={"type": "string", "enum": [k.value for k in EvalSetKind]}, uniqueItems=True)
    mode: SearchMode = param(SearchMode.HYBRID, "First stage of the query path (as the service serves it).",
                             enum=list(SearchMode))
    rerank: bool = param(True, "Rerank with the production reranker (the identity when none is in production).")
    k: int = param(100, "Recall@k: the depth of the recall metric.", minimum=1, maximum=1000)
    max_queries: int | None = param(1000, "Evaluate at most this many queries per set (a seeded sample; empty: "
                                          "all).", minimum=1)
    sample_size: int = param(20, "Questions answered and judged (a fixed sample, seeded).", minimum=0, maximum=1000)
    cost_cap_usd: float = param(1.0, "Stop answering and judging once the LLM calls of this run cost this much "
                                     "(prices from the connection's extra; cached calls cost nothing).", minimum=0)
    llm_model: str | None = param(None, f"The judge's model (empty: the {LLM_CONN_ID} connection's extra 'model').")
    seed: int = param(13, "Seed of the query and judge samples.")
    tolerance: float = param(DEFAULT_TOLERANCE, "A metric that drops more than this below its rolling baseline "
                                                "raises a regression alert and fails the run.", minimum=0)
    baseline_window: int = param(DEFAULT_BASELINE_WINDOW, "The rolling baseline: the median of the last N "
                                                          "evaluations of the alias (per set and metric).",
                                 minimum=1, maximum=100)

    def kinds(self) -> set[EvalSetKind]:
        return {EvalSetKind(s) for s in self.sets} if self.sets else set(EvalSetKind)


def evaluation_fallbacks(svc: Services, params: EvaluateParams) -> list[dict[str, str]]:
    """``run_opener``'s extra fallbacks: without an LLM endpoint, the judge's part is skipped."""
    return [] if svc.llm is not None or params.sample_size == 0 else [dict(NO_JUDGE_FALLBACK)]
