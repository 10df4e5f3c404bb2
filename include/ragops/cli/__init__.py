"""``python -m ragops``: the pipelines without a scheduler, for users and benchmarks.

    python -m ragops migrate
    python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact --split dev-eval
    python -m ragops index --source docs/ --collection Docs
    python -m ragops evaluate --path ../shared/data/scifact-dev --collection SciFact --split dev-eval
    python -m ragops lineage live | versions --alias RagDocs | show --artifact 12 | runs | documents
    python -m ragops report
    python -m ragops register-eval-set --beir ../shared/data/scifact-dev --split dev-eval
    python -m ragops rollback --alias RagDocs --version 3

Settings come from the environment (scripts/env.sh sets the local ones): RAGOPS_PG_DSN,
RAGOPS_ARTIFACT_ROOT, RAGOPS_VECTOR_DIR or WEAVIATE_URL. A user error (a missing path, an empty
folder, a bad param) prints one line and exits 2; ``-v`` shows the traceback and the step logs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ragops.cli import eval_sets, index, labels, loop, query, report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ragops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="step logs and tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    index.add_commands(sub)
    report.add_commands(sub)
    loop.add_commands(sub)
    query.add_commands(sub)
    labels.add_commands(sub)
    eval_sets.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        logging.getLogger("ragops.progress").setLevel(logging.INFO)  # totals, even when quiet
    try:
        args.run(args)
    except Exception as exc:
        message = user_error(exc)
        if message is None or args.verbose:
            raise
        print(f"ragops: error: {message}", file=sys.stderr)
        return 2
    return 0


def user_error(exc: BaseException) -> str | None:
    """One line for an error the user can fix; None for a bug (which keeps its traceback)."""
    import psycopg2

    from ragops.errors import RagopsError
    from ragops.sources.errors import SourceError

    if isinstance(exc, psycopg2.OperationalError):
        return f"cannot reach the lineage Postgres: {str(exc).strip().splitlines()[0]} (start it: bash scripts/postgres.sh)"
    if isinstance(exc, RagopsError | SourceError | FileNotFoundError | NotADirectoryError | ValueError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
