"""``loop``: the whole lifecycle on a BEIR folder, in one process: index, synthesize, finetune,
evaluate on qrels, gate, and re-index if the candidate was promoted."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from ragops.cli import index as index_cmd
from ragops.cli.common import run_id, services, show
from ragops.vocabulary import LEARNING_RATE


def add_commands(sub: Any) -> None:
    loop = sub.add_parser("loop", help="index, synthesize, finetune, evaluate on qrels, gate, re-index if promoted")
    loop.add_argument("--path", required=True)
    loop.add_argument("--split", default="test")
    loop.add_argument("--modes", default="dense,keyword,hybrid")
    loop.add_argument("--generator", choices=["offline", "llm", "auto"], default="auto")
    loop.add_argument("--sample-size", type=int, default=2000, help="chunks sampled for synthetic queries")
    loop.add_argument("--epochs", type=float, default=1.0)
    loop.add_argument("--train-batch", type=int, default=32)
    loop.add_argument("--lr", type=float, default=LEARNING_RATE)
    loop.add_argument("--max-steps", type=int, default=-1)
    loop.add_argument("--margin", type=float, default=0.005)
    loop.add_argument("--max-queries", type=int, default=None, help="evaluate on the first N judged queries")
    loop.add_argument("--seed", type=int, default=13)
    index_cmd.index_arguments(loop)
    loop.set_defaults(run=run_loop)


def run_loop(args: argparse.Namespace) -> dict[str, Any]:
    from ragops.synthetic.params import SyntheticParams
    from ragops.synthetic.pipeline import run_pipeline as synthesize
    from ragops.training.params import FinetuneParams
    from ragops.training.pipeline import finetune_in_process

    source = {"type": "beir", "path": args.path, "name": Path(args.path).name}
    index_cmd.index(args, source)
    svc, rid = services(), run_id(args.run_id)
    synth = synthesize(svc, SyntheticParams.from_mapping({
        "alias": args.alias, "sample_size": args.sample_size, "questions_per_chunk": 1,
        "generator": args.generator, "seed": args.seed}), rid, dag_id="ragops_cli_synthesize")
    dataset = synth["dataset"]
    show(f"Synthetic dataset v{dataset['version']}", synth.get("split"))
    started = time.perf_counter()
    finetune = finetune_in_process(svc, FinetuneParams.from_mapping({
        "dataset_version": dataset["version"], "epochs": args.epochs, "batch_size": args.train_batch,
        "lr": args.lr, "max_steps": args.max_steps, "seed": args.seed, "margin": args.margin,
        "beir_folder": args.path, "beir_split": args.split, "beir_max_queries": args.max_queries,
        "beir_distractors": 0}), rid)
    print(f"\n## Finetuned in {time.perf_counter() - started:.0f} s (evaluation included)")
    print(f"nDCG@10 (base / live / candidate): {finetune.get('ndcg@10')}")
    print(f"gate: {finetune.get('decision')}: {'; '.join(finetune.get('reasons') or [])}")
    if finetune.get("promoted"):
        args.embedding_model, args.mode = "production", "incremental"
        index_cmd.index(args, source)
        index_cmd.evaluate(args)
    return finetune
