"""The model gate's served-mode set: each model scored as the live collection serves queries.

The dataset's test split alone is a weak judge: its corpus is the split's own passages, so every
model scores near the ceiling (0.92 nDCG@10 on SciFact's held-out labels) and a lift the served
hybrid shows over the whole collection stays invisible to it. This set asks what the service
would answer instead:

- **Queries**: the dataset's test split, judged as ``rag_evaluate`` judges it (document level when
  every row is an imported label, chunk level otherwise).
- **Corpus**: a pool from the live collection: each query's dense and keyword lists at the depth
  hybrid search fuses for a top 10 (``list_depth(10)``), plus the positives. Re-encoding a pool
  instead of the whole collection keeps the gate's cost bounded on a large corpus.
- **Scoring**: per model, a ``QueryPath`` (the service's own query path) over an in-memory store of
  the pool: dense is that model's cosine over its own encoding of the pool, keyword is the live
  collection's BM25 list (the same for every model), fused by the collection's recorded fusion.

The pool is what the live pipeline surfaced, so the comparison leans toward the live model: a
candidate must win by ranking those passages better, never by finding what nothing surfaced.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragops.documents import embedding_text_of
from ragops.hashing import sha256_text
from ragops.retrieval.fusion import list_depth
from ragops.stores.base import SearchHit
from ragops.vocabulary import LabelSource, SearchMode

if TYPE_CHECKING:
    import numpy as np

    from ragops.retrieval.path import QueryPath
    from ragops.retrieval_eval import LabelledQueries
    from ragops.services import Services

log = logging.getLogger(__name__)

POOL_DEPTH = list_depth(10)     # each list's depth for the service's default top 10
SCORED_K = 10                   # the gate compares nDCG@10 and MRR@10: nothing deeper is scored


@dataclass
class ServedPool:
    """The labelled test queries, the pooled passages, and each query's keyword list."""

    labelled: LabelledQueries
    texts: dict[str, str]                     # chunk id -> embedding text
    properties: dict[str, dict[str, Any]]     # chunk id -> chunk_id, doc_id (what judging reads)
    keyword: dict[str, list[SearchHit]]       # query text -> the live BM25 list, pool only
    path: QueryPath                           # the live collection's path: its fusion, its name

    def describe(self) -> dict[str, Any]:
        return {"queries": len(self.labelled.queries), "corpus": len(self.texts), "guard": False,
                "level": self.labelled.level, "notes": [
                    f"served mode: hybrid over a pool of {self.path.collection}'s dense and keyword top "
                    f"{POOL_DEPTH} per query, fused by {self.path.fusion.label}"]}


def served_pool(svc: Services, alias: str, test_rows: Sequence[Mapping[str, Any]], *,
                max_queries: int | None = None) -> ServedPool:
    """The pool for ``test_rows`` (dataset rows with query, positive, chunk_id, doc_id) from the
    collection ``alias`` points at now. Raises when that collection cannot be searched densely.

    ``max_queries`` bounds the cost (every model encodes up to ``2 * POOL_DEPTH`` passages a
    query): the queries first by hash are kept, the same sample whatever the rows' order."""
    import numpy as np

    from ragops.evaluation.sets import rows_labelled
    from ragops.retrieval.retriever import Retriever

    rows = [dict(r) for r in test_rows if r.get("query") and r.get("positive") and r.get("chunk_id")]
    if not rows:
        raise ValueError("the dataset's test split has no row with a query and a positive")
    distinct = sorted({r["query"] for r in rows}, key=sha256_text)
    if max_queries is not None and len(distinct) > max_queries:
        kept = set(distinct[:max_queries])
        rows = [r for r in rows if r["query"] in kept]
    level = "doc" if all(r.get("label_source") == LabelSource.IMPORTED for r in rows) else "chunk"
    labelled = rows_labelled(rows, level)
    path = Retriever(svc, alias, cite=False).current()
    if path.encode is None:
        raise ValueError(f"collection {path.collection!r} has no query encoder here ({path.encoder_problem})")
    texts = {str(r["chunk_id"]): str(r["positive"]) for r in rows}
    properties = {str(r["chunk_id"]): {"chunk_id": str(r["chunk_id"]), "doc_id": str(r.get("doc_id"))} for r in rows}
    queries = sorted({r["query"] for r in rows})
    keyword: dict[str, list[SearchHit]] = {}
    for query, vector in zip(queries, path.encode(queries), strict=True):
        dense = path.store.vector_search(path.collection, np.asarray(vector).tolist(), k=POOL_DEPTH)
        keyword[query] = path.store.keyword_search(path.collection, query, k=POOL_DEPTH)
        for hit in (*dense, *keyword[query]):
            cid = _chunk_id(hit)
            texts.setdefault(cid, embedding_text_of(hit.properties))
            properties.setdefault(cid, {"chunk_id": cid, "doc_id": str(hit.properties.get("doc_id"))})
    # The pool's hits are keyed by chunk id, whatever id the store gives an object.
    keyword = {q: [SearchHit(_chunk_id(h), h.score, properties[_chunk_id(h)]) for h in hits]
               for q, hits in keyword.items()}
    log.info("served-mode pool: %d passages from %s for %d test queries (%s level)", len(texts),
             path.collection, len(queries), level)
    return ServedPool(labelled, texts, properties, keyword, path)


def _chunk_id(hit: SearchHit) -> str:
    return str(hit.properties.get("chunk_id") or hit.id)


class _PoolStore:
    """A store over the pool: dense from one model's vectors of it, keyword replayed from the live
    collection. Only what ``QueryPath``'s first stage asks of a store."""

    backend = "pool"

    def __init__(self, pool: ServedPool, ids: list[str], matrix: np.ndarray):
        self._pool, self._ids, self._matrix = pool, ids, matrix

    def vector_search(self, name: str, vector: Any, k: int = 10) -> list[SearchHit]:
        import numpy as np

        scores = self._matrix @ np.asarray(vector, dtype=np.float32)
        top = np.argsort(-scores, kind="stable")[:k]
        return [SearchHit(self._ids[i], float(scores[i]), self._pool.properties[self._ids[i]]) for i in top]

    def keyword_search(self, name: str, query: str, k: int = 10) -> list[SearchHit]:
        return self._pool.keyword.get(query, [])[:k]


def served_path(pool: ServedPool, model_path: str) -> QueryPath:
    """The query path one model (a local model folder) serves the pool through: its own vectors of
    the pool, the live keyword lists, the live collection's fusion."""
    import numpy as np

    from ragops.embedding import Embedder
    from ragops.retrieval.path import QueryPath

    embedder = Embedder(model_path)
    ids = list(pool.texts)
    matrix = np.asarray(embedder.encode([pool.texts[i] for i in ids]), dtype=np.float32)
    return QueryPath(_PoolStore(pool, ids, matrix), pool.path.collection,  # type: ignore[arg-type]
                     encode=embedder.encode, fusion=pool.path.fusion)


def served_metrics(pool: ServedPool, model_path: str) -> dict[str, float]:
    """nDCG@10 and MRR@10 of one model (a local model folder) on the pool, through the query path."""
    from ragops.retrieval_eval import metrics_from_run, retrieve_run

    run = retrieve_run(None, "", pool.labelled, SearchMode.HYBRID, None, k=SCORED_K,
                       path=served_path(pool, model_path))
    metrics = metrics_from_run(pool.labelled.qrels, run)
    return {"ndcg@10": metrics["ndcg@10"], "mrr@10": metrics["mrr@10"]}
