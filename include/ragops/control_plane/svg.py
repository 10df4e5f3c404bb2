"""Server-side SVG: line charts and the lineage graph, drawn from escaped text only.

Every string that reaches the markup (names, relations, labels) goes through ``markupsafe.escape``;
numbers are formatted here. No SVG an artifact provides is ever embedded: a chart is redrawn from
the registry's numbers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str                       # the hover text
    testid: str = ""


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True)
class Marker:
    """A vertical line on the x axis (a promotion, an alias move)."""

    x: float
    label: str
    testid: str = ""


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    x_ticks: tuple[tuple[float, str], ...] = ()
    markers: tuple[Marker, ...] = ()
    y_label: str = ""
    testid: str = ""
    width: int = 640
    height: int = 260


def _attr(name: str, value: object) -> str:
    return f' {name}="{escape(str(value))}"' if value not in ("", None) else ""


def _span(values: Iterable[float], pad: float) -> tuple[float, float]:
    values = list(values)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-12:
        low, high = low - pad, high + pad
    return low, high


def line_chart(chart: Chart) -> Markup:
    """One SVG chart: a polyline and circles per series, dashed markers, ticks and a legend."""
    left, right, top, bottom = 56, 150, 42, 36
    w, h = chart.width, chart.height
    xs = [p.x for s in chart.series for p in s.points] + [m.x for m in chart.markers] + [t[0] for t in chart.x_ticks]
    x_low, x_high = _span(xs, 1.0)
    y_low, y_high = _span([p.y for s in chart.series for p in s.points], 0.05)

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * (w - left - right)

    def sy(y: float) -> float:
        return h - bottom - (y - y_low) / (y_high - y_low) * (h - top - bottom)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" role="img"{_attr("data-testid", chart.testid)}>',
           f"<title>{escape(chart.title)}</title>",
           f'<text x="{left}" y="16" class="chart-title">{escape(chart.title)}</text>',
           f'<line x1="{left}" y1="{h - bottom}" x2="{w - right}" y2="{h - bottom}" stroke="#888"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{h - bottom}" stroke="#888"/>']
    for value in (y_low, (y_low + y_high) / 2, y_high):
        out.append(f'<text x="{left - 6}" y="{sy(value) + 4:.1f}" text-anchor="end" class="tick">{value:.3f}</text>')
    if chart.y_label:
        out.append(f'<text x="4" y="{top - 12}" class="tick">{escape(chart.y_label)}</text>')
    for x, text in chart.x_ticks:
        out.append(f'<text x="{sx(x):.1f}" y="{h - bottom + 16}" text-anchor="middle" class="tick">{escape(text)}</text>')
    for marker in chart.markers:
        mx = sx(marker.x)
        out.append(f'<g class="marker"{_attr("data-testid", marker.testid)}><title>{escape(marker.label)}</title>'
                   f'<line x1="{mx:.1f}" y1="{top}" x2="{mx:.1f}" y2="{h - bottom}" stroke="#999" '
                   f'stroke-dasharray="4 3"/></g>')
    for index, series in enumerate(chart.series):
        color = PALETTE[index % len(PALETTE)]
        points = sorted(series.points, key=lambda p: p.x)
        if len(points) > 1:
            coords = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in points)
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{coords}"/>')
        for p in points:
            out.append(f'<circle cx="{sx(p.x):.1f}" cy="{sy(p.y):.1f}" r="4" fill="{color}"'
                       f'{_attr("data-testid", p.testid)} data-value="{p.y:.6g}"><title>{escape(p.label)}</title>'
                       "</circle>")
        ly = top + 14 * index
        out.append(f'<rect x="{w - right + 10}" y="{ly}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{w - right + 24}" y="{ly + 9}" class="tick">{escape(series.name)}</text>')
    out.append("</svg>")
    return Markup("".join(out))


# -- the lineage graph -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphNode:
    id: int
    title: str                       # e.g. "collection RagDocs v3"
    detail: str = ""                 # e.g. the status or stage
    href: str = ""


@dataclass(frozen=True)
class GraphEdge:
    parent: int
    child: int
    relation: str


@dataclass
class Layout:
    layer: dict[int, int] = field(default_factory=dict)
    row: dict[int, int] = field(default_factory=dict)


def layered(nodes: Sequence[int], edges: Sequence[GraphEdge]) -> Layout:
    """Parents left of children: each node's layer is its longest path from a node without parents."""
    parents: dict[int, list[int]] = defaultdict(list)
    for e in edges:
        parents[e.child].append(e.parent)
    layout = Layout()

    def layer_of(node: int, seen: frozenset[int] = frozenset()) -> int:
        if node not in layout.layer:
            ups = [p for p in parents.get(node, []) if p not in seen and p in set(nodes)]
            layout.layer[node] = 1 + max((layer_of(p, seen | {node}) for p in ups), default=-1)
        return layout.layer[node]

    per_layer: dict[int, int] = defaultdict(int)
    for node in sorted(nodes):
        layer = layer_of(node)
        layout.row[node] = per_layer[layer]
        per_layer[layer] += 1
    return layout


def lineage_svg(nodes: Sequence[GraphNode], edges: Sequence[GraphEdge], focus: int) -> Markup:
    """The graph: one linked box per artifact (``data-testid="node-<id>"``), one arrow per edge
    (``data-testid="edge-<parent>-<child>"``, titled with its relation)."""
    node_w, node_h, gap_x, gap_y, pad = 210, 44, 70, 18, 12
    layout = layered([n.id for n in nodes], edges)
    layers = max(layout.layer.values(), default=0) + 1
    rows = max(layout.row.values(), default=0) + 1
    w, h = pad * 2 + layers * node_w + (layers - 1) * gap_x, pad * 2 + rows * node_h + (rows - 1) * gap_y

    def box(node_id: int) -> tuple[float, float]:
        return pad + layout.layer[node_id] * (node_w + gap_x), pad + layout.row[node_id] * (node_h + gap_y)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" role="img" data-testid="lineage-graph">',
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#666"/></marker></defs>']
    known = {n.id for n in nodes}
    for e in edges:
        if e.parent not in known or e.child not in known:
            continue
        (px, py), (cx, cy) = box(e.parent), box(e.child)
        out.append(f'<g class="edge" data-testid="edge-{e.parent}-{e.child}" data-relation="{escape(e.relation)}">'
                   f"<title>{escape(e.relation)}</title>"
                   f'<line x1="{px + node_w:.0f}" y1="{py + node_h / 2:.0f}" x2="{cx:.0f}" y2="{cy + node_h / 2:.0f}" '
                   'stroke="#666" marker-end="url(#arrow)"/></g>')
    for n in nodes:
        x, y = box(n.id)
        fill = "#fff3c4" if n.id == focus else "#eef3fb"
        out.append(f'<a href="{escape(n.href)}" data-testid="node-{n.id}"><title>{escape(n.title)}</title>'
                   f'<rect x="{x:.0f}" y="{y:.0f}" width="{node_w}" height="{node_h}" rx="6" fill="{fill}" '
                   'stroke="#5b7db1"/>'
                   f'<text x="{x + 8:.0f}" y="{y + 18:.0f}" class="node-title">{escape(_clip(n.title))}</text>'
                   f'<text x="{x + 8:.0f}" y="{y + 35:.0f}" class="node-detail">{escape(_clip(n.detail))}</text></a>')
    out.append("</svg>")
    return Markup("".join(out))


def _clip(text: str, width: int = 30) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
