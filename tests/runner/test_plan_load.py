"""Loading and checking plans: every problem kind, one line each, in a stable order."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest
import yaml

from runner.errors import UsageError
from runner.plan.load import PlanError, check_plan, load_plan

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _plan(*tasks: dict[str, t.Any], **fields: t.Any) -> dict[str, t.Any]:
    return {"name": "p", **fields, "tasks": list(tasks)}


def _task(task_id: str, **fields: t.Any) -> dict[str, t.Any]:
    return {"id": task_id, "files": [f"src/{task_id}.py"], **fields}


class ProblemCase(t.NamedTuple):
    test_id: str
    raw: object
    expected: list[str]


PROBLEM_CASES = [
    ProblemCase(
        "cycle",
        _plan(_task("T07", blocked_by=["T08"]), _task("T08", blocked_by=["T07"])),
        ["plan.yaml: task T07: blocked_by: cycle T07 -> T08 -> T07"],
    ),
    ProblemCase(
        "self_cycle",
        _plan(_task("T01", blocked_by=["T01"])),
        ["plan.yaml: task T01: blocked_by: cycle T01 -> T01"],
    ),
    ProblemCase(
        "unknown_dependency",
        _plan(_task("T01", blocked_by=["T99"])),
        ["plan.yaml: task T01: blocked_by: unknown task 'T99'"],
    ),
    ProblemCase(
        "prose_dependency",
        _plan(_task("T01"), _task("T12", blocked_by="All Phase 2-3 tasks")),
        [
            "plan.yaml: task T12: blocked_by: 'All Phase 2-3 tasks' is not a task id; "
            "list the ids it waits for (e.g. [T05, T06])"
        ],
    ),
    ProblemCase(
        "numeric_dependency",
        _plan(_task("T01", blocked_by=[3])),
        ["plan.yaml: task T01: blocked_by: 3 is not a task id; quote ids"],
    ),
    ProblemCase(
        "duplicate_id",
        _plan(_task("T01"), _task("T01")),
        ["plan.yaml: task T01 (tasks[1]): id: duplicate of tasks[0]; ids must be unique"],
    ),
    ProblemCase(
        "bad_id",
        _plan(_task("T 01")),
        [
            "plan.yaml: tasks[0]: id: invalid id 'T 01': use 1-64 of letters, digits, '.', '_' "
            "or '-', starting with a letter or digit, and no '..'"
        ],
    ),
    ProblemCase(
        "numeric_id",
        _plan({"id": 7, "files": ["a"]}),
        ['plan.yaml: tasks[0]: id: 7 is a number, not text; quote ids (id: "T01")'],
    ),
    ProblemCase(
        "missing_id",
        _plan({"files": ["a"]}),
        ["plan.yaml: tasks[0]: id: missing; give every task a unique id such as T01"],
    ),
    ProblemCase(
        "absolute_path",
        _plan(_task("T03", files=["/etc/x"])),
        [
            "plan.yaml: task T03: files: '/etc/x' is absolute; "
            "use a path relative to the repository root"
        ],
    ),
    ProblemCase(
        "dotdot_path",
        _plan(_task("T03", files=["src/../../x"])),
        [
            "plan.yaml: task T03: files: 'src/../../x' contains '..'; "
            "use a path inside the repository"
        ],
    ),
    ProblemCase(
        "missing_manifest",
        _plan({"id": "T01"}),
        [
            "plan.yaml: task T01: files: missing; a write task needs a manifest (the files, "
            "folders or globs it may change), or set concurrency: read-only"
        ],
    ),
    ProblemCase(
        "unknown_task_field",
        _plan(_task("T01", touches=["x"])),
        [
            "plan.yaml: task T01: touches: unknown key; valid keys are id, subject, description, "
            "files, concurrency, blocked_by, issue_type, priority, severity, effort, acceptance, "
            "needs_user_input, allow_empty, status, validation, agent, timeout, script, metadata"
        ],
    ),
    ProblemCase(
        "unknown_plan_field",
        {**_plan(_task("T01")), "workers": 3},
        [
            "plan.yaml: workers: unknown key; did you mean 'max_workers'? valid keys are "
            "version, name, base, target, max_workers, agent, isolation, gates, setup, budgets, "
            "notify, tasks"
        ],
    ),
    ProblemCase(
        "unknown_nested_field",
        _plan(_task("T01", validation={"test": "pytest"})),
        ["plan.yaml: task T01: validation.test: unknown key; did you mean 'tests'?"],
    ),
    ProblemCase(
        "unknown_key_with_a_near_match",
        _plan(_task("T01", blockd_by=[])),
        [
            "plan.yaml: task T01: blockd_by: unknown key; did you mean 'blocked_by'? valid keys "
            "are id, subject, description, files, concurrency, blocked_by, issue_type, priority, "
            "severity, effort, acceptance, needs_user_input, allow_empty, status, validation, "
            "agent, timeout, script, metadata"
        ],
    ),
    ProblemCase(
        "unknown_gate_key",
        {**_plan(_task("T01")), "gates": [{"name": "g", "comand": "x"}]},
        [
            "plan.yaml: gates[0].command: missing",
            "plan.yaml: gates[0].comand: unknown key; did you mean 'command'?",
        ],
    ),
    ProblemCase(
        "bad_effort",
        _plan(_task("T01", effort="3 days")),
        [
            "plan.yaml: task T01: effort: bad effort '3 days': "
            "use S, M, L, XL, Nh or Nmin (e.g. 2h, 30min)"
        ],
    ),
    ProblemCase(
        "bad_task_timeout",
        _plan(_task("T01", timeout="soon")),
        ["plan.yaml: task T01: timeout: bad duration 'soon': use 90s, 30m, 2h or plain seconds"],
    ),
    ProblemCase(
        "bad_gate_timeout",
        _plan(_task("T01"), gates=[{"name": "lint", "command": "ruff", "timeout": "-1m"}]),
        ["plan.yaml: gates[0].timeout: bad duration '-1m': use 90s, 30m, 2h or plain seconds"],
    ),
    ProblemCase(
        "duplicate_gate",
        _plan(_task("T01"), gates=[{"name": "g", "command": "a"}, {"name": "g", "command": "b"}]),
        ["plan.yaml: gates: duplicate gate name 'g'; gate names must be unique"],
    ),
    ProblemCase(
        "bad_concurrency",
        _plan(_task("T01", concurrency="exclusive")),
        [
            "plan.yaml: task T01: concurrency: Input should be 'read-only', 'write-local' or "
            "'write-shared' (got 'exclusive')"
        ],
    ),
    ProblemCase(
        "bad_severity",
        _plan(_task("T01", severity="urgent")),
        [
            "plan.yaml: task T01: severity: Input should be 'low', 'medium', 'high' or "
            "'critical' (got 'urgent')"
        ],
    ),
    ProblemCase(
        "bad_max_workers",
        _plan(_task("T01"), max_workers=0),
        ["plan.yaml: max_workers: Input should be greater than or equal to 1 (got 0)"],
    ),
    ProblemCase(
        "not_a_mapping",
        "just text",
        ["plan.yaml: the plan is a str; write a mapping with a 'tasks' list"],
    ),
    ProblemCase(
        "empty_file", None, ["plan.yaml: the plan is empty; write a mapping with a 'tasks' list"]
    ),
    ProblemCase(
        "no_tasks_key", {"name": "x"}, ["plan.yaml: tasks: missing; list the tasks under 'tasks:'"]
    ),
    ProblemCase(
        "empty_tasks", {"tasks": []}, ["plan.yaml: tasks: empty; a plan needs at least one task"]
    ),
    ProblemCase(
        "task_not_mapping",
        {"tasks": ["T01"]},
        ["plan.yaml: tasks[0]: must be a mapping with at least 'id' and 'files'"],
    ),
]


@pytest.mark.parametrize("case", PROBLEM_CASES, ids=lambda c: c.test_id)
def test_check_plan_problems(case: ProblemCase) -> None:
    plan, problems = check_plan(case.raw, "plan.yaml")
    assert plan is None
    assert problems == case.expected


class StepCase(t.NamedTuple):
    test_id: str
    step: object
    expected: str


STEP_CASES = [
    StepCase("unknown_kind", {"dance": 1}, "script[1]: unknown step 'dance'; use one of write"),
    StepCase("two_kinds", {"run": "a", "sleep": 1}, "script[1]: needs exactly one step kind"),
    StepCase("not_mapping", "run make", "script[1]: 'run make' is not a mapping"),
    StepCase("write_missing_content", {"write": {"path": "a"}}, "script[1]: write: missing key"),
    StepCase("write_abs_path", {"write": {"path": "/a", "content": ""}}, "write: path: '/a' is"),
    StepCase("sleep_string", {"sleep": "long"}, "script[1]: sleep: 'long' is not a number"),
    StepCase("crash_range", {"crash": 300}, "script[1]: crash: 300 is not an exit code"),
    StepCase("hang_false", {"hang": False}, "script[1]: hang: False: write 'hang: true'"),
    StepCase("attempt_zero", {"run": "x", "attempt": 0}, "script[1]: attempt: 0 is not a positive"),
    StepCase("escape_no_finding", {"escape": {"files": ["a"]}}, "escape: missing key 'finding'"),
    StepCase("escape_severity", {"escape": {"finding": "f", "severity": "x"}}, "severity: 'x'"),
    StepCase("fail_extra", {"fail": {"reason": "r", "why": 1}}, "fail: unknown key 'why'"),
    StepCase("run_number", {"run": 5}, "script[1]: run: 5 is not a string"),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=lambda c: c.test_id)
def test_check_plan_script_steps(case: StepCase) -> None:
    raw = _plan(_task("T01", script=[{"progress": "ok"}, case.step]))
    plan, problems = check_plan(raw, "plan.yaml")
    assert plan is None
    assert len(problems) == 1, problems
    assert problems[0].startswith("plan.yaml: task T01: script[1]: ")
    assert case.expected in problems[0]


def test_all_step_kinds_accepted() -> None:
    script = [
        {"write": {"path": "a.txt", "content": "x"}},
        {"append": {"path": "a.txt", "content": "y"}},
        {"delete": "b.txt"},
        {"patch": "--- a\n+++ b\n"},
        {"run": "true"},
        {"run": ["python", "-c", "pass"]},
        {"sleep": 0.1},
        {"progress": "half way"},
        {"commit": "msg"},
        {"escape": {"finding": "f", "files": ["c.py"], "intent": "fix", "severity": "high"}},
        {"help": "stuck"},
        {"offer": "done"},
        {"fail": {"type": "test_failure", "reason": "r"}, "attempt": 1},
        {"crash": 3},
        {"hang": True},
    ]
    plan, problems = check_plan(_plan(_task("T01", script=script)), "plan.yaml")
    assert problems == []
    assert plan is not None and plan.tasks[0].script is not None
    assert len(plan.tasks[0].script) == len(script)


def test_collects_all_problems_in_task_order() -> None:
    raw = _plan(
        _task("T01", effort="forever", blocked_by=["T02", "nope"]),
        _task("T02", files=["/abs"], blocked_by=["T01"]),
        {"id": "T03", "concurrency": "read-only", "bogus": 1},
        gates=[{"name": "g"}],
    )
    _, problems = check_plan(raw, "p.json")
    assert problems == [
        "p.json: gates[0].command: missing",
        "p.json: task T01: blocked_by: unknown task 'nope'",
        "p.json: task T01: effort: bad effort 'forever': use S, M, L, XL, Nh or Nmin "
        "(e.g. 2h, 30min)",
        "p.json: task T01: blocked_by: cycle T01 -> T02 -> T01",
        "p.json: task T02: files: '/abs' is absolute; use a path relative to the repository root",
        "p.json: task T03: bogus: unknown key; valid keys are id, subject, description, files, "
        "concurrency, blocked_by, issue_type, priority, severity, effort, acceptance, "
        "needs_user_input, allow_empty, status, validation, agent, timeout, script, metadata",
    ]


def test_valid_plan_normalizes_manifests() -> None:
    raw = _plan(
        _task("T01", files=["./src//core/", "src/core", "docs/*.md"]),
        _task("T02", files="README.md", blocked_by="T01", status="done"),
        {"id": "T03", "concurrency": "read-only"},
    )
    plan, problems = check_plan(raw, "plan.yaml")
    assert problems == []
    assert plan is not None
    assert plan.tasks[0].files == ("src/core", "docs/*.md")
    assert plan.tasks[1].files == ("README.md",)
    assert plan.tasks[1].blocked_by == ("T01",)
    assert [task.id for task in plan.tasks] == ["T01", "T02", "T03"]


def test_bare_task_list_accepted() -> None:
    plan, problems = check_plan([_task("T01")], "plan.yaml")
    assert problems == [] and plan is not None


def test_load_plan_yaml_and_json(tmp_path: pathlib.Path) -> None:
    raw = _plan(_task("A"), _task("B", blocked_by=["A"], effort="2h"))
    as_yaml = tmp_path / "plan.yaml"
    as_yaml.write_text(yaml.safe_dump(raw))
    as_json = tmp_path / "plan.json"
    as_json.write_text(json.dumps(raw))
    no_ext = tmp_path / "plan"
    no_ext.write_text(json.dumps(raw))
    plans = [load_plan(path) for path in (as_yaml, as_json, no_ext)]
    assert plans[0] == plans[1] == plans[2]
    assert plans[0].task("B").minutes == 120


class FileCase(t.NamedTuple):
    test_id: str
    name: str
    content: str | None
    expected: str


FILE_CASES = [
    FileCase("missing", "nope.yaml", None, "nope.yaml: no such file"),
    FileCase(
        "bad_yaml", "p.yaml", "tasks: [\n  - id: a\n", "p.yaml: line 2, column 3: invalid YAML"
    ),
    FileCase("bad_json", "p.json", '{"tasks": [}', "p.json: line 1, column 12: invalid JSON"),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda c: c.test_id)
def test_load_plan_file_errors(case: FileCase, tmp_path: pathlib.Path) -> None:
    path = tmp_path / case.name
    if case.content is not None:
        path.write_text(case.content)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert isinstance(info.value, UsageError)
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith(str(tmp_path / case.expected.split(":")[0]))
    assert case.expected.split(": ", 1)[1] in info.value.problems[0]


def test_plan_error_message_is_one_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(_plan({"id": "A"}, {"id": "B"})))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert len(info.value.problems) == 2
    assert "\n" not in str(info.value)
    assert str(info.value).endswith(f"(and 1 more; see 'swarm plan validate {path}')")


@pytest.mark.parametrize("name", ["diamond.yaml"])
def test_examples_valid(name: str) -> None:
    plan = load_plan(EXAMPLES / name)
    assert plan.tasks


def test_bad_cycle_example_reports_every_problem() -> None:
    path = EXAMPLES / "bad-cycle.yaml"
    with pytest.raises(PlanError) as info:
        load_plan(path)
    text = "\n".join(info.value.problems)
    assert "task T07: blocked_by: cycle T07 -> T08 -> T07" in text
    assert "task T09: files: '/etc/hosts' is absolute" in text
    assert "task T09: blocked_by: 'All Phase 2-3 tasks' is not a task id" in text
