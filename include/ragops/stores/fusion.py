"""Rank fusion for hybrid search: one definition shared by every store that fuses client-side.

Weighted reciprocal rank fusion (Cormack, Clarke & Büttcher 2009, with Weaviate's ``alpha``
weighting of its "ranked" fusion): a hit at 1-based rank ``r`` in a list contributes
``weight / (k + r)``; the vector list has weight ``alpha`` and the keyword list ``1 - alpha``;
contributions add up over the lists. Ranks, not raw scores, are fused because cosine similarity
and BM25 live on incomparable scales. ``k = 60`` damps the head of each list (the paper's
near-optimal constant, also Weaviate's).
"""

from __future__ import annotations

from collections.abc import Sequence

from ragops.stores.base import SearchHit

RRF_K = 60


def reciprocal_rank_fusion(vector_hits: Sequence[SearchHit], keyword_hits: Sequence[SearchHit], *,
                           alpha: float = 0.5, k: int = 10, rrf_k: int = RRF_K) -> list[SearchHit]:
    """Fuses two ranked lists into the top ``k`` by weighted RRF score (higher is better).

    Ties are broken by id so that the order is deterministic.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"hybrid search alpha must lie in [0, 1], got {alpha}")
    scores: dict[str, float] = {}
    properties: dict[str, dict] = {}
    for weight, hits in ((alpha, vector_hits), (1.0 - alpha, keyword_hits)):
        if weight == 0.0:
            continue
        for rank, hit in enumerate(hits, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + weight / (rrf_k + rank)
            properties.setdefault(hit.id, hit.properties)
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]
    return [SearchHit(id=hit_id, score=score, properties=properties[hit_id]) for hit_id, score in ranked]
