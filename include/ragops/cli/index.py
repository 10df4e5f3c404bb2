"""Commands that build and judge collections: migrate, index, index-beir, evaluate, rollback."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ragops.cli.common import run_id, services, show
from ragops.indexing.params import IndexParams
from ragops.params import add_cli_arguments, cli_values
from ragops.vocabulary import AliasKind, ArtifactKind, Relation, Status

INDEX_FLAGS = ("alias", "mode", "chunk_size", "chunk_overlap", "embedding_model", "batch_size", "keep_versions",
               "golden_queries")


def add_commands(sub: Any) -> None:
    migrate = sub.add_parser("migrate", help="create or upgrade the lineage schema")
    migrate.set_defaults(run=_migrate)

    beir = sub.add_parser("index-beir", help="index a BEIR folder and evaluate it against its qrels")
    beir.add_argument("--path", required=True)
    beir.add_argument("--split", default="test", help="qrels split to evaluate (qrels/<split>.tsv)")
    beir.add_argument("--modes", default="dense,keyword,hybrid")
    index_arguments(beir)
    beir.set_defaults(run=_index_beir)
    folder = sub.add_parser("index", help="index a folder of Markdown, reStructuredText, HTML and text")
    folder.add_argument("--source", required=True)
    folder.add_argument("--name", default=None)
    index_arguments(folder)
    folder.set_defaults(run=_index_folder)
    ev = sub.add_parser("evaluate", help="evaluate the live collection of an alias against BEIR qrels")
    ev.add_argument("--path", required=True)
    ev.add_argument("--collection", dest="alias", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--modes", default="dense,keyword,hybrid")
    ev.set_defaults(run=evaluate)
    rb = sub.add_parser("rollback", help="point an alias back at an earlier collection version")
    rb.add_argument("--alias", required=True)
    rb.add_argument("--version", type=int, required=True)
    rb.set_defaults(run=_rollback)


def index_arguments(p: argparse.ArgumentParser) -> None:
    add_cli_arguments(p, IndexParams, only=INDEX_FLAGS, required=("alias",),
                      aliases={"alias": "--collection", "embedding_model": "--model"})
    p.add_argument("--run-id", default=None, help="a fixed run id makes a re-run update the same lineage run")


def _migrate(args: argparse.Namespace) -> None:
    svc = services()
    print(f"lineage schema {svc.settings.schema!r} at version {svc.registry.schema_version()}")


def index(args: argparse.Namespace, source: dict[str, Any]) -> dict[str, Any]:
    from ragops.indexing.pipeline import run_pipeline

    params = IndexParams.from_mapping(cli_values(args, IndexParams) | {"sources": [source], "shard_size": 10**9})
    svc = services()
    summary = run_pipeline(svc, params, run_id(args.run_id))
    show("Indexed", summary)
    return summary


def _index_folder(args: argparse.Namespace) -> None:
    source = Path(args.source).resolve()
    if not source.is_dir():
        raise NotADirectoryError(f"--source {args.source!r} is not a folder")
    index(args, {"type": "folder", "path": str(source), "name": args.name or source.name, "root": str(source)})


def _index_beir(args: argparse.Namespace) -> None:
    path = Path(args.path)
    if not (path / "corpus.jsonl").is_file():
        raise FileNotFoundError(f"--path {args.path!r} holds no corpus.jsonl (a BEIR folder has corpus.jsonl, "
                                "queries.jsonl and qrels/)")
    index(args, {"type": "beir", "path": args.path, "name": path.name})
    evaluate(args)


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from ragops.embedding import Embedder
    from ragops.hashing import hash_object
    from ragops.models import ModelRef
    from ragops.retrieval_eval import beir_labelled, evaluate_collection, summarize

    svc = services()
    live = svc.registry.get_alias(AliasKind.COLLECTION, args.alias)
    if live is None:
        raise FileNotFoundError(f"no live collection behind alias {args.alias!r}: index it first")
    model = svc.registry.parent(live.id, Relation.EMBEDDED_WITH)
    if model is None:
        raise FileNotFoundError(f"collection {live.uri} records no embedding model")
    embedder = Embedder(svc.model_path(ModelRef.of(model)))
    labelled = beir_labelled(args.path, args.split)
    metrics = evaluate_collection(svc.store, args.alias, labelled, embedder.encode, modes=args.modes.split(","))
    report = {"collection": live.uri, "split": args.split, "path": str(args.path), "metrics": metrics}
    uri = svc.artifacts.write_json(f"reports/retrieval/{live.uri}/{hash_object(report)}.json", report)
    svc.registry.record_artifact(ArtifactKind.EVALUATION, f"{args.alias}-{args.split}", hash_object(report), uri,
                                 metrics=dict(metrics), status=Status.DONE,
                                 params={"qrels": f"{args.path}:{args.split}"}, parents=[(live.id, Relation.EVALUATES)])
    print(f"## Retrieval quality of {live.uri} (v{live.version}) on {args.path} [{args.split}], "
          f"{next(iter(metrics.values()))['queries']} queries")
    print(summarize(metrics))
    return metrics


def _rollback(args: argparse.Namespace) -> None:
    from ragops.indexing import versions
    from ragops.runs import recorded_run

    svc = services()
    with recorded_run(svc, "ragops_cli_rollback", run_id(None), {"alias": args.alias, "version": args.version}) as run:
        swap = versions.rollback(svc, args.alias, args.version, run.ref)
        run.summary = {"swap": swap.to_xcom(), "noop": not swap.moved}
    show("Rolled back", swap.to_xcom())
