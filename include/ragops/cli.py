"""``python -m ragops``: the pipelines without a scheduler, for users and benchmarks.

    python -m ragops index-beir --path ../shared/data/scifact-dev --collection SciFact --split train
    python -m ragops index --source docs/ --collection Docs
    python -m ragops evaluate --path ../shared/data/scifact-dev --collection SciFact --split train
    python -m ragops lineage live | versions --alias RagDocs | show --artifact 12 | runs
    python -m ragops rollback --alias RagDocs --version 3

Settings come from the environment (scripts/env.sh sets the local ones): RAGOPS_PG_DSN,
RAGOPS_ARTIFACT_ROOT, RAGOPS_VECTOR_DIR or WEAVIATE_URL.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

from ragops.config import RagopsSettings


def _services(settings: RagopsSettings) -> tuple[Any, Any, Any]:
    import psycopg2

    from ragops.artifacts import ArtifactStore
    from ragops.lineage import Registry
    from ragops.stores import open_store

    registry = Registry(settings.pg_dsn, settings.schema)
    try:
        registry.migrate()
    except psycopg2.OperationalError as exc:
        raise SystemExit(f"cannot reach the lineage Postgres at {settings.pg_dsn.split('@')[-1]}: {exc}\n"
                         "start the local one with: bash scripts/postgres.sh") from exc
    return registry, ArtifactStore(settings.artifact_root), open_store(settings)


def _index(args: argparse.Namespace, source: dict[str, Any]) -> dict[str, Any]:
    from ragops.indexing import IndexParams, run_pipeline

    settings = RagopsSettings.from_env()
    settings.log_fallbacks()
    registry, artifacts, store = _services(settings)
    params = IndexParams(alias=args.collection, sources=[source], mode=args.mode, chunk_size=args.chunk_size,
                         chunk_overlap=args.chunk_overlap, embedding_model=args.model, batch_size=args.batch_size,
                         keep_versions=args.keep_versions, shard_size=10**9)
    run_id = args.run_id or f"cli__{time.strftime('%Y%m%dT%H%M%S')}"
    started = time.perf_counter()
    summary = run_pipeline(settings, params, run_id, registry=registry, artifacts=artifacts, store=store)
    summary["timings"]["total"] = round(time.perf_counter() - started, 3)
    print("## Indexed")
    print(json.dumps(summary, indent=2, default=str))
    return summary


def _evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from ragops.embedding import Embedder
    from ragops.models import artifact_model_path
    from ragops.retrieval_eval import beir_labelled, evaluate_collection, summarize

    settings = RagopsSettings.from_env()
    registry, artifacts, store = _services(settings)
    live = registry.get_alias("collection", args.collection)
    if live is None:
        raise SystemExit(f"no live collection behind alias {args.collection!r}: index it first")
    model_parents = [p for p, rel in registry.parents(live.id) if rel == "embedded_with"]
    if not model_parents:
        raise SystemExit(f"collection {live.uri} records no embedding model")
    embedder = Embedder(artifact_model_path(model_parents[0], artifacts, "/tmp/ragops-models"))
    labelled = beir_labelled(args.path, args.split)
    modes = args.modes.split(",")
    metrics = evaluate_collection(store, args.collection, labelled, embedder.encode, modes=modes)
    from ragops.hashing import hash_object

    report = {"collection": live.uri, "split": args.split, "path": str(args.path), "metrics": metrics}
    uri = artifacts.write_json(f"reports/retrieval/{live.uri}/{hash_object(report)}.json", report)
    registry.record_artifact("evaluation", f"{args.collection}-{args.split}", hash_object(report), uri,
                             metrics={m: v for m, v in metrics.items()}, status="done",
                             params={"qrels": f"{args.path}:{args.split}"}, parents=[(live.id, "evaluates")])
    print(f"## Retrieval quality of {live.uri} (v{live.version}) on {args.path} [{args.split}], "
          f"{next(iter(metrics.values()))['queries']} queries")
    print(summarize(metrics))
    return metrics


def _lineage(args: argparse.Namespace) -> None:
    settings = RagopsSettings.from_env()
    registry, _, _ = _services(settings)
    if args.what == "live":
        out: Any = registry.live()
        for row in out:
            row["lineage"] = [{k: a[k] for k in ("kind", "name", "version", "relation", "uri")}
                              for a in registry.ancestors(row["artifact_id"])]
    elif args.what == "versions":
        out = [a.summary() | {"metrics": a.metrics, "params": a.params}
               for a in registry.list_artifacts("collection", args.alias)]
    elif args.what == "show":
        art = registry.get_artifact(args.artifact)
        if art is None:
            raise SystemExit(f"no artifact {args.artifact}")
        out = {"artifact": art.__dict__, "ancestors": registry.ancestors(art.id),
               "derived": [{"relation": rel, **child.summary(), "metrics": child.metrics}
                           for child, rel in registry.children(art.id)]}
    elif args.what == "documents":
        live = registry.get_alias("collection", args.alias)
        if live is None:
            raise SystemExit(f"no live collection behind alias {args.alias!r}")
        corpus = next((a for a in registry.ancestors(live.id) if a["kind"] == "corpus"), None)
        if corpus is None:
            raise SystemExit(f"collection {live.uri} records no corpus")
        artifacts = _services(settings)[1]
        rel = corpus["uri"].removeprefix(str(artifacts.uri("x"))[:-1])
        table = artifacts.read_table(rel).select(["doc_id", "source", "content_hash"])
        out = {"collection": live.uri, "corpus": f"v{corpus['version']}", "documents": table.to_pylist()}
    else:
        with registry.transaction() as cur:
            cur.execute("SELECT run_key, status, started_at, finished_at FROM runs ORDER BY started_at DESC LIMIT 20")
            out = [dict(zip(("run_key", "status", "started_at", "finished_at"), r, strict=True)) for r in cur.fetchall()]
    print(json.dumps(out, indent=2, default=str))


def _report(args: argparse.Namespace) -> None:
    """What is live, with its metrics and lineage; the latest runs; open alerts."""
    settings = RagopsSettings.from_env()
    registry, _, _ = _services(settings)
    print("# ragops: what is live")
    for row in registry.live():
        label = f"alias {row['alias']}" if row["alias_kind"] == "collection" else f"{row['kind']} stage production"
        print(f"\n## {label} -> {row['kind']} {row['name']} v{row['version']} ({row['uri']})")
        print(f"built by {row['dag_id']}/{row['run_id']}")
        print(f"params:  {json.dumps(row['params'], default=str)}")
        print(f"metrics: {json.dumps(row['metrics'], default=str)}")
        for child, relation in registry.children(row["artifact_id"]):
            if child.kind == "evaluation":
                print(f"{relation} by {child.name} v{child.version}: {json.dumps(child.metrics, default=str)}")
        print("lineage:")
        for a in registry.ancestors(row["artifact_id"]):
            print(f"  {'  ' * (a['depth'] - 1)}<- {a['relation']}: {a['kind']} {a['name']} v{a['version']} "
                  f"{json.dumps({k: v for k, v in (a['metrics'] or {}).items() if not isinstance(v, list | dict)})}")
    print("\n## embedding models")
    for model in registry.list_artifacts("model", "embeddings"):
        gate = (model.metrics or {}).get("gate") or {}
        print(f"  v{model.version} stage={model.stage or '-'} status={model.status} {model.uri}"
              + (f"  gate: {gate.get('decision')} {'; '.join(gate.get('reasons') or [])}" if gate else ""))
    with registry.transaction() as cur:
        cur.execute("SELECT run_key, status, fallbacks FROM runs ORDER BY started_at DESC LIMIT 8")
        runs = cur.fetchall()
        cur.execute("SELECT suite, target, success FROM dq_results ORDER BY id DESC LIMIT 8")
        dq = cur.fetchall()
        cur.execute("SELECT severity, title, message FROM alerts ORDER BY id DESC LIMIT 5")
        alerts = cur.fetchall()
    print("\n## latest runs")
    for key, status, fallbacks in runs:
        names = ", ".join(f"{f['service']} -> {f['using']}" for f in fallbacks or [])
        print(f"  {status:8} {key}" + (f"  [fallbacks: {names}]" if names else ""))
    print("\n## data quality")
    for suite, target, ok in dq:
        print(f"  {'pass' if ok else 'FAIL'} {suite} {target}")
    print("\n## alerts" + ("" if alerts else ": none"))
    for severity, title, message in alerts:
        print(f"  [{severity}] {title}: {message[:200]}")


def _loop(args: argparse.Namespace) -> dict[str, Any]:
    """The whole lifecycle on a BEIR folder: index, synthesize, finetune, evaluate, gate (and re-index)."""
    from pathlib import Path

    from ragops.synthetic.pipeline import SyntheticParams
    from ragops.synthetic.pipeline import run_pipeline as synthesize
    from ragops.training.pipeline import evaluate_run, gate_run, promote_run, register_trained, resolve_inputs
    from ragops.training.pod import TrainingConfig, run_local

    _index(args, {"type": "beir", "path": args.path, "name": Path(args.path).name})
    settings = RagopsSettings.from_env()
    registry, artifacts, store = _services(settings)
    run_id = args.run_id or f"cli__{time.strftime('%Y%m%dT%H%M%S')}"
    synth = synthesize(SyntheticParams(alias=args.collection, sample_size=args.sample_size, questions_per_chunk=1,
                                       generator=args.generator, seed=args.seed),
                       run_id, registry=registry, artifacts=artifacts, store=store, dag_id="ragops_cli_synthesize")
    dataset = synth["dataset"]
    print(f"## Synthetic dataset v{dataset['version']}: {json.dumps(synth['split'], default=str)[:400]}")
    run_key = registry.start_run("ragops_cli_finetune", run_id, vars(args))
    inputs = resolve_inputs({"dataset_version": dataset["version"], "epochs": args.epochs, "batch_size": args.train_batch,
                             "lr": args.lr, "max_steps": args.max_steps, "matryoshka_dims": [384, 256, 128, 64],
                             "seed": args.seed, "margin": args.margin, "beir_folder": args.path,
                             "beir_split": args.split, "beir_max_queries": args.max_queries},
                            registry, artifacts, TrainingConfig.from_value({"compute": "local"}), run_key)
    started = time.perf_counter()
    train_metrics = run_local(inputs["args"])
    candidate = register_trained(inputs, train_metrics, registry, artifacts, run_key)
    evaluation = evaluate_run(inputs, candidate, registry, artifacts)
    decision = gate_run(inputs, candidate, evaluation, registry, run_key)
    beir_set = next(n for n in evaluation["report"]["sets"] if n.startswith("beir-"))
    print(f"\n## Base vs candidate on {args.path} [{args.split}] (dense, document level), "
          f"trained {time.perf_counter() - started:.0f} s incl. evaluation")
    print("| model | dim | nDCG@10 | MRR@10 | Recall@100 |\n|---|---|---|---|---|")
    for label in ("base", "candidate"):
        for dim in evaluation["report"]["dims"]:
            m = evaluation["report"]["models"][label]["metrics"][beir_set][str(dim)]
            print(f"| {label} | {dim} | {m['ndcg@10']:.4f} | {m['mrr@10']:.4f} | {m['recall@100']:.4f} |")
    print(f"\ngate: {decision['verdict']}: {'; '.join(decision['reasons'])}")
    if decision["promote"]:
        promote_run(candidate, decision, registry, run_key)
        args.model, args.mode = "production", "incremental"
        _index(args, {"type": "beir", "path": args.path, "name": Path(args.path).name})
        _evaluate(args)
    registry.finish_run(run_key, "success", {"decision": decision["verdict"], "candidate": candidate["model_id"]})
    return decision


def _rollback(args: argparse.Namespace) -> None:
    from ragops.indexing import rollback

    settings = RagopsSettings.from_env()
    registry, _, store = _services(settings)
    print(json.dumps(rollback(args.alias, args.version, registry, store), indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ragops", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    def index_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--collection", required=True, help="alias to index into (capitalised, e.g. SciFact)")
        p.add_argument("--mode", choices=["incremental", "full"], default="incremental")
        p.add_argument("--chunk-size", type=int, default=200)
        p.add_argument("--chunk-overlap", type=int, default=32)
        p.add_argument("--model", default="production", help="production | base | v<N> | a model folder")
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--keep-versions", type=int, default=3)
        p.add_argument("--run-id", default=None, help="a fixed run id makes a re-run update the same lineage run")

    beir = sub.add_parser("index-beir", help="index a BEIR folder and evaluate it against its qrels")
    beir.add_argument("--path", required=True)
    beir.add_argument("--split", default="test", help="qrels split to evaluate (qrels/<split>.tsv)")
    beir.add_argument("--modes", default="dense,keyword,hybrid")
    index_args(beir)
    folder = sub.add_parser("index", help="index a folder of Markdown, reStructuredText, HTML and text")
    folder.add_argument("--source", required=True)
    folder.add_argument("--name", default=None)
    index_args(folder)
    ev = sub.add_parser("evaluate", help="evaluate the live collection of an alias against BEIR qrels")
    ev.add_argument("--path", required=True)
    ev.add_argument("--collection", required=True)
    ev.add_argument("--split", default="test")
    ev.add_argument("--modes", default="dense,keyword,hybrid")
    lin = sub.add_parser("lineage", help="what is live, what produced it, with which params")
    lin.add_argument("what", choices=["live", "versions", "show", "runs", "documents"])
    lin.add_argument("--alias", default="RagDocs")
    lin.add_argument("--artifact", type=int)
    loop = sub.add_parser("loop", help="index, synthesize, finetune, evaluate on qrels, gate, re-index if promoted")
    loop.add_argument("--path", required=True)
    loop.add_argument("--split", default="test")
    loop.add_argument("--modes", default="dense,keyword,hybrid")
    loop.add_argument("--generator", choices=["offline", "llm", "auto"], default="auto")
    loop.add_argument("--sample-size", type=int, default=2000, help="chunks sampled for synthetic queries")
    loop.add_argument("--epochs", type=float, default=1.0)
    loop.add_argument("--train-batch", type=int, default=32)
    loop.add_argument("--lr", type=float, default=2e-5)
    loop.add_argument("--max-steps", type=int, default=-1)
    loop.add_argument("--margin", type=float, default=0.005)
    loop.add_argument("--max-queries", type=int, default=None, help="evaluate on the first N judged queries")
    loop.add_argument("--seed", type=int, default=13)
    index_args(loop)
    sub.add_parser("report", help="what is live, its metrics and lineage, the latest runs and alerts")
    rb = sub.add_parser("rollback", help="point an alias back at an earlier collection version")
    rb.add_argument("--alias", required=True)
    rb.add_argument("--version", type=int, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "index-beir":
        from pathlib import Path

        _index(args, {"type": "beir", "path": args.path, "name": Path(args.path).name})
        _evaluate(args)
    elif args.command == "index":
        from pathlib import Path

        source = Path(args.source).resolve()
        _index(args, {"type": "folder", "path": str(source), "name": args.name or source.name, "root": str(source)})
    elif args.command == "evaluate":
        _evaluate(args)
    elif args.command == "lineage":
        _lineage(args)
    elif args.command == "loop":
        _loop(args)
    elif args.command == "report":
        _report(args)
    elif args.command == "rollback":
        _rollback(args)
    return 0
