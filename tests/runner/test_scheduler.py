"""The pure scheduler: table-driven cases and hypothesis properties over random DAGs."""

from __future__ import annotations

import random
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.manifest import lock_prefix, tasks_conflict
from protocol.plan import Concurrency, Plan, Task
from protocol.state import ACTIVE_TASK_STATES, TASK_STATES, TaskState
from runner.scheduler import Decision, PlanIndex, SchedulerInput, TaskStates, _prefix, decide


def _t(
    task_id: str,
    *deps: str,
    files: tuple[str, ...] | None = None,
    effort: str = "1h",
    priority: int = 0,
    concurrency: Concurrency = "write-local",
    done: bool = False,
) -> Task:
    return Task(
        id=task_id,
        blocked_by=deps,
        files=(f"{task_id}.py",) if files is None else files,
        effort=effort,
        priority=priority,
        concurrency=concurrency,
        status="done" if done else "todo",
    )


class Case(t.NamedTuple):
    test_id: str
    tasks: list[Task]
    states: dict[str, TaskState]
    expected: Decision
    max_workers: int = 5
    waves: bool = False
    paused: bool = False
    case_sensitive: bool = True


def _d(
    start: tuple[str, ...] = (),
    skip: tuple[tuple[str, str], ...] = (),
    blocked: tuple[str, ...] = (),
) -> Decision:
    return Decision(start=start, skip=skip, blocked_by_lock=blocked)


CASES = [
    Case("roots_start", [_t("A"), _t("B"), _t("C", "A")], {}, _d(("A", "B"))),
    Case(
        "longest_remaining_path_first",
        [_t("A", effort="S"), _t("B", effort="S"), _t("C", "B", effort="XL")],
        {},
        _d(("B", "A")),
    ),
    Case(
        "priority_breaks_ties",
        [_t("A", priority=2), _t("B", priority=1), _t("C", priority=1)],
        {},
        _d(("B", "C", "A")),
    ),
    Case("max_workers_limits", [_t("C"), _t("B"), _t("A")], {}, _d(("A", "B")), max_workers=2),
    Case(
        "active_tasks_use_slots",
        [_t("A"), _t("B"), _t("C")],
        {"A": "running", "B": "rework"},
        _d(("C",)),
        max_workers=3,
    ),
    Case("slots_full", [_t("A"), _t("B")], {"A": "validating"}, _d(), max_workers=1),
    Case("dependency_unmerged", [_t("A"), _t("B", "A")], {"A": "offered"}, _d()),
    Case("dependency_merged", [_t("A"), _t("B", "A")], {"A": "merged"}, _d(("B",))),
    Case("done_task_counts_as_merged", [_t("A", done=True), _t("B", "A")], {}, _d(("B",))),
    Case(
        "lock_held_by_active",
        [_t("A", files=("src/",)), _t("B", files=("src/x.py",)), _t("C")],
        {"A": "running"},
        _d(("C",), blocked=("B",)),
    ),
    Case(
        "lock_taken_in_same_decision",
        [_t("A", files=("src/core",), effort="2h"), _t("B", files=("src/core/a.py",))],
        {},
        _d(("A",), blocked=("B",)),
    ),
    Case(
        "glob_prefix_lock",
        [_t("A", files=("src/**/*.py",), effort="2h"), _t("B", files=("src/x/y.txt",))],
        {},
        _d(("A",), blocked=("B",)),
    ),
    Case(
        "read_only_beside_anything",
        [
            _t("A", files=("src/",), concurrency="write-shared"),
            _t("B", files=("src/",), concurrency="read-only"),
        ],
        {"A": "running"},
        _d(("B",)),
    ),
    Case(
        "write_shared_waits_for_writers",
        [_t("A"), _t("B", concurrency="write-shared")],
        {"A": "running"},
        _d(blocked=("B",)),
    ),
    Case(
        "write_shared_blocks_writers",
        [_t("A", concurrency="write-shared", effort="2h"), _t("B")],
        {},
        _d(("A",), blocked=("B",)),
    ),
    Case(
        "case_insensitive_conflict",
        [_t("A", files=("Src/X.py",)), _t("B", files=("src/x.py",))],
        {"A": "running"},
        _d(blocked=("B",)),
        case_sensitive=False,
    ),
    Case(
        "case_sensitive_no_conflict",
        [_t("A", files=("Src/X.py",)), _t("B", files=("src/x.py",))],
        {"A": "running"},
        _d(("B",)),
    ),
    Case(
        "skip_transitively",
        [_t("A"), _t("B", "A"), _t("C", "B"), _t("D", "C", "E"), _t("E")],
        {"A": "failed", "E": "merged"},
        _d(
            skip=(
                ("B", "dependency A failed"),
                ("C", "dependency B skipped"),
                ("D", "dependency C skipped"),
            )
        ),
    ),
    Case(
        "skip_each_dead_state",
        [
            _t("A"),
            _t("B"),
            _t("C"),
            _t("D"),
            _t("W", "A"),
            _t("X", "B"),
            _t("Y", "C"),
            _t("Z", "D"),
        ],
        {"A": "blocked", "B": "cancelled", "C": "skipped", "D": "failed"},
        _d(
            skip=(
                ("W", "dependency A blocked"),
                ("X", "dependency B cancelled"),
                ("Y", "dependency C skipped"),
                ("Z", "dependency D failed"),
            )
        ),
    ),
    Case(
        "running_dependent_not_skipped",
        [_t("A"), _t("B", "A")],
        {"A": "failed", "B": "running"},
        _d(),
    ),
    Case(
        "paused_starts_nothing_but_skips",
        [_t("A"), _t("B", "A"), _t("C")],
        {"A": "failed"},
        _d(skip=(("B", "dependency A failed"),)),
        paused=True,
    ),
    Case(
        "waves_barrier",
        [_t("A", effort="S"), _t("B", effort="L"), _t("C", "A")],
        {"A": "merged", "B": "running"},
        _d(),
        waves=True,
    ),
    Case(
        "waves_next_wave_when_idle",
        [_t("A", effort="S"), _t("B", effort="L"), _t("C", "A"), _t("D")],
        {"A": "merged", "B": "merged"},
        _d(("C", "D")),
        waves=True,
    ),
    Case(
        "continuous_no_barrier",
        [_t("A", effort="S"), _t("B", effort="L"), _t("C", "A")],
        {"A": "merged", "B": "running"},
        _d(("C",)),
    ),
    Case("terminal_not_restarted", [_t("A"), _t("B")], {"A": "merged", "B": "failed"}, _d()),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.test_id)
def test_decide(case: Case) -> None:
    inp = SchedulerInput(
        plan=Plan(tasks=tuple(case.tasks)),
        states=case.states,
        max_workers=case.max_workers,
        waves=case.waves,
        paused=case.paused,
        case_sensitive=case.case_sensitive,
    )
    assert decide(inp) == case.expected
    # the incremental view answers the same
    view = TaskStates(PlanIndex.build(inp.plan, case_sensitive=case.case_sensitive), case.states)
    assert decide(SchedulerInput(**{**inp.__dict__, "states": view})) == case.expected


def test_blocked_by_lock_only_while_a_slot_is_free() -> None:
    tasks = [_t("A", files=("src/",)), _t("B", files=("src/x",)), _t("C"), _t("D")]
    plan = Plan(tasks=tuple(tasks))
    decision = decide(SchedulerInput(plan=plan, states={"A": "running"}, max_workers=2))
    assert decision == _d(("C",), blocked=("B",))


def test_task_states_tracks_changes() -> None:
    plan = Plan(tasks=(_t("A"), _t("B", "A"), _t("C", "B")))
    view = TaskStates(PlanIndex.build(plan))
    assert list(view.ready()) == ["A"] and dict(view) == dict.fromkeys("ABC", "pending")
    view.set("A", "running")
    assert view.active == ("A",) and list(view.ready()) == []
    view.set("A", "merged")
    assert list(view.ready()) == ["B"]
    view.set("B", "failed")
    assert view.doomed == ("C",)
    view.set("B", "pending")  # retried
    assert not view.doomed and list(view.ready()) == ["B"]
    view.set("A", "rework")  # un-merged: B waits again
    assert list(view.ready()) == [] and view.active == ("A",)


def test_cycle_is_an_error() -> None:
    plan = Plan(tasks=(_t("A", "B"), _t("B", "A")))
    with pytest.raises(ValueError, match="cycle"):
        decide(SchedulerInput(plan=plan, states={}, max_workers=2))


# -- properties ---------------------------------------------------------------------------

PATHS = ["a", "a/b", "a/b/c.py", "a/x.py", "d", "d/e.py", "*.md", "a/*.py", "f.py", "D/E.py"]
CONCURRENCY: tuple[Concurrency, ...] = ("read-only", "write-local", "write-local", "write-shared")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Plan, dict[str, TaskState], int, bool, bool]:
    count = draw(st.integers(min_value=1, max_value=12))
    tasks = []
    for i in range(count):
        deps = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        tasks.append(
            Task(
                id=f"T{i:02d}",
                blocked_by=tuple(f"T{dep:02d}" for dep in sorted(deps)),
                files=tuple(draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=3))),
                concurrency=draw(st.sampled_from(CONCURRENCY)),
                effort=draw(st.sampled_from(["S", "M", "1h", "10min"])),
                priority=draw(st.integers(min_value=0, max_value=2)),
                status=draw(st.sampled_from(["todo", "todo", "todo", "done"])),
            )
        )
    states = {task.id: draw(st.sampled_from(TASK_STATES)) for task in tasks if draw(st.booleans())}
    workers = draw(st.integers(min_value=1, max_value=4))
    return (
        Plan(tasks=tuple(tasks)),
        states,
        workers,
        draw(st.booleans()),
        draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_decide_properties(scenario: tuple[Plan, dict[str, TaskState], int, bool, bool]) -> None:
    plan, states, workers, waves, case_sensitive = scenario
    inp = SchedulerInput(
        plan=plan, states=states, max_workers=workers, waves=waves, case_sensitive=case_sensitive
    )
    decision = decide(inp)

    def state(task: Task) -> TaskState:
        return "merged" if task.status == "done" else states.get(task.id, "pending")

    active = [task for task in plan.tasks if state(task) in ACTIVE_TASK_STATES]
    started = [plan.task(tid) for tid in decision.start]
    assert len(set(decision.start)) == len(decision.start)
    if started:
        assert len(active) + len(started) <= workers
        if waves:
            assert not active
    skipped = {tid for tid, _ in decision.skip}
    for task in started:
        assert state(task) in ("pending", "ready")
        assert task.id not in skipped
        assert all(state(plan.task(dep)) == "merged" for dep in task.blocked_by)
    for i, task in enumerate(started):
        for other in [*active, *started[:i]]:
            assert not tasks_conflict(task, other, case_sensitive=case_sensitive)
    for tid in skipped:
        assert state(plan.task(tid)) in ("pending", "ready")
    # deterministic: the same states in another insertion order give the same decision
    shuffled = list(states.items())
    random.Random(len(shuffled)).shuffle(shuffled)
    assert decide(SchedulerInput(**{**inp.__dict__, "states": dict(shuffled)})) == decision


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.lists(st.tuples(st.integers(0, 11), st.sampled_from(TASK_STATES))))
def test_incremental_view_matches_fresh(
    scenario: tuple[Plan, dict[str, TaskState], int, bool, bool],
    changes: list[tuple[int, TaskState]],
) -> None:
    plan, states, workers, waves, case_sensitive = scenario
    view = TaskStates(PlanIndex.build(plan, case_sensitive=case_sensitive), states)
    current = dict(view)
    for number, new_state in changes:
        if number >= len(plan.tasks) or plan.tasks[number].status == "done":
            continue
        task_id = plan.tasks[number].id
        view.set(task_id, new_state)
        current[task_id] = new_state
        base = SchedulerInput(
            plan=plan,
            states=current,
            max_workers=workers,
            waves=waves,
            case_sensitive=case_sensitive,
        )
        incremental = SchedulerInput(**{**base.__dict__, "states": view})
        assert decide(incremental) == decide(base)
        assert dict(view) == current


def _prefix_or_error(function: t.Callable[[str], str], entry: str) -> str:
    try:
        return function(entry)
    except ValueError as exc:
        return f"error: {exc}"


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab/.*?[: \\\0", max_size=12))
def test_plain_entry_shortcut_is_lock_prefix(entry: str) -> None:
    # the index skips lock_prefix's normalization for plain entries: same answer, same errors
    assert _prefix_or_error(_prefix, entry) == _prefix_or_error(lock_prefix, entry)


def test_root_lock_is_not_exclusive() -> None:
    # "*.md" locks the root "": it conflicts with every write task, and a read-only one runs
    tasks = [
        _t("A", files=("*.md",)),
        _t("B", files=("b/x.py",)),
        _t("C", concurrency="read-only"),
    ]
    inp = SchedulerInput(plan=Plan(tasks=tuple(tasks)), states={"A": "running"}, max_workers=3)
    assert decide(inp) == _d(("C",), blocked=("B",))
    assert PlanIndex.build(inp.plan).locks["A"].kind == "paths"


def _naive_ancestors(prefixes: t.Iterable[str]) -> set[str]:
    found: set[str] = set()
    for prefix in prefixes:
        if prefix:
            parts = prefix.split("/")
            found |= {"/".join(parts[:i]) for i in range(len(parts))}
    return found


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_index_locks_are_each_tasks_own(
    scenario: tuple[Plan, dict[str, TaskState], int, bool, bool],
) -> None:
    # the index shares ancestor tuples between tasks: each task still gets exactly its own
    plan, _states, _workers, _waves, case_sensitive = scenario
    locks = PlanIndex.build(plan, case_sensitive=case_sensitive).locks
    for task in plan.tasks:
        spec = locks[task.id]
        if task.concurrency == "read-only":
            assert spec.kind == "none"
        elif task.concurrency == "write-shared" or not task.files:
            assert spec.kind == "exclusive"
        else:
            fold = (lambda p: p) if case_sensitive else str.casefold
            prefixes = {fold(lock_prefix(entry)) for entry in task.files}
            assert set(spec.prefixes) == prefixes
            assert set(spec.ancestors) == _naive_ancestors(prefixes)
