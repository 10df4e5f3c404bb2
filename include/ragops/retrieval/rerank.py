"""The second stage: a reranker reorders the first stage's top N.

A reranker is anything with a ``name`` and ``rerank(query, hits) -> hits``: it receives the
candidates best first and returns them in its order, each with ``score`` (and ``scores["rerank"]``)
set to its own score where it has one. It may drop hits, never add any. The identity reranker is
the default until a trained one (a cross-encoder, a learning-to-rank model) is promoted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, runtime_checkable

from ragops.retrieval.hits import Hit

DEFAULT_RERANK_TOP_N = 20


@runtime_checkable
class Reranker(Protocol):
    name: str            # recorded with every result it shaped (a registry id once rerankers are versioned)

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        """The hits in the reranker's order, best first."""
        ...


class IdentityReranker:
    """Keeps the first stage's order: the no-op stage, and the baseline a trained reranker must beat."""

    name = "identity"

    def rerank(self, query: str, hits: Sequence[Hit]) -> list[Hit]:
        return list(hits)


def apply_reranker(reranker: Reranker, query: str, hits: Sequence[Hit]) -> list[Hit]:
    """Runs a reranker and checks what it returned: a subset of the candidates, each once."""
    given = {h.chunk_id for h in hits}
    ranked = reranker.rerank(query, list(hits))
    seen: set[str] = set()
    for hit in ranked:
        if hit.chunk_id not in given or hit.chunk_id in seen:
            raise ValueError(f"reranker {reranker.name!r} returned {hit.chunk_id!r}, which is not one of the "
                             "candidates it was given (or returned it twice)")
        seen.add(hit.chunk_id)
    return [replace(h, rank=i) for i, h in enumerate(ranked, start=1)]
