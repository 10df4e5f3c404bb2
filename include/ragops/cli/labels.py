"""``python -m ragops import-labels``: a team's labelled queries as (or merged into) a training dataset version.

    python -m ragops import-labels --labels ../shared/data/scifact-dev/qrels/dev-train.tsv --collection SciFact
    python -m ragops import-labels --labels golden.jsonl --merge-with none
"""

from __future__ import annotations

import argparse
from typing import Any

from ragops.cli.common import run_id, services, show
from ragops.labels import DEFAULT_SEED, DEFAULT_TEST_RATIO, NEGATIVE_MARGIN
from ragops.vocabulary import DEFAULT_ALIAS


def add_commands(sub: Any) -> None:
    p = sub.add_parser("import-labels", help="import labelled queries (BEIR qrels or JSONL) as a dataset version")
    p.add_argument("--labels", required=True,
                   help="a BEIR qrels .tsv (queries.jsonl in its folder's parent), a BEIR folder with --split, "
                        "or a JSONL of {query, doc_id|chunk_id}")
    p.add_argument("--split", default=None, help="the qrels split when --labels is a BEIR folder")
    p.add_argument("--collection", default=DEFAULT_ALIAS, help="the live collection the labels are mapped on")
    p.add_argument("--merge-with", default="latest",
                   help="latest (the latest usable dataset version), none, or a dataset version number")
    p.add_argument("--chunks-per-doc", type=int, default=1, help="chunks a document-level label maps to")
    p.add_argument("--test-ratio", type=float, default=DEFAULT_TEST_RATIO, help="share of new documents in test")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the split by document")
    p.add_argument("--hard-negatives", action="store_true",
                   help="mine a hard negative per train row from the collection (never a labelled document)")
    p.add_argument("--negative-margin", type=float, default=NEGATIVE_MARGIN,
                   help="skip candidates scoring within this fraction of the positive's score")
    p.add_argument("--run-id", default=None)
    p.set_defaults(run=run_import)


def run_import(args: argparse.Namespace) -> None:
    from ragops.labels import import_labels
    from ragops.runs import recorded_run

    svc = services()
    params = {k: v for k, v in vars(args).items() if k not in ("run", "verbose", "command")}
    with recorded_run(svc, "ragops_cli_import_labels", run_id(args.run_id), params) as run:
        result = import_labels(svc, args.labels, alias=args.collection, split=args.split, merge_with=args.merge_with,
                               chunks_per_doc=args.chunks_per_doc, test_ratio=args.test_ratio, seed=args.seed,
                               hard_negatives=args.hard_negatives, negative_margin=args.negative_margin,
                               run_key=run.ref.run_key)
        run.summary = result.to_xcom()
    show("imported labels", run.summary)
