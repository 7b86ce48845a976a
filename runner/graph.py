"""The plan's dependency graph as a picture: a layered layout and its SVG (pure, no I/O).

Layers are the dependency levels (``protocol.plangraph.levels``): a task stands one column right
of its deepest dependency. Within a column tasks are ordered by the mean row of their
dependencies (one barycentre sweep, ties by plan order), which untangles most plans without a
layout engine. The critical path (the longest chain by effort, of the tasks still to do) is drawn
in red; done tasks are grey.
"""

from __future__ import annotations

import itertools
import typing as t
from html import escape

from protocol.plan import Plan
from protocol.plangraph import critical_path, levels

NODE_W: t.Final = 168
NODE_H: t.Final = 44
GAP_X: t.Final = 64
GAP_Y: t.Final = 18
MARGIN: t.Final = 16
CRITICAL: t.Final = "#c0392b"
EDGE: t.Final = "#8a8f98"
NODE_FILL: t.Final = "#eef3fb"
NODE_STROKE: t.Final = "#4a6fa5"
DONE_FILL: t.Final = "#e4e4e4"


class Node(t.NamedTuple):
    id: str
    label: str
    layer: int
    row: int
    done: bool
    critical: bool

    @property
    def x(self) -> int:
        return MARGIN + self.layer * (NODE_W + GAP_X)

    @property
    def y(self) -> int:
        return MARGIN + self.row * (NODE_H + GAP_Y)


class Edge(t.NamedTuple):
    source: str
    target: str
    critical: bool


class Layout(t.NamedTuple):
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    critical_path: tuple[str, ...]
    critical_minutes: float

    @property
    def width(self) -> int:
        layers = 1 + max((n.layer for n in self.nodes), default=0)
        return 2 * MARGIN + layers * NODE_W + (layers - 1) * GAP_X

    @property
    def height(self) -> int:
        rows = 1 + max((n.row for n in self.nodes), default=0)
        return 2 * MARGIN + rows * NODE_H + (rows - 1) * GAP_Y


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def layout(plan: Plan) -> Layout:
    """Place every task of ``plan`` in its layer and row; mark the critical path."""
    tasks = list({task.id: task for task in plan.tasks}.values())
    level = levels(tasks)
    order = {task.id: number for number, task in enumerate(tasks)}
    deps = {task.id: [d for d in dict.fromkeys(task.blocked_by) if d in order] for task in tasks}
    minutes, path = critical_path([task for task in tasks if task.status != "done"])
    on_path = set(path)
    steps = set(itertools.pairwise(path))
    rows: dict[str, int] = {}
    for layer in range(1 + max(level.values(), default=-1)):
        ids = [tid for tid in order if level[tid] == layer]

        def weight(tid: str) -> tuple[float, int]:
            placed = [rows[d] for d in deps[tid] if d in rows]
            return (sum(placed) / len(placed) if placed else float(order[tid]), order[tid])

        for row, tid in enumerate(sorted(ids, key=weight)):
            rows[tid] = row
    by_id = {task.id: task for task in tasks}
    nodes = tuple(
        Node(
            id=tid,
            label=by_id[tid].subject or "",
            layer=level[tid],
            row=rows[tid],
            done=by_id[tid].status == "done",
            critical=tid in on_path,
        )
        for tid in order
    )
    edges = tuple(Edge(dep, tid, (dep, tid) in steps) for tid in order for dep in deps[tid])
    return Layout(nodes, edges, tuple(path), minutes)


def _edge_path(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_W, source.y + NODE_H // 2
    x2, y2 = target.x, target.y + NODE_H // 2
    bend = max((x2 - x1) // 2, 12)
    return f"M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}"


def svg(plan: Plan, *, title: str = "") -> str:
    """The plan's dependency graph as a standalone SVG document."""
    lay = layout(plan)
    by_id = {node.id: node for node in lay.nodes}
    name = title or plan.name or "plan"
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}" font-family="sans-serif" font-size="12">',
        f"<title>{escape(name)}: dependency graph</title>",
        "<defs>",
        *(
            f'<marker id="arrow-{key}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
            f'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/>'
            "</marker>"
            for key, colour in (("plain", EDGE), ("critical", CRITICAL))
        ),
        "</defs>",
    ]
    for edge in sorted(lay.edges, key=lambda e: e.critical):  # critical edges on top
        kind = "critical" if edge.critical else "plain"
        colour, width = (CRITICAL, 2.5) if edge.critical else (EDGE, 1.2)
        out.append(
            f'<path class="edge {kind}" data-from="{escape(edge.source)}" '
            f'data-to="{escape(edge.target)}" '
            f'd="{_edge_path(by_id[edge.source], by_id[edge.target])}" fill="none" '
            f'stroke="{colour}" stroke-width="{width}" marker-end="url(#arrow-{kind})"/>'
        )
    for node in lay.nodes:
        fill = DONE_FILL if node.done else NODE_FILL
        stroke, width = (CRITICAL, 2.5) if node.critical else (NODE_STROKE, 1.2)
        classes = " ".join(
            ["node", *(["critical"] if node.critical else []), *(["done"] if node.done else [])]
        )
        out += [
            f'<g class="{classes}" data-task="{escape(node.id)}">',
            f"<title>{escape(node.id)}: {escape(node.label)}</title>",
            f'<rect x="{node.x}" y="{node.y}" width="{NODE_W}" height="{NODE_H}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>',
            f'<text x="{node.x + 8}" y="{node.y + 17}" font-weight="bold">'
            f"{escape(_clip(node.id, 22))}</text>",
            f'<text x="{node.x + 8}" y="{node.y + 34}" fill="#444">'
            f"{escape(_clip(node.label, 24))}</text>",
            "</g>",
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"


def html(plan: Plan, *, title: str = "") -> str:
    """A self-contained HTML page around :func:`svg`, with the critical path spelled out."""
    lay = layout(plan)
    name = title or plan.name or "plan"
    chain = " \u2192 ".join(lay.critical_path) or "none (nothing left to do)"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(name)}: dependency graph</title>",
            "<style>body{font-family:sans-serif;margin:1.5em;color:#222}"
            f".crit{{color:{CRITICAL};font-weight:bold}}</style>",
            "</head><body>",
            f"<h1>{escape(name)}</h1>",
            f"<p>{len(lay.nodes)} tasks, {len(lay.edges)} dependencies. "
            f'<span class="crit">Critical path</span> ({lay.critical_minutes:g} min of effort): '
            f"{escape(chain)}. Grey tasks are done.</p>",
            svg(plan, title=title),
            "</body></html>",
            "",
        ]
    )
