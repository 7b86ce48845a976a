"""Cycles, topological order, critical path and parallelism of the plan graph."""

from __future__ import annotations

import typing as t

import pytest

from protocol.plan import Task
from protocol.plangraph import (
    critical_path,
    find_cycle,
    find_cycles,
    levels,
    max_parallelism,
    remaining_critical_path,
    topo_order,
)


def _t(task_id: str, *deps: str, effort: str = "1h") -> Task:
    return Task(id=task_id, blocked_by=deps, effort=effort, files=(f"{task_id}.py",))


DIAMOND = [
    _t("A", effort="30min"),
    _t("B", "A", effort="2h"),
    _t("C", "A", effort="1h"),
    _t("D", "B", "C", effort="30min"),
]


class CycleCase(t.NamedTuple):
    test_id: str
    tasks: list[Task]
    cycle: list[str] | None


CYCLE_CASES = [
    CycleCase("none", DIAMOND, None),
    CycleCase("two", [_t("T07", "T08"), _t("T08", "T07")], ["T07", "T08", "T07"]),
    CycleCase("self", [_t("A", "A")], ["A", "A"]),
    CycleCase(
        "three_with_tail",
        [_t("Z"), _t("C", "B", "Z"), _t("B", "A"), _t("A", "C")],
        ["A", "C", "B", "A"],
    ),
    CycleCase("unknown_deps_ignored", [_t("A", "nope")], None),
]


@pytest.mark.parametrize("case", CYCLE_CASES, ids=lambda c: c.test_id)
def test_find_cycle(case: CycleCase) -> None:
    assert find_cycle(case.tasks) == case.cycle


def test_find_cycles_reports_each_component() -> None:
    tasks = [_t("A", "B"), _t("B", "A"), _t("C", "D"), _t("D", "C"), _t("E", "A")]
    assert find_cycles(tasks) == [["A", "B", "A"], ["C", "D", "C"]]


def test_topo_order_deterministic_ties_by_id() -> None:
    tasks = [_t("c"), _t("b"), _t("a", "c"), _t("d", "a", "b")]
    assert topo_order(tasks) == ["b", "c", "a", "d"]
    assert topo_order(list(reversed(tasks))) == ["b", "c", "a", "d"]


def test_topo_order_rejects_cycle() -> None:
    with pytest.raises(ValueError, match="cycle: A -> B -> A"):
        topo_order([_t("A", "B"), _t("B", "A")])


def test_critical_path_diamond() -> None:
    assert critical_path(DIAMOND) == (180.0, ["A", "B", "D"])
    assert remaining_critical_path(DIAMOND) == {"A": 180.0, "B": 150.0, "C": 90.0, "D": 30.0}


def test_critical_path_tie_by_id() -> None:
    tasks = [_t("A"), _t("C", "A"), _t("B", "A")]
    assert critical_path(tasks) == (120.0, ["A", "B"])


def test_critical_path_empty() -> None:
    assert critical_path([]) == (0.0, [])
    assert max_parallelism([]) == 0


def test_max_parallelism() -> None:
    assert max_parallelism(DIAMOND) == 2
    assert levels(DIAMOND) == {"A": 0, "B": 1, "C": 1, "D": 2}
    wide = [_t(f"W{i}") for i in range(7)] + [_t("Z", "W0")]
    assert max_parallelism(wide) == 7


def test_long_chain_is_iterative() -> None:
    n = 10_000
    tasks = [_t(f"T{i:05d}", *([f"T{i - 1:05d}"] if i else []), effort="1min") for i in range(n)]
    assert find_cycle(tasks) is None
    order = topo_order(tasks)
    assert order[0] == "T00000" and order[-1] == f"T{n - 1:05d}"
    minutes, path = critical_path(tasks)
    assert minutes == n and len(path) == n
    assert max_parallelism(tasks) == 1
    looped = [*tasks[1:], _t("T00000", f"T{n - 1:05d}")]
    cycle = find_cycle(looped)
    assert cycle is not None and len(cycle) == n + 1
