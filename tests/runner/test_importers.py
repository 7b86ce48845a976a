"""The plan importers: swarm-iosm plan.md (every reference pitfall), OL waves, beads, agentops
TaskCreate JSON, format detection, and load_any_plan. Real files and a real fake ``ol``."""

from __future__ import annotations

import json
import os
import pathlib
import stat
import typing as t

import pytest

from protocol.plan import Plan, effort_minutes
from runner.errors import RunFailed, UsageError
from runner.plan.importers import (
    OL_MISSING,
    Format,
    PlanImportError,
    detect_format,
    import_plan,
    load_any_plan,
    needs_ol,
    ol_ratchet,
    ol_ratchet_argv,
    quest_of,
    require_ol,
)
from runner.plan.load import PlanError, check_plan

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "importers"
EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "import"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


def tasks_by_id(plan: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    return {task["id"]: task for task in plan["tasks"]}


def problems_of(text: str, **kwargs: t.Any) -> list[str]:
    with pytest.raises(PlanImportError) as info:
        import_plan(text, **kwargs)
    assert isinstance(info.value, UsageError)
    return info.value.problems


def checked(plan: dict[str, t.Any]) -> Plan:
    result, problems = check_plan(plan, "imported")
    assert result is not None, problems
    return result


MD_HEAD = "# Plan\n\n"


def md_task(tid: str, *fields: str, title: str = "Title", box: str = " ") -> str:
    defaults = {
        "Touches": "`src/x.py`",
        "Needs user input": "false",
        "Effort": "S",
    }
    given = {line.split(":**")[0] for line in fields}
    lines = [f"- [{box}] **{tid}**: {title}", *(f"  - **{f}" for f in fields)]
    lines += [f"  - **{k}:** {v}" for k, v in defaults.items() if k not in given]
    return "\n".join(lines) + "\n\n"


# --- swarm-iosm plan.md --------------------------------------------------------------------


def test_iosm_pitfalls_fixture_imports_every_task_correctly() -> None:
    plan = import_plan(fixture("pitfalls.md"), source="pitfalls.md")
    assert plan["name"] == "pitfalls"
    tasks = tasks_by_id(plan)
    # T99 sits in a code fence: an example, not a task
    assert list(tasks) == ["T01", "T03a", "T-AUTO-01", "T04", "T05"]
    t01, t03a, auto, t04, t05 = tasks.values()
    assert t01["status"] == "done"
    assert t01["concurrency"] == "read-only"
    assert "files" not in t01
    assert t01["metadata"]["iosm"]["touches_notes"] == ["read-only analysis"]
    # a path containing "read-only" is kept; paths are normalized; globs stay globs
    assert t03a["files"] == ["docs/read-only-mode.md", "src/core", "src/**/*.py"]
    assert t03a["effort"] == "30m"
    assert effort_minutes(t03a["effort"]) == 30  # not the reference's 120-minute fallback
    assert t03a["blocked_by"] == ["T01"]
    assert auto["blocked_by"] == ["T03a"]  # "(needs the docs first)" is a comment
    # fields after a checklist inside the task are still read
    assert t04["needs_user_input"] is True
    assert t04["severity"] == "critical"
    assert t04["effort"] == "6h"  # "L (4-6 hours)": the explicit hours, as the planner reads them
    assert t04["concurrency"] == "write-shared"
    assert t04["files"] == ["api", "api_spec.yaml"]  # a value continued on the next line
    assert t04["acceptance"] == ["endpoints implemented", "spec reviewed and signed off"]
    assert t04["metadata"]["iosm"] == {
        "effort": "L (4-6 hours)",
        "status": "DOING",
        "model": "opus",
    }
    assert t04.get("status", "todo") == "todo"
    # field names match without regard to case and spacing
    assert t05["blocked_by"] == ["T04"]
    assert t05["files"] == ["web/app.ts"]
    assert "needs_user_input" not in t05
    assert t05["effort"] == "2h"
    assert t05["description"] == "Artifacts: `reports/T05.md`"
    result = checked(plan)
    assert [task.id for task in result.tasks if task.status == "done"] == ["T01"]


def test_iosm_template_errors_name_line_task_and_field() -> None:
    problems = problems_of(fixture("template_errors.md"), source="plan.md")
    assert problems == [
        "plan.md: line 3: task T10: Depends on: 'All Phase 2-3 tasks' is prose, not task ids; "
        "list the ids it waits for (e.g. T05, T06), or 'none'",
        "plan.md: line 9: task T11: Concurrency class: 'exclusive' is not one of read-only, "
        "write-local, write-shared",
        "plan.md: line 9: task T11: Touches: 'CI/CD configs' is prose, not a path; write paths "
        "(in backticks: `src/x.py`, `docs/`) and put notes in [brackets]",
        "plan.md: line 9: task T11: Depends on: unknown task 'T99'",
        "plan.md: line 9: task T11: Effort: '3 days' is not an effort; use S, M, L, XL, Nh or "
        "Nmin (e.g. 2h, 30min)",
        "plan.md: line 9: task T11: Needs user input: 'maybe' is not true or false",
        "plan.md: line 9: task T11: Severity: 'urgent' is not one of low, medium, high, critical",
        "plan.md: line 9: task T11: Status: 'WIP' is not TODO, DOING, BLOCKED or DONE",
        "plan.md: line 18: task T12: Touches: missing; list the files or folders the task "
        "changes (e.g. `src/core/cache.py`, `tests/`), or set Concurrency class: read-only",
        "plan.md: line 18: task T12: Effort: missing; add '- **Effort:** S' (S, M, L, XL, 2h or "
        "30min)",
        "plan.md: line 18: task T12: Needs user input: missing; add '- **Needs user input:** "
        "false' (or true, so the mayor calls a human when the task starts)",
        "plan.md: line 21: task T10: duplicate of the task on line 3; ids must be unique",
    ]


class MdCase(t.NamedTuple):
    test_id: str
    body: str
    check: t.Callable[[dict[str, dict[str, t.Any]]], bool]


MD_CASES = [
    MdCase(
        "checkbox-x-without-status-is-done",
        md_task("T01", box="x"),
        lambda ts: ts["T01"]["status"] == "done",
    ),
    MdCase(
        "status-wins-over-checkbox",
        md_task("T01", "Status:** TODO", box="x"),
        lambda ts: "status" not in ts["T01"],
    ),
    MdCase(
        "status-done-with-empty-checkbox",
        md_task("T01", "Status:** done"),
        lambda ts: ts["T01"]["status"] == "done",
    ),
    MdCase(
        "depends-on-none-spellings",
        md_task("A", "Depends on:** n/a") + md_task("B", "Depends on:** -"),
        lambda ts: "blocked_by" not in ts["A"] and "blocked_by" not in ts["B"],
    ),
    MdCase(
        "depends-on-and-backticks-and-sub-bullets",
        md_task("A")
        + md_task("B")
        + md_task("C")
        + md_task("D", "Depends on:** `A` and B\n    - C"),
        lambda ts: ts["D"]["blocked_by"] == ["A", "B", "C"],
    ),
    MdCase(
        "bold-colon-inside-or-outside",
        "- [ ] **T1:** Title one\n  - **Touches**: `a.py`\n  - **Needs user input:** no\n"
        "  - **Effort:** 1.5h\n",
        lambda ts: ts["T1"]["subject"] == "Title one" and ts["T1"]["files"] == ["a.py"],
    ),
    MdCase(
        "touches-none-for-read-only",
        md_task("R", "Touches:** none", "Concurrency class:** read-only"),
        lambda ts: "files" not in ts["R"] and ts["R"]["concurrency"] == "read-only",
    ),
    MdCase(
        "touches-bare-path-with-comment",
        md_task("T1", "Touches:** src/a.py (new file), docs/"),
        lambda ts: ts["T1"]["files"] == ["src/a.py", "docs"],
    ),
    MdCase(
        "multi-line-text-field-kept",
        md_task("T1", "Artifacts:** report\n    - `reports/T1.md`\n    - `out/x.json`"),
        lambda ts: (
            ts["T1"]["metadata"]["iosm"]["artifacts"] == "report\n- `reports/T1.md`\n- `out/x.json`"
        ),
    ),
    MdCase(
        "prose-lines-go-to-description",
        md_task("T1") + "  A note under the task.\n",
        lambda ts: ts["T1"]["description"] == "A note under the task.",
    ),
    MdCase(
        "effort-sizes-and-durations",
        md_task("A", "Effort:** XL (10-15 hours)") + md_task("B", "Effort:** `45min`"),
        # explicit hours win over the letter, a range's upper bound (the planner's reading)
        lambda ts: ts["A"]["effort"] == "15h" and ts["B"]["effort"] == "45min",
    ),
    MdCase(
        "fields-at-header-level-still-belong",
        "- [ ] **T1**: Flat\n- **Touches:** `a.py`\n- **Needs user input:** false\n"
        "- **Effort:** S\n",
        lambda ts: ts["T1"]["files"] == ["a.py"],
    ),
    MdCase(
        "heading-ends-a-task",
        md_task("T1") + "### Next phase\n\n- some bullet that is not a field\n",
        lambda ts: "description" not in ts["T1"],
    ),
]


@pytest.mark.parametrize("case", MD_CASES, ids=[c.test_id for c in MD_CASES])
def test_iosm_cases(case: MdCase) -> None:
    plan = import_plan(MD_HEAD + case.body, fmt="iosm-md", source="plan.md")
    ts = tasks_by_id(plan)
    assert case.check(ts), ts
    checked(plan)


class MdError(t.NamedTuple):
    test_id: str
    body: str
    expected: str


MD_ERRORS = [
    MdError(
        "duplicate-field",
        md_task("T1", "Touches:** `a.py`", "Touches:** `b.py`"),
        "line 3: task T1: Touches: given twice (first on line 2); keep one",
    ),
    MdError(
        "absolute-touches",
        md_task("T1", "Touches:** `/etc/passwd`"),
        "task T1: Touches: '/etc/passwd' is absolute; use a path relative to the repository root",
    ),
    MdError(
        "dotdot-touches",
        md_task("T1", "Touches:** `../x.py`"),
        "task T1: Touches: '../x.py' contains '..'",
    ),
    MdError(
        "only-notes-for-a-write-task",
        md_task("T1", "Touches:** [conflict resolution in merged files]"),
        "task T1: Touches: no paths; list the files or folders",
    ),
    MdError(
        "bad-id",
        "- [ ] **T/1**: slash\n",
        "line 1: task id: invalid id 'T/1'",
    ),
    MdError(
        "no-tasks",
        "# Just prose\n\n- [ ] a plain checklist\n",
        "no tasks found; swarm-iosm tasks are lines like '- [ ] **T01**: Title'",
    ),
]


@pytest.mark.parametrize("case", MD_ERRORS, ids=[c.test_id for c in MD_ERRORS])
def test_iosm_errors(case: MdError) -> None:
    problems = problems_of(case.body, fmt="iosm-md", source="plan.md")
    assert any(case.expected in problem for problem in problems), problems
    assert all(problem.startswith("plan.md: ") for problem in problems)


def test_iosm_cycle_is_reported_by_the_plan_check() -> None:
    body = md_task("T07", "Depends on:** T08") + md_task("T08", "Depends on:** T07")
    plan = import_plan(body, fmt="iosm-md", source="plan.md")
    result, problems = check_plan(plan, "plan.md")
    assert result is None
    assert problems == ["plan.md: task T07: blocked_by: cycle T07 -> T08 -> T07"]


def test_iosm_example_validates() -> None:
    plan = import_plan((EXAMPLES / "plan.md").read_text(), source="plan.md")
    result = checked(plan)
    assert [task.id for task in result.tasks] == ["T01", "T02", "T03a", "T03b", "T-AUTO-01"]
    assert result.task("T-AUTO-01").files == ("docs/read-only-mode.md",)
    assert result.task("T-AUTO-01").needs_user_input


# --- OL wave -------------------------------------------------------------------------------


def test_wave_maps_like_agentops() -> None:
    plan = import_plan(fixture("wave.json"), source="wave.json")
    tasks = plan["tasks"]
    # wave entries by ascending priority; blocked[] and completed[] are not run (agentops)
    assert [task["id"] for task in tasks] == ["ol-527.1", "ol-527.2"]
    first = tasks[0]
    assert first["subject"] == "[ol-527.1] Add auth middleware"
    assert first["description"] == (
        "OL bead ol-527.1\nSpec: quests/ol-527/specs/ol-527.1.md\nPriority: 1\n\n"
        "Read the spec file at quests/ol-527/specs/ol-527.1.md for full requirements."
    )
    assert first["metadata"] == {
        "ol_bead_id": "ol-527.1",
        "ol_spec_path": "quests/ol-527/specs/ol-527.1.md",
        "ol_priority": 1,
    }
    assert first["priority"] == 1
    # no manifest in an OL wave: the whole repository, exclusively
    assert first["files"] == ["**"]
    assert first["concurrency"] == "write-shared"
    result = checked(plan)
    assert needs_ol(result)


def test_wave_with_files_keeps_parallel_manifests() -> None:
    plan = import_plan(fixture("wave_files.json"), fmt="ol-wave", source="wave.json")
    tasks = tasks_by_id(plan)
    assert list(tasks) == ["ol-9.2", "ol-9.3", "ol-9.1"]
    assert tasks["ol-9.1"]["files"] == ["src/models.py"]
    assert "concurrency" not in tasks["ol-9.1"]
    assert tasks["ol-9.1"]["issue_type"] == "feature"
    assert tasks["ol-9.2"]["files"] == ["docs"]
    assert tasks["ol-9.3"]["concurrency"] == "write-shared"
    checked(plan)


def test_wave_equal_priorities_keep_the_loaders_order() -> None:
    # ol-wave-loader.sh: sort -t$'\t' -k1 -n on "priority<TAB>id<TAB>title<TAB>spec" lines,
    # so equal priorities fall back to the whole line: byte order of id, then title
    entry = {"title": "t", "spec_path": "s.md", "priority": 1}
    doc = {
        "wave": [
            {"id": "ol-1.2", **entry},
            {"id": "ol-1.10", **entry},
            {"id": "ol-1.1", **entry, "priority": 0},
            {"id": "OL-9", **entry},
        ]
    }
    plan = import_plan(json.dumps(doc), fmt="ol-wave", source="wave.json")
    assert [task["id"] for task in plan["tasks"]] == ["ol-1.1", "OL-9", "ol-1.10", "ol-1.2"]


class WaveError(t.NamedTuple):
    test_id: str
    doc: object
    expected: str


_OK: t.Final = {"title": "x", "spec_path": "s.md", "priority": 1}
WAVE_ERRORS = [
    WaveError(
        "missing-spec-path",
        {"wave": [{"id": "a.1", "title": "x", "priority": 1}]},
        "wave.json: wave[0] (a.1): spec_path: missing or empty; agentops' wave loader refuses",
    ),
    WaveError(
        "missing-title",
        {"wave": [{"id": "a.1", "spec_path": "s.md", "priority": 1}]},
        "wave.json: wave[0] (a.1): title: missing or empty",
    ),
    WaveError(
        "missing-priority",
        {"wave": [{"id": "a.1", "title": "x", "spec_path": "s.md"}]},
        "wave.json: wave[0] (a.1): priority: missing",
    ),
    WaveError("missing-id", {"wave": [{**_OK}]}, "wave.json: wave[0]: id: missing or empty"),
    WaveError(
        "newline-in-title",
        {"wave": [{"id": "a.1", **_OK, "title": "x\ny"}]},
        "title: contains a newline or tab",
    ),
    WaveError(
        "duplicate-id",
        {"wave": [{"id": "a.1", **_OK}, {"id": "a.1", **_OK}]},
        "wave.json: wave[1] (a.1): id: duplicate of wave[0] (a.1)",
    ),
    WaveError("empty", {"wave": []}, "wave.json: wave: no wave entries"),
    WaveError("not-a-list", {"wave": {"id": "a"}}, "wave.json: wave: must be a list"),
    WaveError(
        "bad-priority",
        {"wave": [{"id": "a.1", **_OK, "priority": "soon"}]},
        "priority: must be a whole number 0 or more, got 'soon'",
    ),
    WaveError(
        "negative-priority",
        {"wave": [{"id": "a.1", **_OK, "priority": -1}]},
        "priority: must be a whole number 0 or more, got -1",
    ),
    WaveError("empty-files", {"wave": [{"id": "a.1", **_OK, "files": []}]}, "files: empty"),
]


@pytest.mark.parametrize("case", WAVE_ERRORS, ids=[c.test_id for c in WAVE_ERRORS])
def test_wave_errors(case: WaveError) -> None:
    problems = problems_of(json.dumps(case.doc), fmt="ol-wave", source="wave.json")
    assert any(case.expected in problem for problem in problems), problems


class Quest(t.NamedTuple):
    test_id: str
    bead: str
    quest: str


QUESTS = [
    Quest("one-level", "ol-527.1", "ol-527"),
    Quest("nested", "ol-527.1.3", "ol-527.1"),
    Quest("no-dot", "ol-527", "ol-527"),
]


@pytest.mark.parametrize("case", QUESTS, ids=[c.test_id for c in QUESTS])
def test_ol_ratchet_argv(case: Quest) -> None:
    assert quest_of(case.bead) == case.quest
    assert ol_ratchet_argv(case.bead) == [
        "ol",
        "hero",
        "ratchet",
        case.bead,
        "--quest",
        case.quest,
    ]


def fake_ol(bin_dir: pathlib.Path, exit_code: int) -> pathlib.Path:
    """An ``ol`` executable that records its arguments and exits with ``exit_code``."""
    bin_dir.mkdir(exist_ok=True)
    record = bin_dir / "ol-args.txt"
    script = bin_dir / "ol"
    script.write_text(
        f'#!/bin/sh\necho "$@" > "{record}"\necho "quest closed" >&2\nexit {exit_code}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return record


def test_require_ol_without_ol_on_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(RunFailed) as info:
        require_ol()
    assert str(info.value) == OL_MISSING
    assert str(info.value) == (
        "Error: ol CLI required for --from-wave. Install ol or use swarm without wave integration."
    )
    # load_any_plan refuses a wave before reading it
    with pytest.raises(RunFailed):
        load_any_plan(tmp_path / "missing.json", fmt="ol-wave")
    with pytest.raises(RunFailed):
        load_any_plan(FIXTURES / "wave.json")


def test_ol_ratchet_runs_ol_and_records_its_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    bin_dir = tmp_path / "bin"
    record = fake_ol(bin_dir, 1)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    require_ol()
    result = ol_ratchet("ol-527.1", cwd=str(tmp_path))
    assert record.read_text().split() == ["hero", "ratchet", "ol-527.1", "--quest", "ol-527"]
    assert result.returncode == 1
    assert not result.ok
    assert result.stderr == "quest closed"
    plan = load_any_plan(FIXTURES / "wave.json")
    assert [task.id for task in plan.tasks][:2] == ["ol-527.1", "ol-527.2"]


def test_ol_ratchet_without_ol_is_exit_127(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = ol_ratchet("ol-1.2")
    assert result.returncode == 127
    assert result.argv == ("ol", "hero", "ratchet", "ol-1.2", "--quest", "ol-1")


# --- beads ---------------------------------------------------------------------------------

READY = [
    {"id": "bd-a1", "title": "Auth", "status": "open", "priority": 0, "issue_type": "feature"},
    {"id": "bd-b2", "title": "Parser", "status": "open", "priority": 3, "issue_type": "bug"},
]


class Envelope(t.NamedTuple):
    test_id: str
    doc: object


ENVELOPES = [
    Envelope("bare-array", READY),
    Envelope("issues-envelope", {"issues": READY}),
    Envelope("beads-envelope", {"beads": READY}),
]


@pytest.mark.parametrize("case", ENVELOPES, ids=[c.test_id for c in ENVELOPES])
def test_bd_ready_documents(case: Envelope) -> None:
    text = json.dumps(case.doc, indent=2)
    assert detect_format(text, "ready.json") == "beads"
    plan = import_plan(text, source="ready.json")
    tasks = tasks_by_id(plan)
    assert list(tasks) == ["bd-a1", "bd-b2"]
    assert tasks["bd-a1"] == {
        "id": "bd-a1",
        "subject": "Auth",
        "files": ["**"],
        "concurrency": "write-shared",
        "issue_type": "feature",
        "priority": 0,
        "severity": "critical",
        "metadata": {"bead_id": "bd-a1"},
    }
    assert tasks["bd-b2"]["severity"] == "low"
    checked(plan)


def test_issues_jsonl_keeps_open_unblocked_work_only() -> None:
    plan = import_plan(fixture("issues.jsonl"), source=".beads/issues.jsonl")
    tasks = tasks_by_id(plan)
    # bd-c3 closed, bd-d4 blocked by the open bd-a1; the epic bd-e5 is work to bd ready
    assert list(tasks) == ["bd-a1", "bd-e5", "bd-b2"]
    assert "blocked_by" not in tasks["bd-b2"]  # its blocker bd-c3 is closed
    assert tasks["bd-b2"]["effort"] == "45min"
    assert tasks["bd-b2"]["acceptance"] == ["parses ISO dates", "rejects empty input"]
    assert tasks["bd-a1"]["description"] == "Implement the OAuth2 login flow."
    checked(plan)


def test_bead_ids_pick_issues_and_keep_their_dependencies() -> None:
    plan = import_plan(fixture("issues.jsonl"), source="issues.jsonl", bead_ids=["bd-d4", "bd-a1"])
    tasks = tasks_by_id(plan)
    assert list(tasks) == ["bd-d4", "bd-a1"]
    assert tasks["bd-d4"]["blocked_by"] == ["bd-a1"]
    checked(plan)


class BeadError(t.NamedTuple):
    test_id: str
    text: str
    bead_ids: tuple[str, ...]
    expected: str


def jsonl(*issues: dict[str, t.Any]) -> str:
    return "".join(json.dumps(issue) + "\n" for issue in issues)


BEAD_ERRORS = [
    BeadError(
        "unknown-requested",
        fixture("issues.jsonl"),
        ("bd-zz",),
        "issues.jsonl: --bead-ids bd-zz: not in the input",
    ),
    BeadError(
        "blocked-by-unselected",
        fixture("issues.jsonl"),
        ("bd-d4",),
        "issues.jsonl: bead bd-d4: blocked by bd-a1 (open); add bd-a1 to --bead-ids",
    ),
    BeadError(
        "closed-requested",
        fixture("issues.jsonl"),
        ("bd-c3",),
        "bead bd-c3: status is 'closed'; only open beads can run",
    ),
    BeadError(
        "message-requested",
        jsonl({"id": "x-1", "title": "a", "issue_type": "message"}),
        ("x-1",),
        "bead x-1: is a message, not work",
    ),
    BeadError(
        "dangling-dependency",
        jsonl(
            {"id": "x-1", "title": "a"},
            {"id": "x-2", "title": "b", "dependencies": [{"depends_on_id": "x-9"}]},
        ),
        (),
        "bead x-2: cannot tell whether bd ready lists it: it depends on blocks x-9, which is "
        "not in the export",
    ),
    BeadError(
        "nothing-ready",
        jsonl({"id": "x-1", "title": "a", "status": "closed"}, {"id": "x-2", "title": "b"}).replace(
            '"b"}', '"b", "status": "in_progress"}'
        ),
        (),
        "no open, unblocked issues",
    ),
    BeadError("bad-json-line", '{"id": "x-1", "title": "a"}\n{oops\n', (), "line 2: invalid JSON"),
]


@pytest.mark.parametrize("case", BEAD_ERRORS, ids=[c.test_id for c in BEAD_ERRORS])
def test_beads_errors(case: BeadError) -> None:
    problems = problems_of(case.text, fmt="beads", source="issues.jsonl", bead_ids=case.bead_ids)
    assert any(case.expected in problem for problem in problems), problems


def test_bd_show_style_dependencies_and_metadata_files() -> None:
    doc = [
        {
            "id": "bd-1",
            "title": "Models",
            "metadata": {"files": ["src/models.py"], "validation": {"files_exist": ["src/m.py"]}},
            "dependencies": [{"id": "bd-0", "status": "closed", "dependency_type": "blocks"}],
        },
        {
            "id": "bd-2",
            "title": "Child of an open epic",
            "dependencies": [{"id": "bd-9", "status": "open", "dependency_type": "parent-child"}],
        },
        {
            "id": "bd-3",
            "title": "Waits on an open issue",
            "dependencies": [{"id": "bd-8", "status": "open", "dependency_type": "blocks"}],
        },
    ]
    plan = import_plan(json.dumps(doc), fmt="beads", source="ready.json")
    tasks = tasks_by_id(plan)
    assert list(tasks) == ["bd-1", "bd-2"]
    assert tasks["bd-1"]["files"] == ["src/models.py"]
    assert tasks["bd-1"]["validation"] == {"files_exist": ["src/m.py"]}
    checked(plan)


def test_bead_ids_need_beads_input() -> None:
    problems = problems_of(fixture("wave.json"), source="wave.json", bead_ids=["a"])
    assert problems == ["wave.json: --bead-ids applies to beads input, but this is ol-wave"]


# --- agentops TaskCreate -------------------------------------------------------------------


def test_taskcreate_mapping() -> None:
    plan = import_plan(fixture("tasks.json"), source="tasks.json")
    first, second = plan["tasks"]
    assert first == {
        "id": "1",
        "subject": "Add the Item model",
        "description": "Create src/models.py with an Item class and a unit test.",
        "files": ["src/models.py", "tests/test_models.py"],
        "issue_type": "feature",
        "validation": {
            "files_exist": ["src/models.py"],
            "content_check": {"file": "src/models.py", "pattern": "class Item"},
        },
    }
    assert second["blocked_by"] == ["1"]
    result = checked(plan)
    assert result.task("1").validation.content_check[0].pattern == "class Item"


def test_taskcreate_ids_status_and_extra_metadata() -> None:
    doc = {
        "tasks": [
            {"id": "T1", "subject": "one", "status": "completed", "metadata": {"files": "a.py"}},
            {
                "id": "T2",
                "subject": "[ol-1.2] two",
                "blockedBy": "T1",
                "status": "pending",
                "metadata": {"files": ["b/"], "ol_bead_id": "ol-1.2"},
            },
            {"subject": "three (no files: repository-wide)", "blockedBy": ["T2"]},
        ]
    }
    text = json.dumps(doc)
    assert detect_format(text) == "agentops-tasks"
    plan = import_plan(text, source="tasks.json")
    tasks = tasks_by_id(plan)
    assert list(tasks) == ["T1", "T2", "3"]
    assert tasks["T1"]["status"] == "done"
    assert tasks["T1"]["files"] == ["a.py"]
    assert tasks["T2"]["metadata"] == {"ol_bead_id": "ol-1.2"}
    assert tasks["3"]["files"] == ["**"]
    assert tasks["3"]["concurrency"] == "write-shared"
    assert needs_ol(checked(plan))


class TaskError(t.NamedTuple):
    test_id: str
    tasks: list[dict[str, t.Any]]
    expected: str


TASK_ERRORS = [
    TaskError(
        "unknown-blocker",
        [{"subject": "a", "blockedBy": ["7"]}],
        "tasks.json: task 1: blockedBy: unknown task '7'",
    ),
    TaskError(
        "empty-manifest",
        [{"subject": "a", "metadata": {"files": []}}],
        "task 1: metadata.files: empty; an empty manifest means the task needs more planning",
    ),
    TaskError(
        "cross-cutting",
        [{"subject": "a", "metadata": {"validation": {"cross_cutting": []}}}],
        "metadata.validation.cross_cutting: checks for every task are plan gates here",
    ),
    TaskError("no-subject", [{"subject": "", "blockedBy": []}], "task 1: subject: missing"),
    TaskError(
        "bad-status", [{"subject": "a", "status": "deleted"}], "status: 'deleted' is not pending"
    ),
    TaskError(
        "duplicate-id",
        [{"id": "1", "subject": "a", "blockedBy": []}, {"id": 1, "subject": "b"}],
        "tasks[1] (1): id: duplicate of tasks[0]",
    ),
]


@pytest.mark.parametrize("case", TASK_ERRORS, ids=[c.test_id for c in TASK_ERRORS])
def test_taskcreate_errors(case: TaskError) -> None:
    problems = problems_of(json.dumps(case.tasks), fmt="agentops-tasks", source="tasks.json")
    assert any(case.expected in problem for problem in problems), problems


# --- detection and load_any_plan -----------------------------------------------------------


class Detect(t.NamedTuple):
    test_id: str
    text: str
    filename: str
    expected: Format


DETECT = [
    Detect("md-by-name", "anything", "plan.md", "iosm-md"),
    Detect("md-by-content", MD_HEAD + md_task("T1"), "PLAN", "iosm-md"),
    Detect("wave", fixture("wave.json"), "wave.json", "ol-wave"),
    Detect("jsonl-by-name", '{"id": "a", "title": "x"}\n', "issues.jsonl", "beads"),
    Detect("jsonl-by-content", fixture("issues.jsonl"), "export", "beads"),
    Detect("one-line-jsonl", '{"id": "a", "title": "x"}', "export", "beads"),
    Detect("bd-ready", json.dumps(READY), "ready.json", "beads"),
    Detect("taskcreate", fixture("tasks.json"), "tasks.json", "agentops-tasks"),
    Detect("own-yaml", "tasks:\n  - id: T1\n    files: [a.py]\n", "plan.yaml", "swarm"),
    Detect("own-json", '{"tasks": [{"id": "T1", "files": ["a.py"]}]}', "p.json", "swarm"),
    Detect("own-json-list", '[{"id": "T1", "subject": "s", "files": ["a"]}]', "p", "swarm"),
    Detect("broken-json", '{"tasks": [', "p.json", "swarm"),
]


@pytest.mark.parametrize("case", DETECT, ids=[c.test_id for c in DETECT])
def test_detect_format(case: Detect) -> None:
    assert detect_format(case.text, case.filename) == case.expected


def test_load_any_plan_every_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    fake_ol(tmp_path / "bin", 0)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    counts = {}
    for name in ("plan.md", "wave.json", "bd-ready.json", "issues.jsonl", "tasks.json"):
        plan = load_any_plan(EXAMPLES / name)
        counts[name] = len(plan.tasks)
    assert counts == {
        "plan.md": 5,
        "wave.json": 2,
        "bd-ready.json": 2,
        "issues.jsonl": 3,
        "tasks.json": 2,
    }
    # our own format goes through the ordinary loader
    own = load_any_plan(EXAMPLES.parent / "diamond.yaml")
    assert own.name == "diamond"


def test_load_any_plan_reports_check_problems_of_an_import(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.md"
    path.write_text(md_task("T07", "Depends on:** T08") + md_task("T08", "Depends on:** T07"))
    with pytest.raises(PlanError) as info:
        load_any_plan(path)
    assert info.value.problems == [f"{path}: task T07: blocked_by: cycle T07 -> T08 -> T07"]
    missing = tmp_path / "nope.md"
    with pytest.raises(PlanError) as info:
        load_any_plan(missing)
    assert info.value.problems == [f"{missing}: no such file"]


def test_import_error_message_lists_every_problem() -> None:
    with pytest.raises(PlanImportError) as info:
        import_plan(fixture("template_errors.md"), source="plan.md")
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.problems) == 12
    assert lines[0].endswith("(and 11 more; 'swarm plan import plan.md' lists them)")
