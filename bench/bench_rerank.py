"""Two-stage retrieval on SciFact: fusion tuned on dev-train, LTR and cross-encoder rerankers trained on dev-train, all scored on dev-eval.

The collection must be indexed first (the CLI, into the settings of the environment)::

    python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact --split dev-eval
    python bench/bench_rerank.py --path ../shared/data/scifact-dev --collection SciFact
    python bench/bench_rerank.py --kinds ltr                      # the LTR reranker only
    python bench/bench_rerank.py --ce-max-steps 200               # the cross-encoder capped at 200 steps

What it does, through the DAG's own steps and the one query path:
1. imports ``qrels/dev-train.tsv`` as labels (a dataset version of its own, split by document:
   the held-out slice is what the gate judges on);
2. tunes the hybrid fusion on dev-train's queries and records it with the collection;
3. runs ``rag_train_reranker``'s steps in process for each of ``--kinds`` (LTR: mine the train
   split's first stage, train LambdaRank; cross-encoder: mine hard negatives, train the MiniLM
   cross-encoder in a local process, at most ``--ce-max-steps`` steps; each evaluated vs the first
   stage on the held-out slice and gated);
4. scores dense, keyword, hybrid (default RRF), hybrid (tuned fusion), hybrid + cross-encoder and
   hybrid + LTR (the top N reranked, the rest in first-stage order) on ``qrels/dev-eval.tsv``:
   queries no step saw.

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


def rerank_run(path: Any, labelled: Any, reranker: Any, *, top_n: int, k: int = 100,
               spent_ms: list[float] | None = None) -> dict[str, dict[str, float]]:
    """Doc-level run: the hybrid first stage's chunks (3k deep), the top ``top_n`` reordered by
    ``reranker``, the rest kept in first-stage order; a document scores its best chunk's rank.
    ``spent_ms`` collects the reranker's own time per query."""
    from ragops.retrieval.rerank import apply_reranker

    qids = sorted(labelled.queries)
    results = path.search_many([labelled.queries[q] for q in qids], k=3 * k, mode="hybrid", rerank=False,
                               similarity=False, cite=False)
    run: dict[str, dict[str, float]] = {}
    for qid, result in zip(qids, results, strict=True):
        hits = result.hits
        t0 = time.perf_counter()
        ordered = apply_reranker(reranker, labelled.queries[qid], hits[:top_n]) + hits[top_n:]
        if spent_ms is not None:
            spent_ms.append((time.perf_counter() - t0) * 1000)
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
    parser.add_argument("--kinds", default="ltr,cross-encoder", help="rerankers to train and score")
    parser.add_argument("--ce-max-steps", type=int, default=-1,
                        help="cross-encoder: stop after this many steps (-1: the DAG's epochs)")
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
    from ragops.vocabulary import Compute, RerankerKind

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
    # 3. the DAG's steps per kind: mine, train, evaluate on the held-out slice of dev-train, gate
    margin = DEFAULT_NEGATIVE_MARGIN if args.negative_margin is None else args.negative_margin
    trained: dict[str, tuple[dict[str, Any], Any]] = {}   # kind -> (run summary, reranker)
    for kind in (RerankerKind(k) for k in args.kinds.split(",")):
        t0 = time.perf_counter()
        params = RerankerParams(kind=kind, alias=args.collection, dataset_version=imported.dataset.version,
                                top_n=args.top_n, negative_margin=margin, max_steps=args.ce_max_steps,
                                compute=Compute.LOCAL if kind == RerankerKind.CROSS_ENCODER else None)
        summary = train_reranker_in_process(svc, params, f"bench-rerank-{kind.value}-{int(time.time())}")
        timings[f"train_reranker_pipeline_{kind.value}_s"] = round(time.perf_counter() - t0, 2)
        cand = svc.registry.find_artifact("model", "reranker",
                                          version=int(summary["candidate"]["model_id"].split(":v")[1]))
        trained[kind.value] = (summary, load_reranker(artifact_model_path(cand, svc.artifacts, svc.model_cache),
                                                      summary["candidate"]["model_id"]))

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
    labels = {RerankerKind.CROSS_ENCODER.value: "cross-encoder", RerankerKind.LTR.value: "LTR"}
    # Each reranker's own cost per query (LTR: features + LightGBM), on the top N of each dev-eval query.
    per_query_ms: dict[str, float] = {}
    for kind in sorted(trained, key=lambda k: k != RerankerKind.CROSS_ENCODER.value):   # the row order
        spent: list[float] = []
        table[f"hybrid tuned + {labels[kind]} (top {args.top_n})"] = metrics_from_run(
            evaluation.qrels, rerank_run(path, evaluation, trained[kind][1], top_n=args.top_n, spent_ms=spent))
        per_query_ms[kind] = round(sum(spent) / max(len(spent), 1), 3)
    timings["evaluate_s"] = round(time.perf_counter() - t0, 2)

    out = {
        "collection": path.collection, "train_split": args.train_split, "eval_split": args.eval_split,
        "eval_queries": len(evaluation.qrels), "top_n": args.top_n, "negative_margin": margin,
        "imported": imported.to_xcom(), "fusion_tuning": {"chosen": tuning.chosen.label, "score": tuning.score,
                                                          "default_score": tuning.default_score,
                                                          "queries": tuning.queries},
        "reranker_runs": {kind: {k: summary.get(k) for k in ("candidate", "mined", "trained", "decision", "reasons",
                                                             "ndcg@10", "sets")}
                          for kind, (summary, _) in trained.items()},
        "ce_max_steps": args.ce_max_steps, "rerank_ms_per_query": per_query_ms,
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
    for kind, (summary, _) in trained.items():
        print(f"{kind}: gate on the held-out slice of {args.train_split}: {summary['decision']}: {summary['reasons']}")
        print(f"{kind}: rerank of the top {args.top_n}: {per_query_ms[kind]:.2f} ms/query")
    print(f"timings {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
