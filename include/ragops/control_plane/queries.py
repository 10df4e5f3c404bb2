"""Page data: what each control-plane page shows, read from the registry and the artifact store.

Each function takes ``Services`` (only its registry and artifact store are used) and returns plain
dicts and lists for the templates. Nothing here writes anything: actions go through Airflow
(``ragops.control_plane.actions``).
"""

from __future__ import annotations

import logging
from typing import Any

from ragops.lineage import Artifact
from ragops.services import Services
from ragops.vocabulary import (
    CONTINUOUS_EVAL_NAME,
    LLM_MODEL_NAME,
    MODEL_NAME,
    NEVER_LIVE,
    RERANKER_NAME,
    AliasKind,
    ArtifactKind,
    Relation,
    Stage,
)

log = logging.getLogger(__name__)

# Dataset rows shown per version, and document ids listed per side of a diff.
SAMPLE_ROWS = 5
DIFF_LISTED = 200
# Descendants drawn in one lineage graph (the rest are counted).
MAX_GRAPH_DESCENDANTS = 60
# The models a rollback DAG serves (registry name -> DAG id); others are shown without the action.
MODEL_ROLLBACK_DAGS = {MODEL_NAME: "rag_model_rollback", LLM_MODEL_NAME: "rag_llm_rollback",
                       RERANKER_NAME: "rag_reranker_rollback"}
COLLECTION_ROLLBACK_DAG = "rag_collection_rollback"
INDEX_DAG = "rag_index"
EVALUATE_DAG = "rag_evaluate"


def gates_of(svc: Services, artifact_id: int) -> list[Artifact]:
    """The gate evaluations that judged an artifact (a collection or a model version)."""
    return [child for child, relation in svc.registry.children(artifact_id)
            if child.kind == ArtifactKind.EVALUATION and relation == Relation.EVALUATES
            and child.name.endswith("-gate")]


# -- collections -----------------------------------------------------------------------------------
def collections_index(svc: Services) -> list[dict[str, Any]]:
    registry = svc.registry
    names = sorted(set(registry.aliases(AliasKind.COLLECTION)) | set(registry.artifact_names(ArtifactKind.COLLECTION)))
    return [{"alias": alias, "live": registry.get_alias(AliasKind.COLLECTION, alias),
             "versions": len(registry.list_artifacts(ArtifactKind.COLLECTION, alias))} for alias in names]


def collection_detail(svc: Services, alias: str) -> dict[str, Any] | None:
    registry = svc.registry
    versions = registry.list_artifacts(ArtifactKind.COLLECTION, alias)
    if not versions:
        return None
    live = registry.get_alias(AliasKind.COLLECTION, alias)
    times = registry.created_at(a.id for a in versions)
    rows = []
    for index, art in reversed(list(enumerate(versions))):
        rollback_ok = (live is None or art.id != live.id) and art.status not in NEVER_LIVE
        rows.append({"artifact": art, "created_at": times.get(art.id), "gates": gates_of(svc, art.id),
                     "rollback": rollback_ok, "previous": versions[index - 1].id if index else None})
    return {"alias": alias, "live": live, "versions": rows,
            "history": registry.alias_timeline(AliasKind.COLLECTION, alias)}


def _documents(svc: Services, collection: Artifact) -> dict[str, str] | None:
    """doc_id -> content hash of the corpus snapshot a collection was built from."""
    corpus = svc.registry.corpus_of(collection.id)
    if corpus is None:
        return None
    table = svc.artifacts.read_table(svc.artifacts.rel_of(corpus["uri"]))
    data = table.select(["doc_id", "content_hash"]).to_pydict()
    return dict(zip(data["doc_id"], data["content_hash"], strict=True))


def collection_diff(svc: Services, alias: str, before_id: int, after_id: int) -> dict[str, Any]:
    """Documents added, changed and removed from one version's corpus snapshot to another's."""
    found = svc.registry.artifacts_by_id([before_id, after_id])
    before, after = found.get(before_id), found.get(after_id)
    for art in (before, after):
        if art is None or art.kind != ArtifactKind.COLLECTION or art.name != alias:
            return {"error": f"both ids must be versions of the collection {alias}"}
    assert before is not None and after is not None
    try:
        old, new = _documents(svc, before), _documents(svc, after)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        log.warning("diff %s..%s: a corpus snapshot could not be read: %s", before_id, after_id, exc)
        return {"before": before, "after": after, "error": "a corpus snapshot could not be read from the artifact store"}
    if old is None or new is None:
        return {"before": before, "after": after, "error": "a version has no corpus snapshot in its lineage"}
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    changed = sorted(d for d in set(old) & set(new) if old[d] != new[d])
    return {"before": before, "after": after, "counts": {"added": len(added), "changed": len(changed),
                                                         "removed": len(removed), "unchanged": len(set(old) & set(new)) - len(changed)},
            "added": added[:DIFF_LISTED], "changed": changed[:DIFF_LISTED], "removed": removed[:DIFF_LISTED],
            "listed": DIFF_LISTED}


# -- models ----------------------------------------------------------------------------------------
def _report(svc: Services, evaluation: Artifact) -> dict[str, Any] | None:
    """A gate evaluation's report (``models[label].metrics[set][dim]``), when it has one."""
    try:
        report = svc.artifacts.read_json(svc.artifacts.rel_of(evaluation.uri))
    except (FileNotFoundError, ValueError, OSError):
        return None
    return report if isinstance(report, dict) and isinstance(report.get("models"), dict) else None


def dim_curves(report: dict[str, Any], metric: str = "ndcg@10") -> dict[str, dict[str, list[tuple[int, float]]]]:
    """set -> model label (base, live, candidate) -> [(dim, metric)] from an embedding model report."""
    curves: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for label, entry in report.get("models", {}).items():
        for set_name, per_dim in (entry.get("metrics") or {}).items():
            if not isinstance(per_dim, dict):
                continue
            points = sorted((int(dim), float(values[metric])) for dim, values in per_dim.items()
                            if str(dim).isdigit() and isinstance(values, dict) and metric in values)
            if points:
                curves.setdefault(set_name, {})[label] = points
    return curves


def models_detail(svc: Services) -> list[dict[str, Any]]:
    registry = svc.registry
    timeline = registry.stage_timeline(ArtifactKind.MODEL)
    models = []
    for name in registry.artifact_names(ArtifactKind.MODEL):
        versions = registry.list_artifacts(ArtifactKind.MODEL, name)
        history = [h for h in timeline if h["name"] == name]
        was_production = {h["artifact_id"] for h in history if h["to_stage"] == Stage.PRODUCTION}
        rows = []
        for art in reversed(versions):
            gates = []
            for evaluation in gates_of(svc, art.id):
                report = _report(svc, evaluation)
                gates.append({"artifact": evaluation, "decision": evaluation.metrics.get("decision"),
                              "reasons": evaluation.metrics.get("reasons") or [],
                              "curves": dim_curves(report) if report else {}})
            rows.append({"artifact": art, "gates": gates,
                         "rollback": (art.stage == Stage.ARCHIVED and art.id in was_production
                                      and name in MODEL_ROLLBACK_DAGS)})
        models.append({"name": name, "versions": rows, "history": history,
                       "production": next((a for a in versions if a.stage == Stage.PRODUCTION), None),
                       "rollback_dag": MODEL_ROLLBACK_DAGS.get(name)})
    return models


# -- datasets --------------------------------------------------------------------------------------
def dataset_rows_total(art: Artifact) -> int | None:
    m = art.metrics or {}
    if "rows_train" in m or "rows_test" in m:
        return int(m.get("rows_train") or 0) + int(m.get("rows_test") or 0)
    return None


def dataset_sample(svc: Services, art: Artifact, limit: int = SAMPLE_ROWS) -> list[dict[str, Any]] | None:
    """The first rows of each split, read through the artifact store (None: not readable)."""
    from ragops.synthetic.dataset import dataset_rows

    try:
        splits = dataset_rows(svc.artifacts, svc.artifacts.rel_of(art.uri))
    except (FileNotFoundError, ValueError, OSError) as exc:
        log.warning("dataset %s could not be read for its sample: %s", art.id, exc)
        return None
    return [{"split": name, **row} for name, rows in splits.items() for row in rows[:limit]]


def datasets_detail(svc: Services, sample_id: int | None = None) -> dict[str, Any]:
    registry = svc.registry
    reviews = registry.list_artifacts(ArtifactKind.REVIEW)
    labels = {a.id: a for a in registry.list_artifacts(ArtifactKind.LABELS)}
    datasets = []
    for name in registry.artifact_names(ArtifactKind.DATASET):
        versions = list(reversed(registry.list_artifacts(ArtifactKind.DATASET, name)))
        rows = []
        for art in versions:
            rows.append({"artifact": art, "rows": dataset_rows_total(art),
                         "filter_counts": (art.metrics or {}).get("filter_counts") or {},
                         "label_sources": (art.metrics or {}).get("label_sources") or {},
                         "reviews": [r for r in reviews if r.params.get("dataset_id") == art.id],
                         "labels": labels.get(art.params.get("labels_id"))})
        datasets.append({"name": name, "versions": rows})
    chosen = None
    if sample_id is not None:
        chosen = registry.get_artifact(sample_id)
        chosen = chosen if chosen is not None and chosen.kind == ArtifactKind.DATASET else None
    elif datasets and datasets[0]["versions"]:
        chosen = datasets[0]["versions"][0]["artifact"]
    sample = dataset_sample(svc, chosen) if chosen is not None else None
    return {"datasets": datasets, "sample_of": chosen, "sample": sample, "labels": list(labels.values())}


# -- runs ------------------------------------------------------------------------------------------
def runs_detail(svc: Services, dag_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    registry = svc.registry
    runs = [r for r in registry.run_log(limit * 4 if dag_id else limit) if dag_id is None or r["dag_id"] == dag_id]
    runs = runs[:limit]
    keys = {r["run_key"] for r in runs}
    dq = [d for d in registry.dq_results(limit=limit * 20) if d["run_key"] in keys]
    alerts = [a for a in registry.alerts(limit=limit * 20) if a["run_key"] in keys]
    for run in runs:
        run["dq"] = [d for d in reversed(dq) if d["run_key"] == run["run_key"]]
        run["alerts"] = [a for a in reversed(alerts) if a["run_key"] == run["run_key"]]
    return runs


# -- lineage ---------------------------------------------------------------------------------------
def lineage_detail(svc: Services, artifact_id: int) -> dict[str, Any] | None:
    registry = svc.registry
    focus = registry.get_artifact(artifact_id)
    if focus is None:
        return None
    ids, edges = registry.neighbourhood(artifact_id)
    up = {a["id"] for a in registry.ancestors(artifact_id)}
    down = sorted(ids - up - {artifact_id})
    # A base model's descendants are every collection and evaluation ever made: draw the oldest few.
    shown = up | {artifact_id} | set(down[:MAX_GRAPH_DESCENDANTS])
    found = registry.artifacts_by_id(shown)
    return {"focus": focus, "artifacts": found,
            "edges": [e for e in edges if e["parent_id"] in shown and e["child_id"] in shown],
            "ancestors": [found[i] for i in sorted(up) if i in found],
            "descendants": [found[i] for i in down if i in found], "hidden": max(len(down) - MAX_GRAPH_DESCENDANTS, 0)}


# -- evaluations -----------------------------------------------------------------------------------
def evaluation_series(svc: Services) -> dict[str, Any]:
    """rag_evaluate's results as (set, metric) -> [(time, value, artifact)], and the promotions."""
    registry = svc.registry
    results = registry.list_artifacts(ArtifactKind.EVALUATION, CONTINUOUS_EVAL_NAME)
    times = registry.created_at(a.id for a in results)
    series: dict[tuple[str, str], list[tuple[Any, float, Artifact]]] = {}
    for art in results:
        for set_name, metrics in ((art.metrics or {}).get("sets") or {}).items():
            if not isinstance(metrics, dict):
                continue
            for metric, value in metrics.items():
                if metric in ("queries", "by_source") or isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                series.setdefault((set_name, metric), []).append((times[art.id], float(value), art))
    promotions = [{"at": h["changed_at"], "label": f"collection {h['alias']} -> artifact {h['to_artifact_id']} "
                   f"({h['reason']})", "artifact_id": h["to_artifact_id"]}
                  for h in registry.alias_timeline(AliasKind.COLLECTION)]
    promotions += [{"at": h["changed_at"], "label": f"model {h['name']} v{h['version']} -> production ({h['reason']})",
                    "artifact_id": h["artifact_id"]}
                   for h in registry.stage_timeline(ArtifactKind.MODEL) if h["to_stage"] == Stage.PRODUCTION]
    return {"series": dict(sorted(series.items())), "promotions": sorted(promotions, key=lambda p: p["at"]),
            "results": list(reversed(results))}
