"""Train/test split by document: no document has queries on both sides.

A document's side is decided by a seeded hash of its id, not by its position in this run's
list, so a document stays on the same side as the dataset grows across versions (a model
fine-tuned on version N is never tested on its own training documents in version N+1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragops.hashing import hash_object


def test_side_score(doc_id: str, seed: int) -> float:
    """A uniform number in [0, 1) per (seed, document)."""
    return int(hash_object(["split", seed, doc_id])[:13], 16) / 16**13


def split_by_document(records: Sequence[dict[str, Any]], *, test_ratio: float = 0.2, seed: int = 0
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Returns (train, test). With two or more documents and 0 < ratio < 1, neither side is left
    empty: the document nearest the threshold moves over."""
    if not 0.0 <= test_ratio <= 1.0:
        raise ValueError(f"param test_ratio={test_ratio} must lie between 0 and 1")
    docs = sorted({r["doc_id"] for r in records})
    score = {d: test_side_score(d, seed) for d in docs}
    test_docs = {d for d in docs if score[d] < test_ratio}
    if len(docs) >= 2 and 0.0 < test_ratio < 1.0:
        if not test_docs:
            test_docs = {min(docs, key=lambda d: (score[d], d))}
        elif len(test_docs) == len(docs):
            test_docs.discard(max(docs, key=lambda d: (score[d], d)))
    train = [r for r in records if r["doc_id"] not in test_docs]
    test = [r for r in records if r["doc_id"] in test_docs]
    return train, test
