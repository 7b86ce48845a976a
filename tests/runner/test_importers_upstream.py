"""agentops and swarm-iosm importers against the upstream projects' own files.

The fixtures are in tests/fixtures/upstream (its README names each file's repository, commit
and path). The swarm-iosm reference planner is run on its own demo track and template, and its
task graph compared with ours.
"""

from __future__ import annotations

import copy
import functools
import importlib.machinery
import importlib.util
import json
import pathlib
import sys
import types
import typing as t

import pytest

from protocol.manifest import normalize
from protocol.plan import effort_minutes
from runner.plan.importers import PlanImportError, detect_format, import_plan
from runner.plan.load import check_plan

UPSTREAM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
AGENTOPS = UPSTREAM / "agentops"
IOSM = UPSTREAM / "swarm-iosm"

# skills/standards/references/test-pyramid.md, "Test Level Metadata for Issues"
TEST_LEVELS: t.Final = {
    "required": ["L2"],
    "recommended": ["L1", "L3"],
    "deferred": [],
    "rationale": "AI-native default: L2 first for bug-finding, L1 always for regression "
    "safety. AI agents write both. L3 if full subsystem affected.",
}


def checked_tasks(plan: dict[str, t.Any]) -> dict[str, t.Any]:
    result, problems = check_plan(plan, "imported")
    assert result is not None, problems
    return {task.id: task for task in result.tasks}


# --- agentops TaskCreate (crank's own examples) -------------------------------------------


def test_taskcreate_examples_keep_their_validation_blocks() -> None:
    text = (AGENTOPS / "taskcreate-examples.json").read_text()
    assert detect_format(text, "tasks.json") == "agentops-tasks"
    tasks = checked_tasks(import_plan(text, source="tasks.json"))
    spec, test, green, impl, docs = tasks.values()
    # SPEC and TEST waves carry their checks only in a ```validation block of the description
    assert spec.validation.files_exist == (".agents/specs/contract-<issue-id>.md",)
    assert [c.pattern for c in spec.validation.content_check] == ["## Invariants", "## Test Cases"]
    assert test.validation.files_exist == ("<test-file-path-1>", "<test-file-path-2>")
    assert green.validation.empty
    # metadata.validation wins key by key over the block in the same description
    assert impl.validation.tests == "go test ./cmd/ao -run TestFeatureName -count=1"
    assert impl.validation.command == "go vet ./cmd/ao"
    assert impl.files == ("<expected-modified-file-1>", "<expected-modified-file-2>")
    assert impl.issue_type == "feature"
    assert docs.validation.lint == "npm run lint"
    assert docs.validation.content_check[0].file == "<expected-output-file-1>"


def test_taskcreate_block_only_keys_survive_next_to_metadata_validation() -> None:
    entries = json.loads((AGENTOPS / "taskcreate-examples.json").read_text())
    impl = copy.deepcopy(entries[3])
    del impl["metadata"]["validation"]["command"]  # the block has one
    plan = import_plan(json.dumps([impl]), source="tasks.json")
    (task,) = checked_tasks(plan).values()
    assert task.validation.command == "go test ./cmd/ao -run TestSmoke -count=1"


def test_taskcreate_test_levels_are_carried_not_refused() -> None:
    # crank: "carry it forward into metadata.validation.test_levels"
    entries = json.loads((AGENTOPS / "taskcreate-examples.json").read_text())
    impl = copy.deepcopy(entries[3])
    impl["metadata"]["validation"]["test_levels"] = TEST_LEVELS
    plan = import_plan(json.dumps([impl]), source="tasks.json")
    (task,) = checked_tasks(plan).values()
    assert task.metadata["test_levels"] == TEST_LEVELS
    assert task.validation.tests == "go test ./cmd/ao -run TestFeatureName -count=1"


# --- OL wave (the swarm skill's own example) ----------------------------------------------


def test_ol_wave_example_becomes_the_tasks_agentops_creates() -> None:
    text = (AGENTOPS / "ol-wave.json").read_text()
    assert detect_format(text, "wave.json") == "ol-wave"
    tasks = checked_tasks(import_plan(text, source="wave.json"))
    assert list(tasks) == ["ol-527.1", "ol-527.2"]  # blocked[] and completed[] do not run
    first = tasks["ol-527.1"]
    assert first.subject == "[ol-527.1] Add auth middleware"
    assert first.description == (
        "OL bead ol-527.1\nSpec: quests/ol-527/specs/ol-527.1.md\nPriority: 1\n\n"
        "Read the spec file at quests/ol-527/specs/ol-527.1.md for full requirements."
    )
    assert first.metadata == {
        "ol_bead_id": "ol-527.1",
        "ol_spec_path": "quests/ol-527/specs/ol-527.1.md",
        "ol_priority": 1,
    }


# --- swarm-iosm: graph equality with the reference planner --------------------------------


@functools.cache
def reference_module() -> types.ModuleType:
    """The upstream planner as a module. It uses ``Optional`` without importing it (a
    NameError on every Python), so the module gets it before its code runs."""
    name = "swarm_iosm_orchestration_planner"
    path = IOSM / "orchestration_planner.py.txt"
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.Optional = t.Optional  # type: ignore[attr-defined]
    sys.modules[name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


def reference_planner() -> t.Any:
    return reference_module().OrchestrationPlanner


def reference_effort(effort: str) -> int:
    minutes: int = reference_module().effort_to_minutes(effort)
    return minutes


Graph = dict[str, tuple[list[str], list[str], str, bool, str, float]]


def reference_graph(path: pathlib.Path) -> Graph:
    planner = reference_planner()(str(path))
    planner.parse_plan()
    graph: Graph = {}
    for tid, task in planner.tasks.items():
        graph[tid] = (
            task.depends_on,
            # deliberate deviations (docs/importers.md): [bracketed] items are notes, paths are
            # normalized; the reference keeps both as locks
            [normalize(p) for p in task.touches if f"[{p}]" not in _touches_line(path, tid)],
            task.concurrency_class,
            task.needs_user_input,
            task.severity,
            float(reference_effort(task.effort)),
        )
    return graph


def _touches_line(path: pathlib.Path, tid: str) -> str:
    text = path.read_text()
    block = text[text.index(f"**{tid}**") :]
    return next(line for line in block.splitlines() if "**Touches:**" in line)


def our_graph(path: pathlib.Path) -> Graph:
    plan = import_plan(path.read_text(), fmt="iosm-md", source=path.name)
    tasks = checked_tasks(plan)
    return {
        tid: (
            list(task.blocked_by),
            list(task.files),
            task.concurrency,
            task.needs_user_input,
            task.severity,
            effort_minutes(task.effort),
        )
        for tid, task in tasks.items()
    }


def test_demo_track_graph_equals_the_reference_planners() -> None:
    path = IOSM / "demo-track-plan.md"
    ours = our_graph(path)
    assert list(ours) == ["T01", "T02", "T03", "T04", "T05", "T06"]
    assert ours == reference_graph(path)
    assert ours["T03"][5] == 180  # "M (3 hours)": the hours, not M's 150


# The template's two lines that the reference reads wrongly and we refuse, written as what
# their authors meant; the rest of the template is compared as it is.
TEMPLATE_FIXES: t.Final = {
    "  - **Depends on:** All Phase 2-3 tasks": (
        "  - **Depends on:** T05, T06, T07, T08, T09, T10, T11"
    ),
    "  - **Touches:** `deploy/`, CI/CD configs, `rollback_guide.md`": (
        "  - **Touches:** `deploy/`, `.github/workflows/`, `rollback_guide.md`"
    ),
}


def test_template_is_refused_exactly_where_the_reference_goes_wrong() -> None:
    text = (IOSM / "template-plan.md").read_text()
    with pytest.raises(PlanImportError) as info:
        import_plan(text, fmt="iosm-md", source="plan.md")
    assert info.value.problems == [
        "plan.md: line 420: task T12: Depends on: 'All Phase 2-3 tasks' is prose, not task ids; "
        "list the ids it waits for (e.g. T05, T06), or 'none'",
        "plan.md: line 448: task T14: Touches: 'CI/CD configs' is prose, not a path; write paths "
        "(in backticks: `src/x.py`, `docs/`) and put notes in [brackets]",
    ]


def test_template_graph_equals_the_reference_planners(tmp_path: pathlib.Path) -> None:
    text = (IOSM / "template-plan.md").read_text()
    for wrong, meant in TEMPLATE_FIXES.items():
        assert wrong in text
        text = text.replace(wrong, meant)
    path = tmp_path / "plan.md"
    path.write_text(text)
    ours = our_graph(path)
    assert len(ours) == 15
    assert ours == reference_graph(path)
    assert ours["T07"][5] == 15 * 60  # "XL (10-15 hours)": the upper bound, as the planner
