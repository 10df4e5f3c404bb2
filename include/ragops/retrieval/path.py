"""The query path of one collection version: first stage -> optional rerank of the top N -> top k.

Evaluation, the gates, the CLI and the service all query through ``QueryPath.search`` (the
service and CLI through a live ``Retriever``, which hands out the path of the version the alias
points at), so what is measured is what is served.

- First stage: ``dense`` (cosine over the collection's vectors), ``keyword`` (BM25 over title and
  text) or ``hybrid`` (both lists, each ``max(3n, 30)`` deep, fused by the collection's
  ``FusionConfig``). With source filters, the first stage over-fetches and keeps the hits of
  those sources (the store protocol has no filters).
- Rerank (``rerank=True``): the reranker reorders the first stage's top ``rerank_top_n``.
- Final: the top ``k``, each with its citation and, when the path has a query encoder, its cosine
  similarity to the query (``Hit.similarity``), the scale answer thresholds compare against.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ragops.errors import InvalidInput
from ragops.retrieval.citations import CitationIndex, citation_from_properties
from ragops.retrieval.fusion import DEFAULT_FUSION, FusionConfig, fuse, list_depth
from ragops.retrieval.hits import Hit, SearchResult, Version
from ragops.retrieval.rerank import DEFAULT_RERANK_TOP_N, IdentityReranker, Reranker, apply_reranker
from ragops.vocabulary import SearchMode

if TYPE_CHECKING:
    from ragops.stores import SearchHit, VectorStore

Encode = Callable[[list[str]], np.ndarray]
MODES = tuple(m.value for m in SearchMode)
# With source filters, the first stage fetches this many times more candidates, then filters.
FILTER_OVERFETCH = 5
MAX_CANDIDATES = 10_000


class EncoderUnavailable(RuntimeError):
    """Dense or hybrid search was asked of a collection whose query encoder cannot be loaded."""


class QueryPath:
    """The stages over one fixed collection version. Thread-safe if ``encode`` is."""

    def __init__(self, store: VectorStore, collection: str, *, encode: Encode | None = None,
                 fusion: FusionConfig = DEFAULT_FUSION, reranker: Reranker | None = None,
                 citations: CitationIndex | None = None, version: Version | None = None,
                 encoder_problem: str | None = None):
        self.store = store
        self.collection = collection
        self.encode = encode
        self.fusion = fusion
        self.reranker: Reranker = reranker or IdentityReranker()
        self.citations = citations
        self.version = version or Version(collection, collection)
        self.encoder_problem = encoder_problem

    # -- public ------------------------------------------------------------------------------
    def search(self, query: str, *, k: int = 10, mode: str = SearchMode.HYBRID, rerank: bool = False,
               rerank_top_n: int = DEFAULT_RERANK_TOP_N, sources: Sequence[str] | None = None,
               similarity: bool = True, cite: bool = True, fusion: FusionConfig | None = None) -> SearchResult:
        """One query through every stage. ``fusion`` overrides the collection's (tuning, benchmarks)."""
        return self.search_many([query], k=k, mode=mode, rerank=rerank, rerank_top_n=rerank_top_n,
                                sources=sources, similarity=similarity, cite=cite, fusion=fusion)[0]

    def search_many(self, queries: Sequence[str], *, k: int = 10, mode: str = SearchMode.HYBRID,
                    rerank: bool = False, rerank_top_n: int = DEFAULT_RERANK_TOP_N,
                    sources: Sequence[str] | None = None, similarity: bool = True, cite: bool = True,
                    fusion: FusionConfig | None = None) -> list[SearchResult]:
        """Queries in one batch (their encoding is batched); the same stages as ``search``."""
        mode = _check(queries, k, mode, rerank_top_n)
        started = time.perf_counter()
        vectors = None
        if mode != SearchMode.KEYWORD or (similarity and self.encode is not None):
            vectors = self._encode(list(queries))
        encode_s = (time.perf_counter() - started) / max(len(queries), 1)
        return [self._search(q, None if vectors is None else vectors[i], k=k, mode=mode, rerank=rerank,
                             rerank_top_n=rerank_top_n, sources=sources, similarity=similarity, cite=cite,
                             fusion=fusion or self.fusion, encode_s=encode_s)
                for i, q in enumerate(queries)]

    def first_stage(self, query: str, vector: Sequence[float] | None, *, mode: str, n: int,
                    fusion: FusionConfig | None = None) -> tuple[list[SearchHit], dict[str, dict[str, float]]]:
        """The first stage's top ``n`` and every candidate's score per list ("dense", "keyword", "fused")."""
        fusion = fusion or self.fusion
        dense: list[SearchHit] = []
        keyword: list[SearchHit] = []
        if mode == SearchMode.DENSE:
            dense = self.store.vector_search(self.collection, _vector(vector), k=n)
            ranked = dense
        elif mode == SearchMode.KEYWORD:
            keyword = self.store.keyword_search(self.collection, query, k=n)
            ranked = keyword
        else:
            depth = list_depth(n)
            if fusion.alpha > 0.0:
                dense = self.store.vector_search(self.collection, _vector(vector), k=depth)
            if fusion.alpha < 1.0:
                keyword = self.store.keyword_search(self.collection, query, k=depth)
            ranked = fuse(dense, keyword, fusion, k=n)
        scores: dict[str, dict[str, float]] = {}
        for name, hits in (("dense", dense), ("keyword", keyword)):
            for hit in hits:
                scores.setdefault(hit.id, {})[name] = float(hit.score)
        if mode == SearchMode.HYBRID:
            for hit in ranked:
                scores.setdefault(hit.id, {})["fused"] = float(hit.score)
        return ranked, scores

    # -- the stages --------------------------------------------------------------------------
    def _search(self, query: str, vector: np.ndarray | None, *, k: int, mode: str, rerank: bool, rerank_top_n: int,
                sources: Sequence[str] | None, similarity: bool, cite: bool, fusion: FusionConfig,
                encode_s: float) -> SearchResult:
        timings = {"encode": round(encode_s, 6)}
        t0 = time.perf_counter()
        n = max(k, rerank_top_n) if rerank else k
        wanted = {str(s) for s in sources} if sources else None
        fetch = min(n * FILTER_OVERFETCH, MAX_CANDIDATES) if wanted else n
        ranked, scores = self.first_stage(query, vector, mode=mode, n=fetch, fusion=fusion)
        if wanted is not None:
            ranked = [h for h in ranked if str(h.properties.get("source") or "") in wanted]
        candidates = [Hit(rank=i, chunk_id=h.id, score=float(h.score), text=str(h.properties.get("text") or ""),
                          title=str(h.properties.get("title") or ""),
                          citation=citation_from_properties(h.properties, h.id),
                          scores=scores.get(h.id, {}), properties=h.properties)
                      for i, h in enumerate(ranked[:n], start=1)]
        t1 = time.perf_counter()
        timings["first_stage"] = round(t1 - t0, 6)
        reranker_name = None
        if rerank:
            candidates = apply_reranker(self.reranker, query, candidates)
            reranker_name = self.reranker.name
            timings["rerank"] = round(time.perf_counter() - t1, 6)
        final = candidates[:k]
        t2 = time.perf_counter()
        if similarity and vector is not None:
            final = self._with_similarity(final, vector)
        if cite and self.citations is not None:
            citations = self.citations
            final = [replace(h, citation=citations.cite(h.properties, h.chunk_id)) for h in final]
        final = [replace(h, rank=i) for i, h in enumerate(final, start=1)]
        timings["finish"] = round(time.perf_counter() - t2, 6)
        timings["total"] = round(sum(timings.values()), 6)
        return SearchResult(query=query, mode=mode, hits=final, version=self.version,
                            fusion=fusion if mode == SearchMode.HYBRID else None, reranker=reranker_name,
                            candidates=len(candidates), timings=timings)

    def _encode(self, texts: list[str]) -> np.ndarray:
        if self.encode is None:
            raise EncoderUnavailable(self.encoder_problem or f"collection {self.collection!r} has no query encoder: "
                                     "only keyword search is possible")
        return np.asarray(self.encode(texts), dtype=np.float32)

    def _with_similarity(self, hits: list[Hit], vector: np.ndarray) -> list[Hit]:
        """Fills in the cosine similarity of hits the dense list did not score (fetched vectors)."""
        missing = [h.chunk_id for h in hits if "dense" not in h.scores]
        if not missing:
            return hits
        found = {o.id: o.vector for o in self.store.fetch(self.collection, missing, include_vectors=True)}
        out = []
        for hit in hits:
            stored = found.get(hit.chunk_id)
            if "dense" not in hit.scores and stored is not None:
                hit = replace(hit, scores={**hit.scores, "dense": float(np.dot(np.asarray(stored, np.float32), vector))})
            out.append(hit)
        return out


def _vector(vector: Any) -> Any:
    if vector is None:
        raise EncoderUnavailable("dense search needs a query vector")
    return vector


def _check(queries: Sequence[str], k: int, mode: str, rerank_top_n: int) -> str:
    for query in queries:
        if not isinstance(query, str) or not query.strip():
            raise InvalidInput("query: must be a non-empty string")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_CANDIDATES:
        raise InvalidInput(f"k: must be an integer between 1 and {MAX_CANDIDATES}, got {k!r}")
    if isinstance(rerank_top_n, bool) or not isinstance(rerank_top_n, int) or not 1 <= rerank_top_n <= MAX_CANDIDATES:
        raise InvalidInput(f"rerank_top_n: must be an integer between 1 and {MAX_CANDIDATES}, got {rerank_top_n!r}")
    if mode not in MODES:
        raise InvalidInput(f"mode: {mode!r} is not one of {MODES}")
    return SearchMode(mode)
