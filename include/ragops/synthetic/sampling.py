"""Which chunks get queries: a seeded sample, spread across documents or uniform.

Order comes from seeded hashes of the ids, not from the input order, so the same chunk set and
seed give the same sample however the table was written.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ragops.hashing import hash_object

STRATEGIES = ("stratified", "uniform")
_WORD = re.compile(r"\w+")


def _rank(seed: int, *parts: Any) -> str:
    return hash_object(["sample", seed, *parts])


def sample_chunks(chunks: Sequence[dict[str, Any]], *, size: int, strategy: str = "stratified", seed: int = 0,
                  min_words: int = 8) -> list[dict[str, Any]]:
    """Picks up to ``size`` chunks with at least ``min_words`` words.

    ``stratified``: round robin over documents (each in a seeded order), so every document gets a
    chunk before any gets a second one. ``uniform``: a seeded random sample of all chunks (long
    documents get proportionally more).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"param sample_strategy={strategy!r} is not one of {STRATEGIES}")
    if size < 0:
        raise ValueError(f"param sample_size={size} must be >= 0")
    eligible = [c for c in chunks if len(_WORD.findall(c["text"])) >= min_words]
    if strategy == "uniform":
        return sorted(eligible, key=lambda c: _rank(seed, c["chunk_id"]))[:size]
    by_doc: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in eligible:
        by_doc[chunk["doc_id"]].append(chunk)
    queues = [sorted(by_doc[d], key=lambda c: _rank(seed, c["chunk_id"]))
              for d in sorted(by_doc, key=lambda d: _rank(seed, "doc", d))]
    picked: list[dict[str, Any]] = []
    depth = 0
    while len(picked) < size and any(depth < len(q) for q in queues):
        picked.extend(q[depth] for q in queues if depth < len(q))
        depth += 1
    return picked[:size]
