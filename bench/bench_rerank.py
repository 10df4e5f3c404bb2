"""Two-stage retrieval on SciFact: fusion tuned on dev-train, an LTR reranker trained on dev-train, all scored on dev-eval.

The collection must be indexed first (the CLI, into the settings of the environment)::

    python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact --split dev-eval
    python bench/bench_rerank.py --path ../shared/data/scifact-dev --collection SciFact

What it does, through the DAG's own steps and the one query path:
1. imports ``qrels/dev-train.tsv`` as labels (a dataset version of its own, split by document:
   the held-out slice is what the gate judges on);
2. tunes the hybrid fusion on dev-train's queries and records it with the collection;
3. runs ``rag_train_reranker``'s steps in process (LTR: mine the train split's first stage, train
   LambdaRank, evaluate vs the first stage on the held-out slice, gate);
4. scores dense, keyword, hybrid (default RRF), hybrid (tuned fusion) and hybrid + LTR (the top N
   reranked, the rest in first-stage order) on ``qrels/dev-eval.tsv``: queries no step saw.

Writes ``bench/out/rerank.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def rerank_run(path: Any, labelled: Any, reranker: Any, *, top_n: int, k: int = 100) -> dict[str, dict[str, float]]:
    """Doc-level run: the hybrid first stage's chunks (3k deep), the top ``top_n`` reordered by
    ``reranker``, the rest kept in first-stage order; a document scores its best chunk's rank."""
    from ragops.retrieval.rerank import apply_reranker

    qids = sorted(labelled.queries)
    results = path.search_many([labelled.queries[q] for q in qids], k=3 * k, mode="hybrid", rerank=False,
                               similarity=False, cite=False)
    run: dict[str, dict[str, float]] = {}
    for qid, result in zip(qids, results, strict=True):
        hits = result.hits
        ordered = apply_reranker(reranker, labelled.queries[qid], hits[:top_n]) + hits[top_n:]
        scores: dict[str, float] = {}
        for rank, hit in enumerate(ordered, start=1):
            doc = str(hit.properties.get("doc_id") or hit.chunk_id)
            scores.setdefault(doc, float(len(ordered) + 1 - rank))
        run[qid] = dict(sorted(scores.items(), key=lambda kv: -kv[1])[:k])
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--collection", default="SciFact")
    parser.add_argument("--train-split", default="dev-train")
    parser.add_argument("--eval-split", default="dev-eval")
    parser.add_argument("--top-n", type=int, default=20)
    parser.add_argument("--negative-margin", type=float, default=None, help="default: the DAG's")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "rerank.json"))
    args = parser.parse_args()

    from ragops.cli.common import services
    from ragops.labels import import_labels
    from ragops.models import artifact_model_path
    from ragops.reranking.params import DEFAULT_NEGATIVE_MARGIN, RerankerParams
    from ragops.reranking.pipeline import train_reranker_in_process
    from ragops.reranking.registry import load_reranker
    from ragops.retrieval import DEFAULT_FUSION, Retriever, tune_fusion_report
    from ragops.retrieval.rerank import IdentityReranker
    from ragops.retrieval.retriever import identity_reranker
    from ragops.retrieval_eval import beir_labelled, metrics_from_run, retrieve_run

    svc = services()
    started = time.perf_counter()
    timings: dict[str, float] = {}
    # 1. labels in (dev-train only)
    t0 = time.perf_counter()
    qrels_file = Path(args.path) / "qrels" / f"{args.train_split}.tsv"
    imported = import_labels(svc, str(qrels_file), alias=args.collection, merge_with="none")
    timings["import_labels_s"] = round(time.perf_counter() - t0, 2)
    # 2. fusion tuned on dev-train, recorded with the collection
    t0 = time.perf_counter()
    tuning = tune_fusion_report(svc, args.collection, beir_labelled(args.path, args.train_split),
                                labels=f"beir:{args.train_split}")
    timings["tune_fusion_s"] = round(time.perf_counter() - t0, 2)
    # 3. the DAG's steps: mine, train LTR, evaluate on the held-out slice of dev-train, gate
    t0 = time.perf_counter()
    margin = DEFAULT_NEGATIVE_MARGIN if args.negative_margin is None else args.negative_margin
    params = RerankerParams(alias=args.collection, dataset_version=imported.dataset.version, top_n=args.top_n,
                            negative_margin=margin)
    summary = train_reranker_in_process(svc, params, f"bench-rerank-{int(time.time())}")
    timings["train_reranker_pipeline_s"] = round(time.perf_counter() - t0, 2)
    cand = svc.registry.find_artifact("model", "reranker",
                                      version=int(summary["candidate"]["model_id"].split(":v")[1]))
    ltr = load_reranker(artifact_model_path(cand, svc.artifacts, svc.model_cache), summary["candidate"]["model_id"])

    # 4. everything on dev-eval
    evaluation = beir_labelled(args.path, args.eval_split)
    path = Retriever(svc, args.collection, cite=False, reranker_for=identity_reranker).current()
    t0 = time.perf_counter()
    table: dict[str, dict[str, float]] = {}
    table["dense"] = metrics_from_run(evaluation.qrels, retrieve_run(None, "", evaluation, "dense", None, path=path))
    table["keyword"] = metrics_from_run(evaluation.qrels, retrieve_run(None, "", evaluation, "keyword", None, path=path))
    table[f"hybrid, default fusion ({DEFAULT_FUSION.label})"] = metrics_from_run(
        evaluation.qrels, retrieve_run(None, "", evaluation, "hybrid", None, path=path, fusion=DEFAULT_FUSION))
    table[f"hybrid, tuned fusion ({tuning.chosen.label})"] = metrics_from_run(
        evaluation.qrels, retrieve_run(None, "", evaluation, "hybrid", None, path=path, fusion=tuning.chosen))
    table[f"hybrid tuned, top {args.top_n} reordered by identity (check)"] = metrics_from_run(
        evaluation.qrels, rerank_run(path, evaluation, IdentityReranker(), top_n=args.top_n))
    t1 = time.perf_counter()
    table[f"hybrid tuned + LTR (top {args.top_n})"] = metrics_from_run(
        evaluation.qrels, rerank_run(path, evaluation, ltr, top_n=args.top_n))
    rerank_s = time.perf_counter() - t1
    timings["evaluate_s"] = round(time.perf_counter() - t0, 2)
    # The reranker's own cost per query (features + LightGBM), on the top N of each dev-eval query.
    results = path.search_many(list(evaluation.queries.values()), k=args.top_n, mode="hybrid", similarity=False,
                               cite=False)
    t0 = time.perf_counter()
    for query, result in zip(evaluation.queries.values(), results, strict=True):
        ltr.rerank(query, result.hits)
    per_query_ms = (time.perf_counter() - t0) * 1000 / max(len(results), 1)

    out = {
        "collection": path.collection, "train_split": args.train_split, "eval_split": args.eval_split,
        "eval_queries": len(evaluation.qrels), "top_n": args.top_n, "negative_margin": margin,
        "imported": imported.to_xcom(), "fusion_tuning": {"chosen": tuning.chosen.label, "score": tuning.score,
                                                          "default_score": tuning.default_score,
                                                          "queries": tuning.queries},
        "reranker_run": {k: summary.get(k) for k in ("candidate", "mined", "trained", "decision", "reasons",
                                                     "ndcg@10", "sets")},
        "ltr_rerank_ms_per_query": round(per_query_ms, 3), "ltr_eval_pass_s": round(rerank_s, 2),
        "table": table, "timings": timings, "total_s": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"## {path.collection}: trained on {args.train_split}, scored on {args.eval_split} "
          f"({len(evaluation.qrels)} queries)")
    print("| retrieval | nDCG@10 | MRR@10 | Recall@100 |\n|---|---|---|---|")
    for name, m in table.items():
        print(f"| {name} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} |")
    print(f"gate on the held-out slice of {args.train_split}: {summary['decision']}: {summary['reasons']}")
    print(f"LTR rerank of the top {args.top_n}: {per_query_ms:.2f} ms/query; timings {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
