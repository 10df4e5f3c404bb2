"""``python -m ragops register-eval-set``: a BEIR qrels split or a golden queries file as an
evaluation set rag_evaluate runs on every evaluation (an artifact of kind ``eval_set``).

    python -m ragops register-eval-set --beir ../shared/data/scifact-dev --split dev-eval
    python -m ragops register-eval-set --golden golden.jsonl --name golden-ops
"""

from __future__ import annotations

import argparse
from typing import Any

from ragops.cli.common import run_id, services, show


def add_commands(sub: Any) -> None:
    p = sub.add_parser("register-eval-set", help="register a BEIR qrels split or golden queries file for rag_evaluate")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--beir", help="a BEIR folder (queries.jsonl, qrels/<split>.tsv) whose corpus is indexed")
    source.add_argument("--golden", help="a JSONL of golden queries {query, doc_id|chunk_id[, relevance]}")
    p.add_argument("--split", default=None, help="the BEIR qrels split (test, dev...); needed with --beir")
    p.add_argument("--name", default=None, help="the set's name in the metrics (default: beir-<folder>-<split> "
                                                "or golden-<file stem>)")
    p.add_argument("--run-id", default=None)
    p.set_defaults(run=run_register)


def run_register(args: argparse.Namespace) -> None:
    from ragops.evaluation.sets import register_eval_set
    from ragops.runs import recorded_run

    svc = services()
    params = {k: v for k, v in vars(args).items() if k not in ("run", "verbose", "command")}
    with recorded_run(svc, "ragops_cli_register_eval_set", run_id(args.run_id), params) as run:
        art = register_eval_set(svc, beir=args.beir, split=args.split, golden=args.golden, name=args.name,
                                run_key=run.ref.run_key)
        run.summary = {"eval_set": art.summary(), "queries": art.metrics.get("queries"), "level": art.params["level"]}
    show("registered evaluation set", run.summary)
