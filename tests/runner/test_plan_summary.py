"""The plan summary: "max parallelism" is what the scheduler allows (locks included), and a plan
whose tasks have no manifest says so, with the fix."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest
from click.testing import CliRunner

from protocol.plan import Plan
from runner.cli.plan import command as plan_cli
from runner.plan.importers import import_plan
from runner.plan.load import check_plan
from runner.plan.summary import summarize

EXPORT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "upstream" / "beads"


def plan_of(tasks: list[dict[str, t.Any]]) -> Plan:
    plan, problems = check_plan({"tasks": tasks}, "plan.yaml")
    assert plan is not None, problems
    return plan


class Case(t.NamedTuple):
    test_id: str
    tasks: list[dict[str, t.Any]]
    parallel: int
    width: int
    notes: tuple[str, ...]
    """A fragment of each note, in order."""


def many(n: int, **task: t.Any) -> list[dict[str, t.Any]]:
    return [{"id": f"T{i:02d}", **task} for i in range(n)]


CASES: t.Final = [
    Case("empty-after-done", many(2, files=["a"], status="done"), 0, 0, ()),
    Case("independent-files", [{"id": f"T{i}", "files": [f"f{i}.py"]} for i in range(4)], 4, 4, ()),
    Case(
        "fifty-write-shared-imported-tasks",
        many(50, files=["**"], concurrency="write-shared"),
        1,
        50,
        ("50 of 50 tasks have no manifest", "touches locks let 1 of the 50 tasks"),
    ),
    Case(
        "a-folder-lock-covers-its-files",
        [
            {"id": "A", "files": ["src/"]},
            {"id": "B", "files": ["src/a.py"]},
            {"id": "C", "files": ["docs/x.md"]},
        ],
        2,
        3,
        ("touches locks let 2 of the 3 tasks",),
    ),
    Case(
        "read-only-takes-no-lock",
        [
            *many(3, concurrency="read-only"),
            {"id": "W", "files": ["**"], "concurrency": "write-shared"},
        ],
        4,
        4,
        ("1 of 4 tasks have no manifest",),
    ),
    Case(
        "dependencies-and-locks",
        [
            {"id": "A", "files": ["a"]},
            {"id": "B", "files": ["b"], "blocked_by": ["A"]},
            {"id": "C", "files": ["b"], "blocked_by": ["A"]},
            {"id": "D", "files": ["d"], "blocked_by": ["A"]},
        ],
        2,
        3,
        ("touches locks let 2 of the 3",),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_parallelism_respects_locks(case: Case) -> None:
    summary = summarize(plan_of(case.tasks))
    assert (summary.max_parallelism, summary.graph_width) == (case.parallel, case.width)
    assert len(summary.notes) == len(case.notes), summary.notes
    for note, fragment in zip(summary.notes, case.notes, strict=True):
        assert fragment in note


def test_an_imported_beads_export_says_it_has_no_manifests() -> None:
    raw = import_plan((EXPORT / "issues.jsonl").read_text(), source="issues.jsonl")
    plan, problems = check_plan(raw, "issues.jsonl")
    assert plan is not None, problems
    summary = summarize(plan)
    assert summary.max_parallelism == 1
    assert summary.graph_width == 13
    assert summary.notes[0].startswith(
        "13 of 13 tasks have no manifest (files ['**'], write-shared)"
    )
    assert "give every task the files it changes (beads metadata.files" in summary.notes[0]


def test_validate_json_carries_the_figure_and_the_notes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"tasks": many(5, files=["**"], concurrency="write-shared")}))
    result = CliRunner().invoke(plan_cli, ["validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert (summary["max_parallelism"], summary["graph_width"]) == (1, 5)
    assert summary["notes"][0].startswith("5 of 5 tasks have no manifest")
