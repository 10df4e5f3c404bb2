"""The control plane's rendering without Airflow: SVG charts and lineage graphs from escaped text,
autoescaped templates, and the pure helpers (dim curves, CSRF tokens)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from ragops.control_plane import actions, pages, queries
from ragops.control_plane.svg import (
    Chart,
    GraphEdge,
    GraphNode,
    Marker,
    Point,
    Series,
    layered,
    line_chart,
    lineage_svg,
)
from ragops.lineage import Artifact

HOSTILE = '<script>alert("x")</script><svg onload="alert(1)">'
NS = "{http://www.w3.org/2000/svg}"


def test_line_chart_is_valid_svg_with_every_point_and_escaped_text():
    chart = line_chart(Chart(HOSTILE, (Series(HOSTILE, (Point(1, 0.5, HOSTILE, "p-1"), Point(2, 0.7, "b", "p-2"))),),
                             ((1, HOSTILE), (2, "two")), (Marker(1.5, HOSTILE, "m-1"),), y_label="ndcg@10"))
    svg = ET.fromstring(str(chart))  # well-formed: nothing hostile broke out of its text node
    assert "<script" not in chart and "onload=" not in chart.replace("onload=&#34;", "")
    circles = {c.get("data-testid"): float(c.get("data-value")) for c in svg.iter(f"{NS}circle")}
    assert circles == {"p-1": 0.5, "p-2": 0.7}
    assert [g.get("data-testid") for g in svg.iter(f"{NS}g")] == ["m-1"]
    assert not any(el.get("onload") for el in svg.iter())
    # Higher values are drawn higher (smaller y).
    y = {c.get("data-testid"): float(c.get("cy")) for c in svg.iter(f"{NS}circle")}
    assert y["p-2"] < y["p-1"]


def test_a_single_point_chart_still_draws():
    svg = ET.fromstring(str(line_chart(Chart("one", (Series("s", (Point(5, 0.3, "x", "only"),)),)))))
    [circle] = list(svg.iter(f"{NS}circle"))
    assert circle.get("data-testid") == "only"


def test_lineage_layout_puts_parents_left_of_children():
    edges = [GraphEdge(1, 2, "chunked_from"), GraphEdge(2, 3, "embedded_from"), GraphEdge(9, 3, "embedded_with"),
             GraphEdge(3, 4, "evaluates")]
    layout = layered([1, 2, 3, 4, 9], edges)
    for e in edges:
        assert layout.layer[e.parent] < layout.layer[e.child]
    assert layout.layer[3] == 2  # its longest path: 1 -> 2 -> 3


def test_lineage_graph_links_every_node_and_escapes_names():
    nodes = [GraphNode(1, f"corpus {HOSTILE}", "loaded", "/ragops/lineage/1"),
             GraphNode(2, "chunks RagDocs v1", "chunked", "/ragops/lineage/2")]
    markup = lineage_svg(nodes, [GraphEdge(1, 2, HOSTILE), GraphEdge(1, 77, "dangling")], focus=2)
    svg = ET.fromstring(str(markup))
    links = {a.get("data-testid"): a.get("href") for a in svg.iter(f"{NS}a")}
    assert links == {"node-1": "/ragops/lineage/1", "node-2": "/ragops/lineage/2"}
    edges = [g for g in svg.iter(f"{NS}g") if g.get("class") == "edge"]
    assert [(g.get("data-testid"), g.get("data-relation")) for g in edges] == [("edge-1-2", HOSTILE)]
    assert "<script" not in markup


def test_templates_autoescape_registry_values():
    run = {"run_key": "rag_index/r1", "dag_id": "rag_index", "run_id": f"r1{HOSTILE}", "status": "success",
           "summary": {"note": HOSTILE}, "fallbacks": [{"service": HOSTILE, "using": "x", "reason": "y"}],
           "started_at": datetime(2026, 11, 1, tzinfo=UTC), "dq": [], "alerts": [],
           "airflow_url": pages.airflow_run_path("rag_index", f"r1{HOSTILE}")}
    html = pages.render("runs.html", "Runs", runs=[run], dag_id=None)
    assert "<script" not in html and "&lt;script&gt;" in html
    assert re.search(r'href="/dags/rag_index/runs/r1%3Cscript%3E', html)


def test_action_result_links_the_airflow_run():
    run = actions.TriggeredRun("rag_collection_rollback", "manual__2026-11-23T07:00:00+00:00", "queued", "roll back")
    html = pages.message("Triggered", run=run)
    assert 'href="/dags/rag_collection_rollback/runs/manual__2026-11-23T07%3A00%3A00%2B00%3A00"' in html


def test_dim_curves_read_a_model_gate_report():
    report = {"models": {"base": {"metrics": {"test": {"384": {"ndcg@10": 0.6}, "64": {"ndcg@10": 0.4}}}},
                         "candidate": {"metrics": {"test": {"384": {"ndcg@10": 0.7}}, "broken": "x"}}}}
    assert queries.dim_curves(report) == {"test": {"base": [(64, 0.4), (384, 0.6)], "candidate": [(384, 0.7)]}}


def test_dataset_rows_total_from_split_counts():
    art = Artifact(1, "dataset", "d", 1, "h", "/x", metrics={"rows_train": 7, "rows_test": 2})
    assert queries.dataset_rows_total(art) == 9
    assert queries.dataset_rows_total(Artifact(2, "dataset", "d", 2, "h2", "/y")) is None


@pytest.mark.parametrize("other", ["", "another-jwt"])
def test_csrf_tokens_are_bound_to_the_session(other):
    token = actions.csrf_token("jwt-of-alice")
    assert actions.csrf_ok("jwt-of-alice", token)
    assert not actions.csrf_ok("jwt-of-alice", other and actions.csrf_token(other))
    assert not actions.csrf_ok("jwt-of-alice", None)
