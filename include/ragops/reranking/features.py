"""First-stage features of a candidate list: what a learning-to-rank reranker sees of each hit.

Every feature comes from the hit as the query path hands it to the rerank stage (its scores per
list, its rank, its properties), so a model sees at serving time exactly what it was trained on.
A score a list did not give (a keyword-only hit has no dense score in a hybrid search) is NaN:
LightGBM treats it as missing, it is never imputed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

FEATURES = (
    "dense", "keyword", "fused",                 # the first stage's scores per list
    "rank", "inv_rank",                          # the first stage's (fused) rank among the candidates
    "dense_rank", "keyword_rank",                # rank within each list's scored candidates
    "dense_gap", "keyword_ratio",                # distance to the list's best dense score; BM25 / best BM25
    "title_overlap", "heading_overlap", "text_overlap",   # share of query terms in the title, heading path, text
    "position", "log_length",                    # the chunk's index in its document; log of its word count
)
_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(["a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "i",
                   "in", "is", "it", "of", "on", "or", "that", "the", "this", "to", "was", "what", "when", "where",
                   "which", "who", "why", "with"])


def terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOP}


def _overlap(query_terms: set[str], text: str) -> float:
    return len(query_terms & terms(text)) / len(query_terms) if query_terms else 0.0


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based rank of each value, best (largest) first; NaN stays NaN."""
    present = sorted((v, i) for i, v in enumerate(values) if not math.isnan(v))
    out = [math.nan] * len(values)
    for r, (_, i) in enumerate(sorted(present, key=lambda p: (-p[0], p[1])), start=1):
        out[i] = float(r)
    return out


def feature_matrix(query: str, hits: Sequence[Any]) -> np.ndarray:
    """One row per hit, one column per ``FEATURES`` name (float32; NaN for a missing score)."""
    n = len(hits)
    if n == 0:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    q = terms(query)
    nan = math.nan
    dense = [float(h.scores.get("dense", nan)) for h in hits]
    keyword = [float(h.scores.get("keyword", nan)) for h in hits]
    fused = [float(h.scores.get("fused", nan)) for h in hits]
    dense_rank, keyword_rank = _ranks(dense), _ranks(keyword)
    best_dense = max((d for d in dense if not math.isnan(d)), default=nan)
    best_keyword = max((k for k in keyword if not math.isnan(k)), default=nan)
    rows = []
    for i, hit in enumerate(hits):
        props = hit.properties or {}
        title = str(props.get("title") or getattr(hit, "title", "") or "")
        heading = str(props.get("heading_path") or "")
        text = str(props.get("text") or getattr(hit, "text", "") or "")
        position = props.get("position")
        rank = float(getattr(hit, "rank", i + 1) or i + 1)
        rows.append([
            dense[i], keyword[i], fused[i], rank, 1.0 / rank, dense_rank[i], keyword_rank[i],
            best_dense - dense[i],
            keyword[i] / best_keyword if best_keyword and not math.isnan(best_keyword) else nan,
            _overlap(q, title), _overlap(q, heading), _overlap(q, text),
            float(position) if position is not None else nan, math.log1p(len(text.split())),
        ])
    return np.asarray(rows, dtype=np.float32)
