"""``swarm plan graph --format svg|html``: the layered layout, the critical path, hostile labels."""

from __future__ import annotations

import pathlib
import typing as t
import xml.etree.ElementTree as ET

import pytest
import yaml
from click.testing import CliRunner

from runner import graph
from runner.cli.plan import command as plan_cli
from runner.plan.load import load_plan
from tests import browser

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
SVG = "{http://www.w3.org/2000/svg}"


def _graph(*args: str) -> str:
    result = CliRunner().invoke(plan_cli, ["graph", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _nodes(svg_text: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg_text)  # well-formed XML, or this raises
    return {g.attrib["data-task"]: g for g in root.iter(f"{SVG}g") if "data-task" in g.attrib}


def test_the_diamond_is_laid_out_in_layers_with_its_critical_path() -> None:
    lay = graph.layout(load_plan(EXAMPLES / "diamond.yaml"))
    layers = {node.id: node.layer for node in lay.nodes}
    assert layers == {"T01": 0, "T02": 1, "T03": 1, "T04": 2}
    assert lay.critical_path == ("T01", "T02", "T04")  # T02 (1h) outweighs T03 (S)
    critical_edges = {(e.source, e.target) for e in lay.edges if e.critical}
    assert critical_edges == {("T01", "T02"), ("T02", "T04")}
    nodes = _nodes(_graph(str(EXAMPLES / "diamond.yaml"), "--format", "svg"))
    assert set(nodes) == {"T01", "T02", "T03", "T04"}
    critical = {tid for tid, g in nodes.items() if "critical" in g.attrib["class"].split()}
    assert critical == {"T01", "T02", "T04"}
    rects = {tid: g.find(f"{SVG}rect") for tid, g in nodes.items()}
    xs = {tid: float(r.attrib["x"]) for tid, r in rects.items() if r is not None}
    assert xs["T01"] < xs["T02"] == xs["T03"] < xs["T04"]  # a column per layer
    assert rects["T02"] is not None and rects["T02"].attrib["stroke"] == graph.CRITICAL


def test_mermaid_stays_the_default() -> None:
    assert _graph(str(EXAMPLES / "diamond.yaml")).startswith("graph TD\n")
    assert _graph(str(EXAMPLES / "diamond.yaml"), "--format", "mermaid").startswith("graph TD")


def test_html_is_self_contained_and_renders_in_chromium(tmp_path: pathlib.Path) -> None:
    page = _graph(str(EXAMPLES / "demo" / "plan.yaml"), "--format", "html")
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "src=" not in page and "<link" not in page
    path = tmp_path / "plan.html"
    path.write_text(page)
    dom = browser.dump_dom(path)
    assert dom.count('class="node critical"') == 4  # T01 -> T03 -> T05 -> T07
    assert dom.count('class="edge critical"') == 3


class Hostile(t.NamedTuple):
    test_id: str
    subject: str


@pytest.mark.parametrize(
    "case",
    [
        Hostile("markup", '</text><script>alert(1)</script><text x="'),
        Hostile("entities", "a & b < c > d \"quoted\" 'single'"),
        Hostile("long", "x" * 5000),
        Hostile("newlines", "line one\nline two\r\n\tend"),
    ],
    ids=lambda c: c.test_id,
)
def test_hostile_subjects_stay_text(tmp_path: pathlib.Path, case: Hostile) -> None:
    plan = tmp_path / "plan.yaml"
    tasks = [{"id": "A", "subject": case.subject, "files": ["a"]}]
    tasks.append({"id": "B", "subject": "b", "files": ["b"], "blocked_by": ["A"]})
    plan.write_text(yaml.safe_dump({"tasks": tasks}))
    svg_text = _graph(str(plan), "--format", "svg")
    assert "<script" not in svg_text
    nodes = _nodes(svg_text)
    assert set(nodes) == {"A", "B"}
    title = nodes["A"].find(f"{SVG}title")
    assert title is not None and title.text is not None
    assert " ".join(case.subject.split())[:20] in " ".join(title.text.split())
    assert "<script" not in _graph(str(plan), "--format", "html")


def test_a_cycle_is_a_usage_error(tmp_path: pathlib.Path) -> None:
    result = CliRunner().invoke(
        plan_cli, ["graph", str(EXAMPLES / "bad-cycle.yaml"), "--format", "svg"]
    )
    assert result.exit_code == 2, result.output
    assert "cycle" in result.output and "<svg" not in result.output


def test_done_tasks_are_grey_and_off_the_critical_path(tmp_path: pathlib.Path) -> None:
    plan = tmp_path / "plan.yaml"
    tasks = [
        {"id": "A", "files": ["a"], "effort": "XL", "status": "done"},
        {"id": "B", "files": ["b"], "blocked_by": ["A"], "effort": "S"},
        {"id": "C", "files": ["c"], "effort": "M"},
    ]
    plan.write_text(yaml.safe_dump({"tasks": tasks}))
    lay = graph.layout(load_plan(plan))
    assert lay.critical_path == ("C",)
    done = {node.id for node in lay.nodes if node.done}
    assert done == {"A"}
    nodes = _nodes(graph.svg(load_plan(plan)))
    rect = nodes["A"].find(f"{SVG}rect")
    assert rect is not None and rect.attrib["fill"] == graph.DONE_FILL


def test_a_long_chain_is_drawn(tmp_path: pathlib.Path) -> None:
    plan = tmp_path / "plan.yaml"
    tasks = [
        {"id": f"T{i:04d}", "files": [f"m{i}"]} | ({"blocked_by": [f"T{i - 1:04d}"]} if i else {})
        for i in range(1500)
    ]
    plan.write_text(yaml.safe_dump({"tasks": tasks}))
    lay = graph.layout(load_plan(plan))
    assert max(node.layer for node in lay.nodes) == 1499
    assert len(lay.critical_path) == 1500
    assert len(_nodes(graph.svg(load_plan(plan)))) == 1500
