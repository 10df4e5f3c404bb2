"""The embedding model finetuned on imported labels (dev-train), gated, re-indexed, and scored on dev-eval.

The second lever of the two-stage issue: ``rag_finetune_embeddings``' steps in process on a dataset
version built from ``qrels/dev-train.tsv`` (``ragops.labels.import_labels``: document labels
mapped to their best chunks, split by document), the DAG's own evaluation and gate (its held-out
slice of dev-train), then the corpus re-indexed with the candidate into a second alias and the
first stage scored on ``qrels/dev-eval.tsv``, which neither the trainer nor the gate saw, beside
the base model's collection. The fusion of the new collection is tuned on dev-train, as
bench/bench_rerank.py does for the base one::

    python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact --split dev-eval \\
        --chunk-size 256 --chunk-overlap 0
    python bench/bench_label_finetune.py --path ../shared/data/scifact-dev --collection SciFact --epochs 2
    python bench/bench_label_finetune.py --path ../shared/data/scifact-dev --collection SciFact --epochs 2 \
        --hard-negatives --from-base --candidate-alias SciFactHN --out bench/out/label_finetune_hn.json

``--hard-negatives``: each train row gets a hard negative mined from the live collection (never a
document labelled relevant to its query, never within the margin of its positive's score).
``--from-base``: the base model is put back in production first, so that the gate judges the
candidate against it (as it judged the first candidate) rather than against an earlier finetune.

Writes ``bench/out/label_finetune.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def dataset_test_rows(svc: Any, version: int) -> list[dict[str, Any]]:
    """The test split of one version of the training dataset (for a labels import: the held-out
    slice of the labels, which no model trained on)."""
    from ragops.synthetic.dataset import load_dataset
    from ragops.vocabulary import DATASET_NAME, ArtifactKind

    dataset = svc.registry.find_artifact(ArtifactKind.DATASET, DATASET_NAME, version=version)
    if dataset is None:
        raise SystemExit(f"--dataset-version {version}: no such version of {DATASET_NAME!r}")
    return load_dataset(svc.artifacts, svc.artifacts.rel_of(dataset.uri))["test"].to_list()


def first_stage_table(svc: Any, alias: str, path: str, train_split: str, eval_split: str, *,
                      tune: bool) -> dict[str, Any]:
    """dense, keyword, hybrid (default RRF) and hybrid (the collection's fusion, tuned on
    ``train_split`` first when ``tune``), on ``eval_split``."""
    from ragops.retrieval import DEFAULT_FUSION, Retriever, tune_fusion_report
    from ragops.retrieval.retriever import identity_reranker
    from ragops.retrieval_eval import beir_labelled, metrics_from_run, retrieve_run

    if tune:
        tune_fusion_report(svc, alias, beir_labelled(path, train_split), labels=f"beir:{train_split}")
    evaluation = beir_labelled(path, eval_split)
    live = Retriever(svc, alias, cite=False, reranker_for=identity_reranker).current()

    def score(mode: str, fusion: Any = None) -> dict[str, float]:
        return metrics_from_run(evaluation.qrels, retrieve_run(None, "", evaluation, mode, None, path=live,
                                                               fusion=fusion))

    return {"collection": live.collection, "fusion": live.fusion.label, "rows": {
        "dense": score("dense"), "keyword": score("keyword"),
        f"hybrid, default fusion ({DEFAULT_FUSION.label})": score("hybrid", DEFAULT_FUSION),
        f"hybrid, tuned fusion ({live.fusion.label})": score("hybrid", live.fusion)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--collection", default="SciFact", help="the base model's live collection (alias)")
    parser.add_argument("--train-split", default="dev-train")
    parser.add_argument("--eval-split", default="dev-eval")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--chunk-size", type=int, default=256, help="as the base collection was chunked")
    parser.add_argument("--chunk-overlap", type=int, default=0)
    parser.add_argument("--hard-negatives", action="store_true", help="mine a hard negative per train row")
    parser.add_argument("--from-base", action="store_true", help="gate against the base model (roll back first)")
    parser.add_argument("--candidate-alias", default=None, help="the candidate's collection (default: <collection>FT)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "label_finetune.json"))
    args = parser.parse_args()

    from ragops.cli.common import services
    from ragops.labels import import_labels
    from ragops.models import rollback
    from ragops.training.compute import TrainingConfig
    from ragops.training.params import FinetuneParams
    from ragops.training.pipeline import finetune_in_process
    from ragops.vocabulary import Compute

    svc = services()
    if args.from_base:
        rollback(svc.registry, 1, reason="bench: gate the candidate against the base model")
    started, timings = time.perf_counter(), {}
    t0 = time.perf_counter()
    imported = import_labels(svc, str(Path(args.path) / "qrels" / f"{args.train_split}.tsv"),
                             alias=args.collection, merge_with="none", hard_negatives=args.hard_negatives)
    timings["import_labels_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    # The gate scores the models in the served mode of the live collection (training/served.py).
    params = FinetuneParams(dataset_version=imported.dataset.version, epochs=args.epochs,
                            batch_size=args.batch_size, compute=Compute.LOCAL, alias=args.collection)
    summary = finetune_in_process(svc, params, f"bench-label-finetune-{int(time.time())}",
                                  config=TrainingConfig(compute=Compute.LOCAL))
    timings["finetune_pipeline_s"] = round(time.perf_counter() - t0, 2)
    candidate = summary["candidate"]["model_id"]          # embeddings:v<N>
    print(f"gate on the held-out slice of {args.train_split}: {summary.get('decision')}: {summary.get('reasons')}")

    # the candidate's collection, whatever the gate said: dev-eval tells whether the gate was right
    alias = args.candidate_alias or f"{args.collection}FT"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ragops", "index-beir", "--path", args.path, "--collection", alias,
                    "--split", args.eval_split, "--chunk-size", str(args.chunk_size),
                    "--chunk-overlap", str(args.chunk_overlap), "--model", f"v{candidate.rsplit(':v', 1)[1]}",
                    "--mode", "full"], check=True)
    timings["index_candidate_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    # the base collection's fusion was tuned on the same split already (bench/bench_rerank.py)
    tables = {"base": first_stage_table(svc, args.collection, args.path, args.train_split, args.eval_split,
                                        tune=False),
              "finetuned": first_stage_table(svc, alias, args.path, args.train_split, args.eval_split, tune=True)}
    timings["evaluate_s"] = round(time.perf_counter() - t0, 2)

    out = {"train_split": args.train_split, "eval_split": args.eval_split, "imported": imported.to_xcom(),
           "finetune": {k: summary.get(k) for k in ("candidate", "trained", "decision", "reasons", "sets",
                                                    "ndcg@10", "promoted")},
           "tables": tables, "timings": timings, "total_s": round(time.perf_counter() - started, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"| first stage (scored on {args.eval_split}) | model | nDCG@10 | MRR@10 | Recall@100 |\n|---|---|---|---|---|")
    for model, table in tables.items():
        for name, m in table["rows"].items():
            print(f"| {name} | {model} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} |")
    print(f"timings {timings}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
