"""What the embedding model's gate decides, judged two ways: on the test split alone (the gate before
the served-mode set) and in the live collection's served mode (``ragops.training.served``, the
gate's primary set now, the test split a guard)::

    python bench/bench_model_gate.py --collection SciFact --dataset-version 4 --candidates 2 3 4
    python bench/bench_model_gate.py --collection SciFact --beir ../shared/data/scifact-dev --split dev-eval \
        --candidates 2 3 4 --out bench/out/model_gate_dev_eval.json

The production model and each candidate version are scored on one dataset version's test split
(for bench/bench_label_finetune.py's versions: the held-out slice of dev-train, 131 claims; no
candidate trained on it), then the gate's rule (``training.gate.decide``, default margin and guard
tolerance) is applied to each candidate against production, once per judging. ``--beir`` judges on
a BEIR split instead (dev-eval: where label-trained models are reported), its document labels
mapped to the live collection's best chunks as ``import_labels`` maps them. Nothing is recorded or
promoted. Writes ``bench/out/model_gate.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collection", default="SciFact", help="the live collection (alias) the models serve")
    parser.add_argument("--dataset-version", type=int, help="whose test split judges")
    parser.add_argument("--beir", help="judge on a BEIR folder's qrels instead (with --split), mapped to the "
                                       "live collection's chunks as an import maps them")
    parser.add_argument("--split", default="dev-eval")
    parser.add_argument("--candidates", type=int, nargs="+", required=True, help="embedding model versions")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "model_gate.json"))
    args = parser.parse_args()

    from bench_label_finetune import dataset_test_rows
    from ragops.cli.common import services
    from ragops.models import resolve_embedding_model
    from ragops.training.evaluate import DEFAULT_KS, evaluate_models, model_report
    from ragops.training.evaluation import add_served_set
    from ragops.training.gate import SERVED_SET, decide
    from ragops.vocabulary import MATRYOSHKA_DIMS

    svc = services()
    if args.beir:
        from ragops.labels import collection_chunks, label_rows
        from ragops.retrieval_eval import beir_labelled

        rows, _ = label_rows(beir_labelled(args.beir, args.split), collection_chunks(svc, args.collection))
    elif args.dataset_version:
        rows = dataset_test_rows(svc, args.dataset_version)
    else:
        raise SystemExit("name the judging queries: --dataset-version N or --beir FOLDER")
    models = {"live": resolve_embedding_model("production", svc.registry)}
    models |= {f"v{n}": resolve_embedding_model(f"v{n}", svc.registry) for n in args.candidates}
    paths = {label: svc.model_path(model) for label, model in models.items()}
    dims = sorted(MATRYOSHKA_DIMS, reverse=True)

    started = time.perf_counter()
    report = evaluate_models(paths, rows, dims, DEFAULT_KS)
    split_s = time.perf_counter() - started
    before = copy.deepcopy(report)
    started = time.perf_counter()
    add_served_set(svc, args.collection, rows, paths, report)
    served_s = time.perf_counter() - started
    if report["primary_set"] != SERVED_SET:
        raise SystemExit(f"no served-mode set: {report.get('skipped_sets')}")

    verdicts = {}
    for label in models:
        if label == "live":
            continue
        old = decide(model_report(before, label), model_report(before, "live"))
        new = decide(model_report(report, label), model_report(report, "live"))
        verdicts[label] = {"test_split_only": {"promote": old.promote, "reasons": old.reasons},
                           "served_mode": {"promote": new.promote, "reasons": new.reasons}}
    full = str(dims[0])
    out = {"collection": args.collection, "dataset_version": args.dataset_version,
           "beir": args.beir and f"{args.beir} [{args.split}]",
           "models": {label: model.model_id for label, model in models.items()},
           "sets": report["sets"], "metrics": {label: entry["metrics"] for label, entry in report["models"].items()},
           "verdicts": verdicts, "timings": {"test_split_s": round(split_s, 1), "served_set_s": round(served_s, 1)}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2, default=str))
    print(f"| model | test split nDCG@10 ({full}) | served mode nDCG@10 | served MRR@10 | gate, test split only "
          "| gate, served mode |\n|---|---|---|---|---|---|")
    for label, entry in report["models"].items():
        m = entry["metrics"]
        verdict = verdicts.get(label)
        print(f"| {label} ({models[label].model_id}) | {m['synthetic-test'][full]['ndcg@10']:.4f} "
              f"| {m[SERVED_SET][full]['ndcg@10']:.4f} | {m[SERVED_SET][full]['mrr@10']:.4f} "
              f"| {_verdict(verdict, 'test_split_only')} | {_verdict(verdict, 'served_mode')} |")
    print(f"pool: {report['sets'][SERVED_SET]}; timings {out['timings']}")
    return 0


def _verdict(verdict: dict | None, judging: str) -> str:
    if verdict is None:
        return "(production)"
    return "promote" if verdict[judging]["promote"] else "reject"


if __name__ == "__main__":
    sys.exit(main())
