"""Hard negatives: passages the current embedding model ranks high for a query, from OTHER documents.

Excluding the positive's whole document (not just its chunk) avoids the commonest false
negative: a neighbouring chunk of the same page that also answers the query. ``skip_top`` can
skip the very first foreign hits too when the corpus has many near-copies across documents.
Labelled queries exclude every document labelled relevant to them, and may skip any candidate
scoring within ``relative_margin`` of the positive's own score (sentence-transformers'
``mine_hard_negatives``' rule): such a passage is more likely an unlabelled answer than a negative.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ragops.documents import embedding_text_of

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.stores import VectorStore

# search(vectors, k) -> for each vector, candidate rows (chunk_id, doc_id, heading_path, text, score: cosine),
# best first
Searcher = Callable[[Any, int], list[list[dict[str, Any]]]]


def mine_hard_negatives(records: Sequence[dict[str, Any]], embedder: Embedder, search: Searcher, *, k: int = 10,
                        skip_top: int = 0, relative_margin: float | None = None,
                        positive_vectors: Mapping[str, Any] | None = None,
                        excluded: Callable[[dict[str, Any]], set[str]] | None = None
                        ) -> tuple[list[dict[str, Any]], int]:
    """Adds ``negative`` (and ``negative_chunk_id``) to each record; ``None`` where no foreign hit
    was found in the top ``k``. Returns the records and how many got a negative.

    ``excluded(record)``: more documents never taken as its negative (say, the other documents
    labelled relevant to its query). ``relative_margin``: a hit scoring above ``(1 - margin)`` x
    the query's similarity to its positive is skipped; ``positive_vectors`` (chunk id -> stored
    vector) spares encoding the positives the collection already holds (the rest are encoded)."""
    if not records:
        return [], 0
    import numpy as np

    vectors = np.asarray(embedder.encode([r["query"] for r in records]), dtype=np.float32)
    ceilings: list[float | None] = [None] * len(records)
    if relative_margin is not None:
        known = positive_vectors or {}
        missing = [i for i, r in enumerate(records) if r.get("chunk_id") not in known]
        encoded = dict(zip(missing, embedder.encode([records[i]["positive"] for i in missing]))) if missing else {}
        positives = np.stack([np.asarray(encoded[i] if i in encoded else known[r["chunk_id"]], dtype=np.float32)
                              for i, r in enumerate(records)])
        similarity = np.sum(_unit(vectors) * _unit(positives), axis=1)
        ceilings = [float(s) * (1.0 - relative_margin) for s in similarity]
    found = search(vectors, k)
    out, mined = [], 0
    for record, hits, ceiling in zip(records, found, ceilings):
        others = {record["doc_id"], *(excluded(record) if excluded else ())}
        foreign = [h for h in hits if h.get("doc_id") not in others][skip_top:]
        if ceiling is not None:
            foreign = [h for h in foreign if h.get("score") is None or h["score"] <= ceiling]
        hit = foreign[0] if foreign else None
        if hit is not None:
            mined += 1
        out.append({**record, "negative": embedding_text_of(hit) if hit else None,
                    "negative_chunk_id": hit.get("chunk_id") if hit else None})
    return out, mined


def _unit(matrix: Any) -> Any:
    import numpy as np

    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def local_searcher(embedder: Embedder, chunks: Sequence[dict[str, Any]]) -> Searcher:
    import numpy as np

    matrix = embedder.encode([embedding_text_of(c) for c in chunks])

    def search(vectors: Any, k: int) -> list[list[dict[str, Any]]]:
        scores = vectors @ matrix.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[{**chunks[j], "score": float(scores[i, j])} for j in row] for i, row in enumerate(top)]

    return search


def store_searcher(store: VectorStore, collection: str) -> Searcher:
    """Candidates from a live collection (alias or name); hit properties carry the chunk columns."""

    def search(vectors: Any, k: int) -> list[list[dict[str, Any]]]:
        return [[{**hit.properties, "chunk_id": hit.properties.get("chunk_id") or hit.id, "score": hit.score}
                 for hit in store.vector_search(collection, vec.tolist(), k)] for vec in vectors]

    return search
