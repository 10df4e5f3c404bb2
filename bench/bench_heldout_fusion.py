"""The fusion of a finetuned model's collection, tuned on queries that model never trained on.

bench/bench_label_finetune.py tunes every collection's fusion on dev-train. For the base model's
collection that is clean; for a collection embedded by a model finetuned on dev-train, most of
those queries were training queries, whose dense scores the model has learned: the tuning then
over-trusts the dense list. This tunes each named collection on the held-out slice of dev-train
instead (the test split of a labels dataset version: the queries the gate judges, which no
candidate trained on), records that fusion with the collection, and scores dev-eval::

    python bench/bench_heldout_fusion.py --dataset-version 4 --collections SciFactFT SciFactHN SciFactHN2 \
        --reference SciFact

``--reference``: collections scored on the same held-out queries with the fusion they have (every
candidate fusion's score is reported too), not re-tuned: the base model's, whose dev-train tuning
is clean. Writes ``bench/out/heldout_fusion.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_label_finetune import ROOT, dataset_test_rows, first_stage_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "scifact-dev"))
    parser.add_argument("--dataset-version", type=int, required=True, help="whose test split tunes the fusion")
    parser.add_argument("--collections", nargs="+", required=True, help="the finetuned models' collections (aliases)")
    parser.add_argument("--reference", nargs="*", default=[], help="collections scored, not re-tuned")
    parser.add_argument("--eval-split", default="dev-eval")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "heldout_fusion.json"))
    args = parser.parse_args()

    from ragops.cli.common import services
    from ragops.evaluation.sets import rows_labelled
    from ragops.retrieval import tune_fusion_report
    from ragops.vocabulary import DATASET_NAME

    svc = services()
    heldout = rows_labelled(dataset_test_rows(svc, args.dataset_version), "doc")
    labels = f"{DATASET_NAME} v{args.dataset_version} test split (held-out dev-train)"
    out = {"dataset_version": args.dataset_version, "heldout_queries": len(heldout.queries), "collections": {}}
    for alias in [*args.reference, *args.collections]:
        started = time.perf_counter()
        tuning = tune_fusion_report(svc, alias, heldout, labels=labels, record=alias not in args.reference)
        table = first_stage_table(svc, alias, args.path, "", args.eval_split, tune=False)
        out["collections"][alias] = {"fusion": tuning.chosen.label, "heldout_ndcg@10": tuning.score,
                                     "heldout_default_ndcg@10": tuning.default_score,
                                     "heldout_by_fusion": {s["label"]: s["ndcg@10"] for s in tuning.scores},
                                     "recorded": alias not in args.reference, **table,
                                     "seconds": round(time.perf_counter() - started, 1)}
        print(f"{alias}: best fusion {tuning.chosen.label} on {len(heldout.queries)} held-out queries "
              f"(nDCG@10 {tuning.score:.4f}, default {tuning.default_score:.4f}; "
              f"{'recorded' if alias not in args.reference else 'not recorded'}); held-out by fusion: "
              + ", ".join(f"{s['label']} {s['ndcg@10']:.4f}" for s in tuning.scores))
        print(f"| first stage ({args.eval_split}) | {alias} | nDCG@10 | MRR@10 | Recall@100 |\n|---|---|---|---|---|")
        for name, m in table["rows"].items():
            print(f"| {name} | | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
