"""The pages: page data (``queries``) through Jinja2 templates, autoescape on, charts drawn in ``svg``.

Every value from the registry or an artifact is text to the templates: autoescaping is on for
every template, and the only markup that is not escaped is the SVG this package draws (itself
built from escaped text).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, select_autoescape

from ragops.control_plane import queries
from ragops.control_plane.svg import Chart, GraphEdge, GraphNode, Marker, Point, Series, line_chart, lineage_svg
from ragops.services import Services
from ragops.vocabulary import CONTROL_PLANE_PREFIX, AliasKind

MODEL_CHART_METRIC = "ndcg@10"
# How far before an evaluation series its chart still marks promotions (at least).
PROMOTION_LOOKBACK_S = 24 * 3600


@cache
def environment() -> Environment:
    return Environment(loader=PackageLoader("ragops.control_plane", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def render(template: str, title: str, *, csrf: str = "", prefix: str = CONTROL_PLANE_PREFIX, **values: Any) -> str:
    return environment().get_template(template).render(title=title, prefix=prefix, csrf=csrf, **values)


def airflow_run_path(dag_id: str, run_id: str) -> str:
    """A DAG run's page in the Airflow UI (the plugin is served on the same origin)."""
    return f"/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def overview(svc: Services, **ctx: Any) -> str:
    live = [dict(row, run_url=airflow_run_path(row["dag_id"], row["run_id"]) if row.get("dag_id") else "")
            for row in svc.registry.live()]
    return render("overview.html", "RAG control plane", live=live, **ctx)


def collections(svc: Services, **ctx: Any) -> str:
    return render("collections.html", "Collections", collections=queries.collections_index(svc), **ctx)


def collection(svc: Services, alias: str, compare: tuple[int, int] | None = None, **ctx: Any) -> str | None:
    detail = queries.collection_detail(svc, alias)
    if detail is None:
        return None
    diff = queries.collection_diff(svc, alias, *compare) if compare else None
    return render("collection.html", f"Collection {alias}", c=detail, diff=diff, **ctx)


def model_charts(curves: dict[str, dict[str, list[tuple[int, float]]]], gate_id: int) -> list[Any]:
    """One chart per evaluation set: the metric by Matryoshka dim, one line per model (base, live, candidate)."""
    charts = []
    for set_name, per_label in curves.items():
        dims = sorted({d for points in per_label.values() for d, _ in points})
        position = {d: i for i, d in enumerate(dims)}
        series = tuple(Series(label, tuple(Point(position[d], v, f"{label} @ {d} dims: {v:.4f}",
                                                 f"dim-point-{gate_id}-{set_name}-{label}-{d}") for d, v in points))
                       for label, points in per_label.items())
        charts.append(line_chart(Chart(f"{MODEL_CHART_METRIC} by dim on {set_name}", series,
                                       tuple((position[d], str(d)) for d in dims), y_label=MODEL_CHART_METRIC,
                                       testid=f"dim-chart-{gate_id}-{set_name}", width=520, height=220)))
    return charts


def models(svc: Services, **ctx: Any) -> str:
    detail = queries.models_detail(svc)
    for model in detail:
        for version in model["versions"]:
            for gate in version["gates"]:
                gate["charts"] = model_charts(gate["curves"], gate["artifact"].id)
    return render("models.html", "Models", models=detail, **ctx)


def datasets(svc: Services, sample_id: int | None = None, **ctx: Any) -> str:
    detail = queries.datasets_detail(svc, sample_id)
    columns: list[str] = []
    for row in detail["sample"] or []:
        columns += [k for k in row if k not in columns]
    return render("datasets.html", "Datasets", sample_columns=columns, **detail, **ctx)


def runs(svc: Services, dag_id: str | None = None, **ctx: Any) -> str:
    rows = queries.runs_detail(svc, dag_id)
    for row in rows:
        row["airflow_url"] = airflow_run_path(row["dag_id"], row["run_id"])
    return render("runs.html", "Runs", runs=rows, dag_id=dag_id, **ctx)


def lineage(svc: Services, artifact_id: int, prefix: str = CONTROL_PLANE_PREFIX, **ctx: Any) -> str | None:
    detail = queries.lineage_detail(svc, artifact_id)
    if detail is None:
        return None
    nodes = [GraphNode(a.id, f"{a.kind} {a.name} v{a.version}", " · ".join(x for x in (a.status, a.stage or "") if x),
                       f"{prefix}/lineage/{a.id}") for a in detail["artifacts"].values()]
    edges = [GraphEdge(e["parent_id"], e["child_id"], e["relation"]) for e in detail["edges"]]
    graph = lineage_svg(nodes, edges, artifact_id)
    focus = detail["focus"]
    return render("lineage.html", f"Lineage of {focus.kind} {focus.name} v{focus.version}", l=detail, graph=graph,
                  prefix=prefix, **ctx)


def _epoch(at: datetime) -> float:
    return at.timestamp()


def evaluation_charts(data: dict[str, Any]) -> list[Any]:
    """One chart per (set, metric): a point per rag_evaluate result, promotions as markers."""
    charts = []
    for (set_name, metric), points in data["series"].items():
        times = [_epoch(at) for at, _, _ in points]
        # Promotions during the series, and shortly before it (what the first point already measured).
        lo, hi = min(times) - max(max(times) - min(times), PROMOTION_LOOKBACK_S), max(times)
        markers = tuple(Marker(_epoch(p["at"]), p["label"], f"promotion-{p['artifact_id']}")
                        for p in data["promotions"] if lo <= _epoch(p["at"]) <= hi)
        labelled: dict[str, float] = {}
        for t, (at, _, _) in sorted(zip(times, points, strict=True), key=lambda item: item[0]):
            labelled.setdefault(at.strftime("%Y-%m-%d %H:%M"), t)  # one tick per distinct minute
        ticks = sorted((t, text) for text, t in labelled.items())
        if len(ticks) > 3:
            ticks = [ticks[0], ticks[len(ticks) // 2], ticks[-1]]
        series = Series(set_name, tuple(
            Point(_epoch(at), value, f"{set_name} {metric} = {value:.4f} (evaluation {art.id}, "
                                     f"collection {art.params.get('collection_id')}, model {art.params.get('model_id')})",
                  f"eval-point-{art.id}-{set_name}-{metric}") for at, value, art in points))
        charts.append(line_chart(Chart(f"{metric} on {set_name}", (series,), tuple(ticks), markers, y_label=metric,
                                       testid=f"eval-chart-{set_name}-{metric}")))
    return charts


def evaluations(svc: Services, **ctx: Any) -> str:
    data = queries.evaluation_series(svc)
    return render("evaluations.html", "Evaluations", charts=evaluation_charts(data), results=data["results"],
                  aliases=svc.registry.aliases(AliasKind.COLLECTION), **ctx)


def message(title: str, *, run: Any = None, error: str | None = None, back: str = "", **ctx: Any) -> str:
    return render("message.html", title, run=run, error=error, back=back or f"{ctx.get('prefix', CONTROL_PLANE_PREFIX)}/",
                  **ctx)
