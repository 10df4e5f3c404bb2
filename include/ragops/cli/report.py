"""Commands that read the lineage registry: lineage, report."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ragops.cli.common import services
from ragops.vocabulary import DEFAULT_ALIAS, MODEL_NAME, AliasKind, ArtifactKind


def add_commands(sub: Any) -> None:
    lin = sub.add_parser("lineage", help="what is live, what produced it, with which params")
    lin.add_argument("what", choices=["live", "versions", "show", "runs", "documents"])
    lin.add_argument("--alias", default=DEFAULT_ALIAS)
    lin.add_argument("--artifact", type=int)
    lin.set_defaults(run=lineage)
    rep = sub.add_parser("report", help="what is live, its metrics and lineage, the latest runs and alerts")
    rep.set_defaults(run=report)


def lineage(args: argparse.Namespace) -> None:
    svc = services()
    registry = svc.registry
    out: Any
    if args.what == "live":
        out = registry.live()
        for row in out:
            row["lineage"] = [{k: a[k] for k in ("kind", "name", "version", "relation", "uri")}
                              for a in registry.ancestors(row["artifact_id"])]
    elif args.what == "versions":
        out = [a.summary() | {"metrics": a.metrics, "params": a.params}
               for a in registry.list_artifacts(ArtifactKind.COLLECTION, args.alias)]
    elif args.what == "show":
        art = registry.get_artifact(args.artifact) if args.artifact is not None else None
        if art is None:
            raise ValueError(f"no artifact {args.artifact} (give --artifact ID)")
        out = {"artifact": art.as_dict(), "ancestors": registry.ancestors(art.id),
               "derived": [{"relation": rel, **child.summary(), "metrics": child.metrics}
                           for child, rel in registry.children(art.id)]}
    elif args.what == "documents":
        live = registry.get_alias(AliasKind.COLLECTION, args.alias)
        if live is None:
            raise ValueError(f"no live collection behind alias {args.alias!r}")
        corpus = registry.corpus_of(live.id)
        if corpus is None:
            raise ValueError(f"collection {live.uri} records no corpus")
        table = svc.artifacts.read_table(svc.artifacts.rel_of(corpus["uri"])).select(["doc_id", "source", "content_hash"])
        out = {"collection": live.uri, "corpus": f"v{corpus['version']}", "documents": table.to_pylist()}
    else:
        out = registry.recent_runs(20)
    print(json.dumps(out, indent=2, default=str))


def report(args: argparse.Namespace) -> None:
    """What is live, with its metrics and lineage; the latest runs; data quality; alerts."""
    registry = services().registry
    print("# ragops: what is live")
    for row in registry.live():
        label = f"alias {row['alias']}" if row["alias_kind"] == AliasKind.COLLECTION else f"{row['kind']} stage production"
        print(f"\n## {label} -> {row['kind']} {row['name']} v{row['version']} ({row['uri']})")
        print(f"built by {row['dag_id']}/{row['run_id']}")
        print(f"params:  {json.dumps(row['params'], default=str)}")
        print(f"metrics: {json.dumps(row['metrics'], default=str)}")
        for child, relation in registry.children(row["artifact_id"]):
            if child.kind == ArtifactKind.EVALUATION:
                print(f"{relation} by {child.name} v{child.version}: {json.dumps(child.metrics, default=str)}")
        print("lineage:")
        for a in registry.ancestors(row["artifact_id"]):
            print(f"  {'  ' * (a['depth'] - 1)}<- {a['relation']}: {a['kind']} {a['name']} v{a['version']} "
                  f"{json.dumps({k: v for k, v in (a['metrics'] or {}).items() if not isinstance(v, list | dict)})}")
    print("\n## embedding models")
    for model in registry.list_artifacts(ArtifactKind.MODEL, MODEL_NAME):
        gate = (model.metrics or {}).get("gate") or {}
        print(f"  v{model.version} stage={model.stage or '-'} status={model.status} {model.uri}"
              + (f"  gate: {gate.get('decision')} {'; '.join(gate.get('reasons') or [])}" if gate else ""))
    print("\n## latest runs")
    for run in registry.recent_runs(8):
        names = ", ".join(f"{f['service']} -> {f['using']}" for f in run["fallbacks"] or [])
        print(f"  {run['status']:8} {run['run_key']}" + (f"  [fallbacks: {names}]" if names else ""))
    print("\n## data quality")
    for dq in registry.dq_results(limit=8):
        print(f"  {'pass' if dq['success'] else 'FAIL'} {dq['suite']} {dq['target']}")
    alerts = registry.alerts(limit=5)
    print("\n## alerts" + ("" if alerts else ": none"))
    for alert in alerts:
        print(f"  [{alert['severity']}] {alert['title']}: {alert['message'][:200]}")
