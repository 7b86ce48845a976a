"""The scheduler on a virtual clock, the Gantt chart and the Mermaid graph."""

from __future__ import annotations

import pathlib
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.manifest import tasks_conflict
from protocol.plan import Concurrency, Plan, Task
from runner.plan.load import load_plan
from runner.simulate import SimTask, Simulation, gantt, mermaid, simulate, speedup

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _t(
    task_id: str,
    *deps: str,
    effort: str = "1h",
    files: tuple[str, ...] | None = None,
    done: bool = False,
    subject: str = "",
) -> Task:
    return Task(
        id=task_id,
        blocked_by=deps,
        effort=effort,
        files=(f"{task_id}.py",) if files is None else files,
        status="done" if done else "todo",
        subject=subject,
    )


def _spans(sim: Simulation) -> dict[str, tuple[float, float]]:
    return {task.id: (task.start, task.end) for task in sim.tasks}


def test_diamond_example() -> None:
    sim = simulate(load_plan(EXAMPLES / "diamond.yaml"), workers=2)
    assert _spans(sim) == {
        "T01": (0, 30),
        "T02": (30, 90),
        "T03": (30, 60),
        "T04": (90, 120),
    }
    assert sim.makespan == 120
    assert sim.critical_path == (120, ["T01", "T02", "T04"])
    assert {task.worker_slot for task in sim.tasks} == {0, 1}


class MakespanCase(t.NamedTuple):
    test_id: str
    tasks: list[Task]
    workers: int
    continuous: float
    waves: float


MAKESPAN_CASES = [
    MakespanCase(
        "waves_wait_for_the_slow_task",
        [_t("A", effort="S"), _t("B", effort="XL"), _t("C", "A", effort="S")],
        2,
        720,
        750,
    ),
    MakespanCase("one_worker_serial", [_t("A"), _t("B"), _t("C")], 1, 180, 180),
    MakespanCase(
        "locks_serialize",
        [_t("A", files=("src/",)), _t("B", files=("src/x.py",)), _t("C")],
        3,
        120,
        120,
    ),
    MakespanCase("done_tasks_skipped", [_t("A", done=True), _t("B", "A")], 2, 60, 60),
    MakespanCase("all_done", [_t("A", done=True)], 2, 0, 0),
]


@pytest.mark.parametrize("case", MAKESPAN_CASES, ids=lambda c: c.test_id)
def test_makespan(case: MakespanCase) -> None:
    plan = Plan(tasks=tuple(case.tasks))
    continuous = simulate(plan, workers=case.workers)
    waves = simulate(plan, workers=case.workers, waves=True)
    assert continuous.makespan == case.continuous
    assert waves.makespan == case.waves
    assert speedup(continuous, waves) == (case.waves / case.continuous if case.continuous else 1)


def test_bad_worker_count() -> None:
    with pytest.raises(ValueError, match="bad worker count 0"):
        simulate(Plan(tasks=(_t("A"),)), workers=0)


def test_long_chain_simulates() -> None:
    n = 10_000
    tasks = tuple(_t(f"T{i}", *([f"T{i - 1}"] if i else []), effort="1min") for i in range(n))
    sim = simulate(Plan(tasks=tasks), workers=5)
    assert sim.makespan == n and len(sim.tasks) == n


PATHS = ["a", "a/b", "a/b/c.py", "d", "d/e.py", "*.md", "f.py"]
CONCURRENCY: tuple[Concurrency, ...] = ("read-only", "write-local", "write-local", "write-shared")


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    count = draw(st.integers(min_value=1, max_value=15))
    tasks = []
    for i in range(count):
        deps = draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else set()
        tasks.append(
            Task(
                id=f"T{i:02d}",
                blocked_by=tuple(f"T{dep:02d}" for dep in sorted(deps)),
                files=tuple(draw(st.lists(st.sampled_from(PATHS), min_size=1, max_size=2))),
                concurrency=draw(st.sampled_from(CONCURRENCY)),
                effort=draw(st.sampled_from(["S", "M", "1h", "10min"])),
            )
        )
    return Plan(tasks=tuple(tasks))


@settings(max_examples=200, deadline=None)
@given(plans(), st.integers(min_value=1, max_value=4), st.booleans())
def test_simulation_invariants(plan: Plan, workers: int, waves: bool) -> None:
    sim = simulate(plan, workers=workers, waves=waves)
    spans = _spans(sim)
    assert sorted(spans) == sorted(task.id for task in plan.tasks)  # everything ran once
    for task in plan.tasks:
        start, end = spans[task.id]
        assert end - start == task.minutes
        for dep in task.blocked_by:
            assert spans[dep][1] <= start
    for a in sim.tasks:
        assert 0 <= a.worker_slot < workers
        overlapping = [b for b in sim.tasks if b.start <= a.start < b.end and b.id != a.id]
        assert len(overlapping) < workers
        for b in overlapping:
            assert b.worker_slot != a.worker_slot
            assert not tasks_conflict(plan.task(a.id), plan.task(b.id))
    assert sim.makespan >= sim.critical_path[0]


def test_gantt_fits_width() -> None:
    sim = simulate(load_plan(EXAMPLES / "diamond.yaml"), workers=2)
    chart = gantt(sim)
    lines = chart.splitlines()
    assert len(lines) == 5
    assert all(len(line) <= 80 for line in lines)
    assert lines[0].startswith("task w |0") and lines[0].endswith("2h|")
    assert lines[1].startswith("T01  1 |#")
    assert lines[4].endswith("| 1h 30min-2h")
    assert all(len(line) <= 60 for line in gantt(sim, width=60).splitlines())


def test_gantt_long_ids_and_many_rows() -> None:
    tasks = tuple(_t(f"task-with-a-very-long-name-{i:03d}", effort="1h") for i in range(50))
    sim = simulate(Plan(tasks=tasks), workers=7)
    lines = gantt(sim, max_rows=10).splitlines()
    assert len(lines) == 12
    assert lines[-1] == "... 40 more tasks"
    assert all(len(line) <= 80 for line in lines)
    assert len(gantt(sim, max_rows=None).splitlines()) == 51


def test_gantt_empty() -> None:
    assert gantt(Simulation(tasks=(), makespan=0, critical_path=(0, []))) == "(nothing to run)"


def test_gantt_zero_length_task_visible() -> None:
    sim = Simulation(
        tasks=(SimTask("A", 0, 0, 0), SimTask("B", 0, 60, 1)),
        makespan=60,
        critical_path=(60, ["B"]),
    )
    assert "|#" in gantt(sim).splitlines()[1]


def test_mermaid() -> None:
    plan = Plan(
        tasks=(
            _t("A", subject='Say "hi"', done=True),
            _t("B", "A"),
            _t("C", "A", "B"),
        )
    )
    assert mermaid(plan) == (
        "graph TD\n"
        '  t0["A: Say #quot;hi#quot;"]\n'
        '  t1["B"]\n'
        '  t2["C"]\n'
        "  t0 --> t1\n"
        "  t0 --> t2\n"
        "  t1 --> t2\n"
        "  classDef done fill:#ddd,stroke:#999,color:#555;\n"
        "  class t0 done;\n"
    )
