"""Embedding finetuning on SciFact: does it beat the base model, what does it cost, would the gate pass it?

Index-free: base and candidate are scored by the DAG's evaluator (``ragops.training.evaluate``) on
the SciFact claims and their judged abstracts (doc level, qrels/train.tsv), exact search over the
corpus, at every Matryoshka dim. The candidate is trained by the DAG's entrypoint
(``train_embeddings.py``, run as the local runner runs it) on pairs that never see the claims:

- ``--pairs title``: title -> abstract text (the corpus's own structure);
- ``--pairs offline``: the synthetic helper's offline generator (title queries + Inverse Cloze Task);
- ``--pairs dataset --dataset PATH``: a saved DatasetDict, e.g. an LLM-generated rag_synthetic_data
  version (``datasets/<hash>`` under the artifact root).

The gate runs as in the DAG: primary set = the held-out pairs' test split, SciFact as a guard set.
Expect a rejection with naive offline pairs (../shared/notes/retrieval-quality-baselines.md).

    python bench/bench_finetune.py --path ../shared/data/scifact-dev                  # full (lead)
    python bench/bench_finetune.py --path ../shared/data/scifact-dev --smoke          # minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from ragops.config import base_model_path  # noqa: E402
from ragops.hashing import sha256_text  # noqa: E402
from ragops.training.compute import TrainingRequest, entrypoint_args, run_local  # noqa: E402
from ragops.training.evaluate import beir_eval_set, evaluate_models, model_report  # noqa: E402
from ragops.training.gate import decide  # noqa: E402


def corpus_docs(folder: Path, limit: int | None) -> list[dict[str, str]]:
    docs = []
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            doc = json.loads(line)
            if doc.get("text"):
                docs.append({"doc_id": str(doc["_id"]), "title": doc.get("title") or "", "text": doc["text"]})
    return docs[:limit] if limit else docs


def training_pairs(kind: str, docs: list[dict[str, str]], seed: int) -> list[dict[str, Any]]:
    """(query, positive) rows in the synthetic dataset's columns."""
    if kind == "title":
        return [{"query": d["title"], "positive": d["text"], "negative": None, "doc_id": d["doc_id"],
                 "chunk_id": f"{d['doc_id']}#0"} for d in docs if len(d["title"].split()) >= 3]
    if kind == "offline":
        from ragops.synthetic.offline import offline_queries

        chunks = [{"chunk_id": f"{d['doc_id']}#0", "doc_id": d["doc_id"], "title": d["title"], "text": d["text"],
                   "heading_path": "", "content_hash": sha256_text(d["text"])} for d in docs]
        return [{"query": r["query"], "positive": r["positive"], "negative": None, "doc_id": r["doc_id"],
                 "chunk_id": r["chunk_id"]} for r in offline_queries(chunks, questions_per_chunk=2, seed=seed)]
    raise SystemExit(f"--pairs {kind!r}: choose title, offline or dataset")


def save_dataset(rows: list[dict[str, Any]], target: Path, test_ratio: float, max_pairs: int, seed: int) -> dict:
    """Split by document (no document on both sides), cap the train side, save like rag_synthetic_data."""
    from datasets import Dataset, DatasetDict

    docs = sorted({r["doc_id"] for r in rows})
    random.Random(seed).shuffle(docs)
    test_docs = set(docs[: max(1, int(len(docs) * test_ratio))])
    train = [r for r in rows if r["doc_id"] not in test_docs]
    test = [r for r in rows if r["doc_id"] in test_docs][:200]
    random.Random(seed).shuffle(train)
    train = train[:max_pairs]
    DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)}).save_to_disk(str(target))
    return {"train": len(train), "test": len(test)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--path", type=Path, default=ROOT.parent / "shared" / "data" / "scifact-dev")
    p.add_argument("--pairs", choices=("title", "offline", "dataset"), default="title")
    p.add_argument("--dataset", type=Path, help="a saved DatasetDict for --pairs dataset (e.g. LLM-generated)")
    p.add_argument("--max-docs", type=int, default=None, help="corpus documents used to build training pairs")
    p.add_argument("--max-pairs", type=int, default=2000)
    p.add_argument("--eval-queries", type=int, default=None, help="SciFact queries scored (default all 809)")
    p.add_argument("--eval-distractors", type=int, default=None,
                   help="with --eval-queries: other documents in the corpus (default: the whole corpus)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--dims", default="384,256,128,64")
    p.add_argument("--max-steps", type=int, default=-1)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--margin", type=float, default=0.005)
    p.add_argument("--guard-tolerance", type=float, default=0.01)
    p.add_argument("--smoke", action="store_true",
                   help="a small subset: 300 docs, 64 pairs, 10 steps, 40 queries over 400 documents")
    p.add_argument("--keep", action="store_true", help="keep the temporary pairs and trained model")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "bench_finetune.json")
    a = p.parse_args(argv)
    if a.smoke:
        a.max_docs, a.max_pairs, a.max_steps, a.batch_size = a.max_docs or 300, 64, 10, 16
        a.eval_queries, a.eval_distractors = a.eval_queries or 40, a.eval_distractors or 400
    dims = [int(d) for d in a.dims.split(",")]

    work = Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    if a.pairs == "dataset":
        if not a.dataset:
            raise SystemExit("--pairs dataset needs --dataset PATH")
        dataset_path, sizes = a.dataset, {}
    else:
        rows = training_pairs(a.pairs, corpus_docs(a.path, a.max_docs), a.seed)
        dataset_path = work / "pairs"
        sizes = save_dataset(rows, dataset_path, 0.1, a.max_pairs, a.seed)
    print(f"training pairs ({a.pairs}): {sizes or a.dataset}", flush=True)

    request = TrainingRequest(dataset_uri=str(dataset_path), base_model=base_model_path(), output_uri=str(work / "out"),
                              epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, matryoshka_dims=tuple(dims),
                              checkpoint_steps=10_000, seed=a.seed, max_steps=a.max_steps)
    started = time.perf_counter()
    train_metrics = run_local(entrypoint_args(request))
    train_wall = time.perf_counter() - started
    candidate = work / "out" / "model"

    from datasets import load_from_disk

    test_rows = load_from_disk(str(dataset_path))["test"].to_list()
    scifact = beir_eval_set(a.path, "train", name="scifact", max_queries=a.eval_queries,
                            extra_corpus=a.eval_distractors or 0)
    started = time.perf_counter()
    report = evaluate_models({"base": base_model_path(), "candidate": str(candidate)}, test_rows, dims, [10, 100],
                             guard_sets=[scifact])
    eval_wall = time.perf_counter() - started
    decision = decide(model_report(report, "candidate"), model_report(report, "base"), margin=a.margin,
                      guard_tolerance=a.guard_tolerance)

    per_dim = {}
    for dim in dims:
        b = report["models"]["base"]["metrics"]["scifact"][str(dim)]
        c = report["models"]["candidate"]["metrics"]["scifact"][str(dim)]
        per_dim[dim] = {"base": b, "candidate": c, "delta_ndcg@10": round(c["ndcg@10"] - b["ndcg@10"], 4)}
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "pairs": a.pairs, "dataset": str(a.dataset) if a.dataset else sizes,
        "hyperparameters": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "dims": dims,
                            "max_steps": a.max_steps, "seed": a.seed, "loss": train_metrics.get("loss")},
        "training": {"wall_s": round(train_wall, 1), "runtime_s": train_metrics.get("runtime_s"),
                     "steps": train_metrics.get("global_step"), "train_loss": train_metrics.get("train_loss"),
                     "peak_rss_mb": train_metrics.get("peak_rss_mb"), "peak_cuda_mb": train_metrics.get("peak_cuda_mb"),
                     "device": train_metrics.get("device")},
        "evaluation": {"wall_s": round(eval_wall, 1), "sets": report["sets"]},
        "scifact_by_dim": per_dim,
        "held_out_pairs_ndcg@10": {label: report["models"][label]["metrics"]["synthetic-test"][str(dims[0])]["ndcg@10"]
                                   for label in ("base", "candidate")},
        "gate": decision.to_dict(),
        "smoke": a.smoke,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2, default=str))
    lines = ["| dim | base nDCG@10 | candidate nDCG@10 | delta | base R@100 | cand R@100 |", "|---|---|---|---|---|---|"]
    for dim, v in per_dim.items():
        lines.append(f"| {dim} | {v['base']['ndcg@10']:.4f} | {v['candidate']['ndcg@10']:.4f} | "
                     f"{v['delta_ndcg@10']:+.4f} | {v['base']['recall@100']:.4f} | {v['candidate']['recall@100']:.4f} |")
    print("\n".join(lines))
    print(f"training: {result['training']}")
    print(f"gate: {decision.verdict}: " + "; ".join(decision.reasons))
    print(f"written: {a.out}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept: {work} (pairs/, out/model)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
