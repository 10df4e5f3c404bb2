"""Training candidates from the live collection's first stage, as the rerank stage will see them.

For each training query (a query of the dataset's train split with its positive chunks), the
first stage's top N through the query path (the collection's own model and fusion) are labelled:
- a positive chunk: 1;
- another chunk of a positive's document: left out (neither positive nor negative: the commonest
  false negative is a neighbouring chunk of the same page);
- any other candidate: a hard negative (0), unless its dense score lies above ``(1 - margin)`` x the
  best positive's: then it is dropped as a likely false negative, as sentence-transformers'
  ``mine_hard_negatives`` does with its ``relative_margin``.

Each candidate keeps its first-stage features (computed over the whole candidate list, as at
serving time). Queries whose positive the first stage missed teach a reranker nothing about
reordering; they are counted, and only the cross-encoder's pairs keep their positives.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ragops.hashing import hash_object
from ragops.reranking.cross_encoder import passage_of
from ragops.reranking.features import FEATURES, feature_matrix
from ragops.retrieval.rerank import IdentityReranker

if TYPE_CHECKING:
    from ragops.retrieval.path import QueryPath
    from ragops.services import Services

log = logging.getLogger(__name__)

BATCH = 128
FETCH_BATCH = 512


@dataclass
class QueryGroup:
    query: str
    positives: set[str] = field(default_factory=set)          # chunk ids
    positive_docs: set[str] = field(default_factory=set)
    positive_texts: dict[str, str] = field(default_factory=dict)
    label_source: str = ""

    @property
    def qid(self) -> str:
        return "q" + hash_object(["query", self.query])[:16]


def query_groups(rows: Sequence[Mapping[str, Any]], *, max_queries: int | None = None, seed: int = 0
                 ) -> list[QueryGroup]:
    """Dataset rows grouped by query (a query with several positives is one group); with
    ``max_queries``, a seeded sample of them (the same sample for the same rows)."""
    groups: dict[str, QueryGroup] = {}
    for row in rows:
        if not row.get("query") or not row.get("chunk_id"):
            continue
        g = groups.setdefault(row["query"], QueryGroup(row["query"], label_source=str(row.get("label_source") or "")))
        g.positives.add(str(row["chunk_id"]))
        g.positive_docs.add(str(row.get("doc_id") or ""))
        g.positive_texts[str(row["chunk_id"])] = str(row.get("positive") or "")
    out = sorted(groups.values(), key=lambda g: g.query)
    if max_queries is not None and len(out) > max_queries:
        out = sorted(out, key=lambda g: hash_object(["sample", seed, g.query]))[:max_queries]
        out.sort(key=lambda g: g.query)
    return out


def live_path(svc: Services, name: str) -> QueryPath:
    """The query path of ``name`` (an alias or a collection version) without a reranker."""
    from ragops.retrieval import Retriever

    return Retriever(svc, name, cite=False, reranker_for=lambda s, v: IdentityReranker()).current()


def _vectors(path: QueryPath, ids: Sequence[str]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), FETCH_BATCH):
        for obj in path.store.fetch(path.collection, ids[start:start + FETCH_BATCH], include_vectors=True):
            if obj.vector is not None:
                out[obj.id] = np.asarray(obj.vector, dtype=np.float32)
    return out


@dataclass
class Mined:
    rows: list[dict[str, Any]]            # LTR candidates: qid, query, chunk_id, doc_id, label, rank, f_<feature>
    pairs: list[dict[str, Any]]           # cross-encoder: query, passage, label
    stats: Counter[str]


def mine(path: QueryPath, groups: Sequence[QueryGroup], *, mode: str, top_n: int, negative_margin: float | None,
         negatives_per_query: int = 5) -> Mined:
    """Labels each query's first-stage top ``top_n`` (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    pairs: list[dict[str, Any]] = []
    stats: Counter[str] = Counter()
    for start in range(0, len(groups), BATCH):
        batch = list(groups[start:start + BATCH])
        texts = [g.query for g in batch]
        results = path.search_many(texts, k=top_n, mode=mode, rerank=False, similarity=False, cite=False)
        qvecs = np.asarray(path.encode(texts), dtype=np.float32) if path.encode is not None else None
        vectors = _vectors(path, [h.chunk_id for r in results for h in r.hits] + [c for g in batch for c in g.positives])
        for g, result, qi in zip(batch, results, range(len(batch)), strict=True):
            hits = result.hits

            def sim(chunk_id: str, qi: int = qi, vectors: dict = vectors, qvecs: Any = qvecs) -> float | None:
                vec = vectors.get(chunk_id)
                return None if vec is None or qvecs is None else float(np.dot(vec, qvecs[qi]))

            pos_sims = [s for c in g.positives if (s := sim(c)) is not None]
            pos_sim = max(pos_sims) if pos_sims else None
            found = any(h.chunk_id in g.positives for h in hits)
            stats["queries"] += 1
            if not found:
                stats["missed"] += 1
            feats = feature_matrix(g.query, hits) if found else None
            negatives = []
            for i, hit in enumerate(hits):
                if hit.chunk_id in g.positives:
                    label = 1
                elif str(hit.properties.get("doc_id") or hit.citation.doc_id) in g.positive_docs:
                    stats["same_document"] += 1
                    continue
                else:
                    s = sim(hit.chunk_id)
                    if negative_margin is not None and pos_sim is not None and s is not None \
                            and s > pos_sim * (1.0 - negative_margin):
                        stats["false_negatives"] += 1
                        continue
                    label = 0
                    negatives.append(hit)
                stats["positives" if label else "negatives"] += 1
                if feats is not None:
                    rows.append({"qid": g.qid, "query": g.query, "chunk_id": hit.chunk_id,
                                 "doc_id": str(hit.properties.get("doc_id") or ""), "label": label, "rank": i + 1,
                                 **{f"f_{name}": float(feats[i, j]) for j, name in enumerate(FEATURES)}})
            for _cid, text in sorted(g.positive_texts.items()):
                if text:
                    pairs.append({"query": g.query, "passage": text, "label": 1.0})
            for hit in negatives[:negatives_per_query]:
                pairs.append({"query": g.query, "passage": passage_of(hit), "label": 0.0})
    stats["ltr_queries"] = len({r["qid"] for r in rows})
    log.info("mined %d queries (top %d, %s): %s", stats["queries"], top_n, mode, dict(stats))
    return Mined(rows, pairs, stats)


def ltr_groups(rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, list[int], list[int]]:
    """Features, labels and group sizes of the mined rows, for LambdaRank: queries in order, each
    with at least one positive and one negative (a group of one label teaches nothing)."""
    by_query: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_query.setdefault(row["qid"], []).append(row)
    features: list[list[float]] = []
    labels: list[int] = []
    groups: list[int] = []
    for qid in sorted(by_query):
        group = sorted(by_query[qid], key=lambda r: r["rank"])
        if len({int(r["label"]) for r in group}) < 2:
            continue
        groups.append(len(group))
        for r in group:
            features.append([float(r[f"f_{name}"]) for name in FEATURES])
            labels.append(int(r["label"]))
    return np.asarray(features, dtype=np.float32).reshape(-1, len(FEATURES)), labels, groups
