"""Query filters, each counted: what was dropped and why goes into the dataset's lineage.

Order: empty -> too short -> too long -> copies the positive -> near-duplicate -> (optional)
round trip. Near-duplicates are found exactly (token-set Jaccard) with prefix filtering, so the
check stays fast on tens of thousands of queries.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragops.embedding import Embedder
    from ragops.stores import VectorStore

_WORD = re.compile(r"\w+")

FILTER_NAMES = ("empty", "too_short", "too_long", "copies_passage", "near_duplicate", "round_trip")


@dataclass
class FilterConfig:
    min_words: int = 3
    max_words: int = 64
    copy_ngram: int = 4                 # a query whose word 4-grams all (nearly) occur in the passage is a copy
    copy_ngram_overlap: float = 0.8
    near_duplicate_jaccard: float = 0.9

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    return " ".join(tokens(text))


def copies_passage(query: str, passage: str, n: int = 4, overlap: float = 0.8) -> bool:
    """True when the query is (almost) lifted from the passage: its normalised text is a substring,
    or nearly all its word n-grams occur there. Shared single words are fine: a good question
    reuses the passage's vocabulary."""
    q, p = normalise(query), normalise(passage)
    if not q:
        return False
    if f" {q} " in f" {p} ":
        return True
    q_tokens, p_tokens = q.split(), p.split()
    if len(q_tokens) < n:
        return False
    q_grams = [tuple(q_tokens[i:i + n]) for i in range(len(q_tokens) - n + 1)]
    p_grams = {tuple(p_tokens[i:i + n]) for i in range(len(p_tokens) - n + 1)}
    return sum(g in p_grams for g in q_grams) / len(q_grams) >= overlap


def near_duplicate_mask(queries: Sequence[str], threshold: float = 0.9) -> list[bool]:
    """``True`` for each query that duplicates an earlier one (same normalised text, or token-set
    Jaccard >= threshold). Exact, using prefix filtering: two sets with Jaccard >= t share a token
    among the first |s| - ceil(t*|s|) + 1 tokens of each, taken in one global (rarest first) order."""
    sets = [frozenset(tokens(q)) for q in queries]
    freq = Counter(t for s in sets for t in s)
    index: dict[str, list[int]] = defaultdict(list)
    seen_norm: set[str] = set()
    duplicate = [False] * len(queries)
    for i, s in enumerate(sets):
        norm = normalise(queries[i])
        if norm in seen_norm:
            duplicate[i] = True
            continue
        ordered = sorted(s, key=lambda t: (freq[t], t))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1] if ordered else []
        candidates = {j for t in prefix for j in index[t]}
        if any(len(s & sets[j]) / len(s | sets[j]) >= threshold for j in candidates):
            duplicate[i] = True
            continue
        seen_norm.add(norm)
        for t in prefix:
            index[t].append(i)
    return duplicate


def apply_filters(records: Sequence[dict[str, Any]], config: FilterConfig | None = None
                  ) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Keeps the records that pass every text filter; returns them (order kept) and the counts
    dropped per filter. Each record needs ``query`` and ``positive``."""
    config = config or FilterConfig()
    counts = dict.fromkeys(FILTER_NAMES, 0)
    survivors: list[dict[str, Any]] = []
    for record in records:
        query = (record.get("query") or "").strip()
        n_words = len(tokens(query))
        if n_words == 0:
            counts["empty"] += 1
        elif n_words < config.min_words:
            counts["too_short"] += 1
        elif n_words > config.max_words:
            counts["too_long"] += 1
        elif copies_passage(query, record.get("positive") or "", config.copy_ngram, config.copy_ngram_overlap):
            counts["copies_passage"] += 1
        else:
            survivors.append({**record, "query": query})
    duplicate = near_duplicate_mask([r["query"] for r in survivors], config.near_duplicate_jaccard)
    counts["near_duplicate"] = sum(duplicate)
    kept = [r for r, dup in zip(survivors, duplicate) if not dup]
    return kept, counts


Retriever = Callable[[Sequence[str], int], list[list[str]]]


def round_trip_filter(records: Sequence[dict[str, Any]], retrieve: Retriever, k: int = 5
                      ) -> tuple[list[dict[str, Any]], int]:
    """Keeps a query only if it retrieves its own chunk in the top ``k``. ``retrieve(queries, k)``
    returns the chunk ids found for each query. Returns the kept records and the count dropped."""
    if not records:
        return [], 0
    found = retrieve([r["query"] for r in records], k)
    kept = [r for r, ids in zip(records, found) if r["chunk_id"] in ids[:k]]
    return kept, len(records) - len(kept)


def local_retriever(embedder: Embedder, chunks: Sequence[dict[str, Any]]) -> Retriever:
    """Exact cosine search over the given chunk rows (e.g. the sampled chunks) with the embedder."""
    import numpy as np

    from ragops.documents import embedding_text_of

    ids = [c["chunk_id"] for c in chunks]
    matrix = embedder.encode([embedding_text_of(c) for c in chunks])

    def retrieve(queries: Sequence[str], k: int) -> list[list[str]]:
        scores = embedder.encode(list(queries)) @ matrix.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[ids[j] for j in row] for row in top]

    return retrieve


def store_retriever(embedder: Embedder, store: VectorStore, collection: str) -> Retriever:
    """Search in a live collection (alias or name) of a ``VectorStore``."""

    def retrieve(queries: Sequence[str], k: int) -> list[list[str]]:
        vectors = embedder.encode(list(queries))
        return [[hit.properties.get("chunk_id") or hit.id for hit in store.vector_search(collection, vec.tolist(), k)]
                for vec in vectors]

    return retrieve
