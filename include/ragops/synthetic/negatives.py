"""Hard negatives: passages the current embedding model ranks high for a query, from OTHER documents.

Excluding the positive's whole document (not just its chunk) avoids the commonest false
negative: a neighbouring chunk of the same page that also answers the query. ``skip_top`` can
skip the very first foreign hits too when the corpus has many near-copies across documents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ragops.documents import embedding_text_of

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.stores import VectorStore

# search(vectors, k) -> for each vector, candidate rows (chunk_id, doc_id, heading_path, text), best first
Searcher = Callable[[Any, int], list[list[dict[str, Any]]]]


def mine_hard_negatives(records: Sequence[dict[str, Any]], embedder: Embedder, search: Searcher, *, k: int = 10,
                        skip_top: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Adds ``negative`` (and ``negative_chunk_id``) to each record; ``None`` where no foreign hit
    was found in the top ``k``. Returns the records and how many got a negative."""
    if not records:
        return [], 0
    vectors = embedder.encode([r["query"] for r in records])
    found = search(vectors, k)
    out, mined = [], 0
    for record, hits in zip(records, found):
        foreign = [h for h in hits if h.get("doc_id") != record["doc_id"]][skip_top:]
        hit = foreign[0] if foreign else None
        if hit is not None:
            mined += 1
        out.append({**record, "negative": embedding_text_of(hit) if hit else None,
                    "negative_chunk_id": hit.get("chunk_id") if hit else None})
    return out, mined


def local_searcher(embedder: Embedder, chunks: Sequence[dict[str, Any]]) -> Searcher:
    import numpy as np

    matrix = embedder.encode([embedding_text_of(c) for c in chunks])

    def search(vectors: Any, k: int) -> list[list[dict[str, Any]]]:
        top = np.argsort(-(vectors @ matrix.T), axis=1, kind="stable")[:, :k]
        return [[chunks[j] for j in row] for row in top]

    return search


def store_searcher(store: VectorStore, collection: str) -> Searcher:
    """Candidates from a live collection (alias or name); hit properties carry the chunk columns."""

    def search(vectors: Any, k: int) -> list[list[dict[str, Any]]]:
        return [[{**hit.properties, "chunk_id": hit.properties.get("chunk_id") or hit.id}
                 for hit in store.vector_search(collection, vec.tolist(), k)] for vec in vectors]

    return search
