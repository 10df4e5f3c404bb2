"""Retrieval quality of a collection against labelled queries (BEIR qrels or golden queries).

Metrics come from pytrec_eval (the trec_eval implementation BEIR itself uses): nDCG@10, MRR@10
and Recall@100. Collections hold chunks; BEIR judges documents, so a document scores the best
score of its chunks (max-pooling, the usual passage-to-document aggregation).

Queries run through the query path the service serves (``ragops.retrieval.QueryPath``): the same
first stage, fusion and reranker, so what is measured is what is served.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ragops.hashing import sha256_text
from ragops.sources.core import normalized_id

if TYPE_CHECKING:
    from ragops.stores import VectorStore

log = logging.getLogger(__name__)

MODES = ("dense", "keyword", "hybrid")
Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]


@dataclass
class LabelledQueries:
    queries: dict[str, str]   # query id -> text
    qrels: Qrels              # query id -> {doc or chunk id -> relevance}
    level: str = "doc"        # "doc": ids are doc_ids; "chunk": ids are chunk_ids

    def __post_init__(self) -> None:
        missing = [q for q in self.qrels if q not in self.queries]
        if missing:
            raise ValueError(f"qrels name {len(missing)} queries with no text, e.g. {missing[:3]}")
        self.queries = {q: t for q, t in self.queries.items() if q in self.qrels}


def metrics_from_run(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean nDCG@10, MRR@10 and Recall@100 over the judged queries (unretrieved queries score 0)."""
    import pytrec_eval

    judged = {q: {d: int(r) for d, r in rels.items()} for q, rels in qrels.items() if any(r > 0 for r in rels.values())}
    if not judged:
        raise ValueError("no query has a relevant judgement: nothing to evaluate")
    full = {q: run.get(q) or {"__none__": 0.0} for q in judged}
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in full.items()}
    deep = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", "recall.100"}).evaluate(full)
    shallow = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    n = len(judged)
    return {
        "ndcg@10": round(sum(v["ndcg_cut_10"] for v in deep.values()) / n, 4),
        "mrr@10": round(sum(v["recip_rank"] for v in shallow.values()) / n, 4),
        "recall@100": round(sum(v["recall_100"] for v in deep.values()) / n, 4),
        "queries": n,
    }


def aggregate_hits(hits: Sequence[Any], level: str) -> dict[str, float]:
    """Chunk hits -> scores per judged id (max over a document's chunks)."""
    key = "doc_id" if level == "doc" else "chunk_id"
    scores: dict[str, float] = {}
    for hit in hits:
        ident = str(hit.properties.get(key) or hit.id)
        scores[ident] = max(scores.get(ident, float("-inf")), float(hit.score))
    return scores


def retrieve_run(store: VectorStore, collection: str, labelled: LabelledQueries, mode: str,
                 encode: Callable[[list[str]], np.ndarray] | None, k: int = 100, *, fusion: Any = None,
                 path: Any = None, rerank: bool = False) -> Run:
    """Queries a collection (or alias) for every labelled query with one retrieval mode, through the
    query path (``path``: a ``QueryPath`` or live ``Retriever`` to use as it is; else one is made
    for ``collection`` with ``encode`` and ``fusion``, default: the stores' RRF)."""
    from ragops.retrieval import QueryPath

    if mode not in MODES:
        raise ValueError(f"retrieval mode {mode!r} is not one of {MODES}")
    if path is None and mode != "keyword" and encode is None:
        raise ValueError(f"retrieval mode {mode!r} needs a query encoder")
    if path is None:
        path = QueryPath(store, collection, encode=encode, **({"fusion": fusion} if fusion is not None else {}))
    qids = sorted(labelled.queries)
    texts = [labelled.queries[q] for q in qids]
    # Fetch more chunks than documents asked for: several chunks may belong to one document.
    depth = k * 3 if labelled.level == "doc" else k
    results = path.search_many(texts, k=depth, mode=mode, rerank=rerank, similarity=False, cite=False,
                               fusion=fusion)
    return {qid: dict(sorted(aggregate_hits(result.hits, labelled.level).items(), key=lambda kv: -kv[1])[:k])
            for qid, result in zip(qids, results, strict=True)}


def evaluate_collection(store: VectorStore, collection: str, labelled: LabelledQueries,
                        encode: Callable[[list[str]], np.ndarray] | None,
                        modes: Sequence[str] = MODES, *, fusion: Any = None) -> dict[str, dict[str, float]]:
    return {mode: metrics_from_run(labelled.qrels, retrieve_run(store, collection, labelled, mode, encode,
                                                                fusion=fusion))
            for mode in modes}


def evaluate_path(path: Any, labelled: LabelledQueries, modes: Sequence[str] = MODES, *, rerank: bool = False,
                  fusion: Any = None) -> dict[str, dict[str, float]]:
    """Metrics of a query path as it serves: a ``Retriever`` (the live alias: its model, the
    collection's recorded fusion, its reranker) or a ``QueryPath``."""
    return {mode: metrics_from_run(labelled.qrels, retrieve_run(None, "", labelled, mode, None, path=path,
                                                                rerank=rerank, fusion=fusion))
            for mode in modes}


def load_golden_queries(path: str | Path) -> LabelledQueries:
    """Golden queries: JSONL lines ``{"query": ..., "doc_id": ...}`` or ``{"query": ..., "chunk_id": ...}``
    (several lines may share a query; ``relevance`` defaults to 1)."""
    path = Path(path)
    queries: dict[str, str] = {}
    qrels: Qrels = {}
    levels = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"golden queries {path}:{lineno}"
        # Every field is read inside the try, so any bad value is reported with its file and line.
        try:
            row = json.loads(line)
            text = str(row["query"]).strip()
            level = "chunk" if "chunk_id" in row else "doc"
            target = normalized_id(str(row["chunk_id"] if level == "chunk" else row["doc_id"]))
            relevance = _relevance(row.get("relevance", 1))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{where}: expected {{query, doc_id|chunk_id[, relevance: int]}}: "
                             f"{type(exc).__name__}: {exc}") from None
        if not text:
            raise ValueError(f"{where}: the query is empty")
        levels.add(level)
        qid = str(row.get("id") or f"g{sha256_text(text)[:12]}")
        queries[qid] = text
        qrels.setdefault(qid, {})[target] = relevance
    if len(levels) > 1:
        raise ValueError(f"golden queries {path}: mixes doc_id and chunk_id targets")
    if not qrels:
        raise ValueError(f"golden queries {path}: no queries")
    return LabelledQueries(queries, qrels, levels.pop())


def _relevance(value: Any) -> int:
    """A relevance grade: an integer, or a string of one (TREC qrels are integers; 1.5 or true is a mistake)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TypeError(f"relevance {value!r} is not an integer")
    return int(value)


def beir_labelled(folder: str | Path, split: str) -> LabelledQueries:
    from ragops.sources import load_beir_qrels, load_beir_queries

    qrels = load_beir_qrels(folder, split)
    return LabelledQueries(load_beir_queries(folder), qrels, "doc")


def summarize(metrics: Mapping[str, Mapping[str, float]]) -> str:
    lines = ["| mode | nDCG@10 | MRR@10 | Recall@100 |", "|---|---|---|---|"]
    for mode, m in metrics.items():
        lines.append(f"| {mode} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} |")
    return "\n".join(lines)
