"""Retrieval metrics of one set: nDCG@10, MRR@10 and Recall@k, overall and per source.

The set's means come from ``retrieval_eval.metrics_from_run`` (pytrec_eval, as the gates measure);
the per-query values behind the per-source breakdown come from the same evaluator, so a source's
numbers are the mean over the queries whose relevant documents come from that source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
UNKNOWN_SOURCE = "unknown"


def recall_key(k: int) -> str:
    return f"recall@{k}"


def per_query(qrels: Qrels, run: Run, k: int) -> dict[str, dict[str, float]]:
    """``{qid: {"ndcg@10", "mrr@10", "recall@k"}}`` for every judged query (unretrieved: 0)."""
    import pytrec_eval

    judged = {q: {d: int(r) for d, r in rels.items()} for q, rels in qrels.items() if any(r > 0 for r in rels.values())}
    full = {q: run.get(q) or {"__none__": 0.0} for q in judged}
    top10 = {q: dict(sorted(docs.items(), key=lambda kv: -kv[1])[:10]) for q, docs in full.items()}
    deep = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10", f"recall.{k}"}).evaluate(full)
    shallow = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    return {q: {"ndcg@10": deep[q]["ndcg_cut_10"], "mrr@10": shallow[q]["recip_rank"],
                recall_key(k): deep[q][f"recall_{k}"]} for q in judged}


def mean_of(values: list[dict[str, float]]) -> dict[str, float]:
    names = values[0].keys() if values else ()
    return {m: round(sum(v[m] for v in values) / len(values), 4) for m in names}


def query_source(rels: Mapping[str, int], source_of: Callable[[str], str | None]) -> str:
    """A query's source: that of its relevant ids (the first, sorted, that the collection knows)."""
    for ident in sorted(i for i, r in rels.items() if r > 0):
        source = source_of(ident)
        if source:
            return source
    return UNKNOWN_SOURCE


def set_metrics(qrels: Qrels, run: Run, k: int, source_of: Callable[[str], str | None]) -> dict[str, Any]:
    """The set's metrics as the evaluation artifact records them:
    ``{"ndcg@10", "mrr@10", "recall@<k>", "queries", "by_source": {source: {... "queries"}}}``."""
    from ragops.retrieval_eval import metrics_from_run

    overall = metrics_from_run(qrels, run)
    values = per_query(qrels, run, k)
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for qid, scores in values.items():
        groups[query_source(qrels[qid], source_of)].append(scores)
    by_source = {s: {**mean_of(v), "queries": len(v)} for s, v in sorted(groups.items())}
    return {"ndcg@10": overall["ndcg@10"], "mrr@10": overall["mrr@10"], recall_key(k): mean_of(list(values.values()))[
        recall_key(k)], "queries": overall["queries"], "by_source": by_source}


def source_lookup(chunk_rows: Mapping[str, Mapping[str, Any]]) -> Callable[[str], str | None]:
    """An id's source: a chunk's or document's own (from the collection's chunk set), else the
    prefix of a ``source:path`` document id (a document the collection no longer holds)."""
    sources: dict[str, str] = {}
    for chunk_id, row in chunk_rows.items():
        source = str(row.get("source") or "")
        if source:
            sources[str(chunk_id)] = source
            sources.setdefault(str(row.get("doc_id")), source)

    def source_of(ident: str) -> str | None:
        return sources.get(ident) or (ident.split(":", 1)[0] if ":" in ident else None)

    return source_of
