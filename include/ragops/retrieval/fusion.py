"""Hybrid fusion as a parameter of the collection: reciprocal rank fusion or weighted score fusion.

- ``rrf``: a hit at 1-based rank ``r`` in a list adds ``weight / (rrf_k + r)``; the dense list has
  weight ``alpha``, the keyword list ``1 - alpha`` (``ragops.stores.fusion``, the stores' own rule,
  so the default reproduces ``store.hybrid_search`` exactly).
- ``weighted``: each list's scores are min-max normalised over its candidates, then
  ``alpha * dense + (1 - alpha) * keyword`` (a hit missing from a list adds 0 for it): Weaviate's
  relativeScoreFusion. Scores, not ranks: a large BM25 margin counts.

Which one a collection uses, and its weight, is chosen on the collection's own labelled queries
(``ragops.retrieval.tuning.tune_fusion``) and recorded in the collection artifact's params under
``retrieval.fusion``; a collection without it uses ``DEFAULT_FUSION``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ragops.errors import InvalidInput
from ragops.stores.base import SearchHit
from ragops.stores.fusion import RRF_K, reciprocal_rank_fusion

RRF = "rrf"
WEIGHTED = "weighted"
FUSION_METHODS = (RRF, WEIGHTED)
# Candidates taken from each list before fusion, as the stores do: deeper than the fused list, so a
# hit ranked modestly by both retrievers can still rise into it.
DEPTH_FACTOR = 3
MIN_DEPTH = 30


@dataclass(frozen=True)
class FusionConfig:
    """How a collection's hybrid search fuses its dense and keyword lists."""

    method: str = RRF
    alpha: float = 0.5          # the dense list's weight; the keyword list gets 1 - alpha
    rrf_k: int = RRF_K          # RRF only: damps the head of each list

    def __post_init__(self) -> None:
        if self.method not in FUSION_METHODS:
            raise InvalidInput(f"fusion method {self.method!r} is not one of {FUSION_METHODS}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not 0.0 <= self.alpha <= 1.0:
            raise InvalidInput(f"fusion alpha {self.alpha!r} must lie in [0, 1]")
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, int) or self.rrf_k < 1:
            raise InvalidInput(f"fusion rrf_k {self.rrf_k!r} must be a positive integer")

    @property
    def label(self) -> str:
        if self.method == RRF:
            return f"rrf(k={self.rrf_k}, alpha={self.alpha:g})"
        return f"weighted(alpha={self.alpha:g})"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any] | None) -> FusionConfig:
        if not value:
            return DEFAULT_FUSION
        known = {"method", "alpha", "rrf_k"}
        return cls(**{k: v for k, v in value.items() if k in known})


DEFAULT_FUSION = FusionConfig()


def fusion_of(params: Mapping[str, Any] | None) -> FusionConfig:
    """The fusion recorded in a collection artifact's params (``retrieval.fusion``), else the default."""
    retrieval = (params or {}).get("retrieval") or {}
    return FusionConfig.from_dict(retrieval.get("fusion"))


def list_depth(n: int) -> int:
    """How deep each list is searched for a fused list of ``n``."""
    return max(DEPTH_FACTOR * n, MIN_DEPTH)


def weighted_score_fusion(dense: Sequence[SearchHit], keyword: Sequence[SearchHit], *, alpha: float = 0.5,
                          k: int = 10) -> list[SearchHit]:
    """Min-max normalised scores, ``alpha * dense + (1 - alpha) * keyword``; the top ``k`` (ties by id).

    Each list is normalised over its first ``MIN_DEPTH`` hits (hits below clip to 0), so a hit's
    fused score does not depend on how deep the lists were searched: the service (k=10) and an
    evaluation (k=100) rank the head alike."""
    scores: dict[str, float] = {}
    properties: dict[str, dict[str, Any]] = {}
    for weight, hits in ((alpha, dense), (1.0 - alpha, keyword)):
        if weight == 0.0 or not hits:
            continue
        values = [float(h.score) for h in hits]
        head = values[:MIN_DEPTH]
        low, high = min(head), max(head)
        span = high - low
        for hit, value in zip(hits, values, strict=True):
            norm = max(0.0, (value - low) / span) if span > 0 else float(value >= high)
            scores[hit.id] = scores.get(hit.id, 0.0) + weight * norm
            properties.setdefault(hit.id, hit.properties)
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [SearchHit(id=i, score=s, properties=properties[i]) for i, s in ranked]


def fuse(dense: Sequence[SearchHit], keyword: Sequence[SearchHit], config: FusionConfig = DEFAULT_FUSION,
         k: int = 10) -> list[SearchHit]:
    """The fused top ``k`` of two ranked lists under ``config``."""
    if config.method == RRF:
        return reciprocal_rank_fusion(dense, keyword, alpha=config.alpha, k=k, rrf_k=config.rrf_k)
    return weighted_score_fusion(dense, keyword, alpha=config.alpha, k=k)
