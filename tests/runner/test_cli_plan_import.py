"""``swarm plan import`` through click: written plans validate, errors write nothing, the output
is atomic, ``--json``, ``--bead-ids``; and imported plans run with the scripted agent."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import typing as t

import pytest
import yaml
from click.testing import CliRunner, Result

from runner.cli.main import cli
from runner.cli.plan import command as plan_cli
from runner.cli.plan_import import command as import_cli
from runner.cli.plan_import import render_yaml, write_atomic
from runner.paths import SwarmPaths

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "import"
FIXTURES = ROOT / "tests" / "fixtures" / "importers"


def run_import(*args: str | pathlib.Path) -> Result:
    return CliRunner().invoke(import_cli, [str(arg) for arg in args], catch_exceptions=False)


class Example(t.NamedTuple):
    test_id: str
    name: str
    fmt: str
    tasks: int
    done: int


EXAMPLE_CASES = [
    Example("iosm-md", "plan.md", "iosm-md", 5, 1),
    Example("ol-wave", "wave.json", "ol-wave", 2, 0),  # only wave[] runs, as in agentops
    Example("bd-ready", "bd-ready.json", "beads", 2, 0),
    Example("issues-jsonl", "issues.jsonl", "beads", 3, 0),  # bd ready lists the epic too
    Example("agentops-tasks", "tasks.json", "agentops-tasks", 2, 0),
]


@pytest.mark.parametrize("case", EXAMPLE_CASES, ids=[c.test_id for c in EXAMPLE_CASES])
def test_import_example_writes_a_plan_that_validates(case: Example, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "plan.yaml"
    result = run_import(EXAMPLES / case.name, "-o", out)
    assert result.exit_code == 0, result.output
    assert (
        f"imported {case.tasks} tasks ({case.done} done) from {EXAMPLES / case.name} "
        f"({case.fmt}) -> {out}" in result.stderr
    )
    assert result.stdout == ""
    text = out.read_text()
    assert text.startswith(f"# Imported by 'swarm plan import' from {case.name} ({case.fmt}).")
    validated = CliRunner().invoke(plan_cli, ["validate", str(out)])
    assert validated.exit_code == 0, validated.output
    assert f"tasks            {case.tasks} ({case.done} done" in validated.output
    assert [p.name for p in tmp_path.iterdir()] == ["plan.yaml"]  # no temporary file left


def test_import_to_stdout_with_explicit_format() -> None:
    result = run_import(EXAMPLES / "wave.json", "--format", "ol-wave")
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert [task["id"] for task in doc["tasks"]] == ["ol-527.1", "ol-527.2"]
    first = doc["tasks"][0]
    assert first["description"].splitlines()[0] == "OL bead ol-527.1"
    # task keys come in the documented order
    assert list(first) == [
        "id",
        "subject",
        "description",
        "files",
        "concurrency",
        "priority",
        "metadata",
    ]
    assert "imported 2 tasks (0 done)" in result.stderr


def test_import_json_document(tmp_path: pathlib.Path) -> None:
    result = run_import(EXAMPLES / "tasks.json", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "plan-import"
    assert doc["ok"] is True
    assert doc["format"] == "agentops-tasks"
    assert doc["tasks"] == 2
    assert doc["output"] is None
    assert doc["plan"]["tasks"][1]["blocked_by"] == ["1"]
    out = tmp_path / "p.yaml"
    result = run_import(EXAMPLES / "tasks.json", "--json", "-o", out)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["output"] == str(out)
    assert "plan" not in doc
    assert out.exists()


def test_bead_ids_option(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "plan.yaml"
    result = run_import(FIXTURES / "issues.jsonl", "--bead-ids", "bd-d4, bd-a1", "-o", out)
    assert result.exit_code == 0, result.output
    tasks = yaml.safe_load(out.read_text())["tasks"]
    assert [(task["id"], task.get("blocked_by")) for task in tasks] == [
        ("bd-d4", ["bd-a1"]),
        ("bd-a1", None),
    ]


def test_import_problems_exit_2_and_leave_the_output_alone(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "plan.yaml"
    out.write_text("previous content\n")
    source = FIXTURES / "template_errors.md"
    result = run_import(source, "-o", out)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 12
    assert lines[0] == (
        f"{source}: line 3: task T10: Depends on: 'All Phase 2-3 tasks' is prose, not task ids; "
        "list the ids it waits for (e.g. T05, T06), or 'none'"
    )
    assert out.read_text() == "previous content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.yaml"]
    as_json = run_import(source, "--json")
    assert as_json.exit_code == 2, as_json.output
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False
    assert len(doc["problems"]) == 12


def test_invalid_plan_is_written_whole_then_reported(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "plan.md"
    source.write_text(
        "- [ ] **T07**: a\n  - **Depends on:** T08\n  - **Touches:** `a.py`\n"
        "  - **Needs user input:** false\n  - **Effort:** S\n"
        "- [ ] **T08**: b\n  - **Depends on:** T07\n  - **Touches:** `b.py`\n"
        "  - **Needs user input:** false\n  - **Effort:** S\n"
    )
    out = tmp_path / "plan.yaml"
    result = run_import(source, "-o", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == [f"{out}: task T07: blocked_by: cycle T07 -> T08 -> T07"]
    assert [task["id"] for task in yaml.safe_load(out.read_text())["tasks"]] == ["T07", "T08"]


class Refused(t.NamedTuple):
    test_id: str
    args: list[str]
    expected: str


def test_usage_errors(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "plan.md"
    source.write_text("# nothing\n")
    cases = [
        Refused("overwrite-input", [str(source), "-o", str(source)], "would overwrite the input"),
        Refused(
            "missing-folder",
            [str(source), "-o", str(tmp_path / "no" / "p.yaml")],
            "does not exist; create it first",
        ),
        Refused("missing-input", [str(tmp_path / "absent.md")], "absent.md: no such file"),
        Refused(
            "bead-ids-on-markdown",
            [str(EXAMPLES / "plan.md"), "--bead-ids", "a"],
            "--bead-ids applies to beads input, but this is iosm-md",
        ),
    ]
    for case in cases:
        result = run_import(*case.args)
        assert result.exit_code == 2, (case.test_id, result.output)
        assert case.expected in result.stderr, (case.test_id, result.stderr)
    assert source.read_text() == "# nothing\n"


def test_write_atomic_replaces_whole_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.yaml"
    write_atomic(path, "a: 1\n")
    write_atomic(path, "b: 2\n")
    assert path.read_text() == "b: 2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["plan.yaml"]


def test_render_yaml_keeps_multiline_text_readable() -> None:
    text = render_yaml({"tasks": [{"description": "one\ntwo", "id": "T1", "files": ["a"]}]})
    assert text == "tasks:\n- id: T1\n  description: |-\n    one\n    two\n  files:\n  - a\n"


# --- imported plans run with the scripted agent ----------------------------------------------


def _scripted(plan_file: pathlib.Path) -> pathlib.Path:
    """Give every imported task a script that writes one file inside its manifest."""
    doc = yaml.safe_load(plan_file.read_text())
    for task in doc["tasks"]:
        files = task.get("files") or []
        target = files[0] if files else ""
        if not target or "*" in target:
            target = f"out/{task['id']}.txt"
        elif not pathlib.PurePosixPath(target).suffix:
            target = f"{target}/{task['id']}.txt"  # a folder entry
        checks = (task.get("validation") or {}).get("content_check") or []
        checks = [checks] if isinstance(checks, dict) else checks
        # literal patterns (e.g. "class Item") match themselves: satisfy the task's checks
        lines = [task["id"], *(c["pattern"] for c in checks if c["file"] == target)]
        task["script"] = [{"write": {"path": target, "content": "\n".join(lines) + "\n"}}]
    out = plan_file.with_name("scripted.yaml")
    out.write_text(render_yaml(doc))
    return out


@pytest.mark.parametrize("case", EXAMPLE_CASES, ids=lambda c: c.test_id)
def test_imported_plan_runs_with_the_scripted_agent(
    case: Example, git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = git_repo.parent / "bin"
    bin_dir.mkdir()
    ol = bin_dir / "ol"
    ol.write_text("#!/bin/sh\nexit 0\n")
    ol.chmod(ol.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    plan_file = git_repo.parent / "plan.yaml"
    imported = run_import(EXAMPLES / case.name, "-o", plan_file)
    assert imported.exit_code == 0, imported.output
    scripted = _scripted(plan_file)
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(scripted),
            "--repo",
            str(git_repo),
            "--run-id",
            "r1",
            "--worktree-root",
            str(git_repo.parent / "wt"),
            "--mode",
            "local",
            "--timeout",
            "90s",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    state = json.loads(SwarmPaths.for_repo(git_repo).run("r1").state.read_text())
    assert state["status"] == "done"
    todo = [
        task for task in yaml.safe_load(scripted.read_text())["tasks"] if not task.get("status")
    ]
    for task in todo:
        assert state["tasks"][task["id"]]["state"] == "merged", state["tasks"][task["id"]]
