"""What `swarm plan validate` reports about a valid plan."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from protocol.plan import Plan, Task
from protocol.plangraph import critical_path
from protocol.plangraph import max_parallelism as graph_width

UNKNOWN_SCOPE: t.Final[tuple[str, ...]] = ("**",)
"""What an importer gives a task whose source names no files (with ``write-shared``)."""


@dataclass(frozen=True)
class PlanSummary:
    """Counts and the shape of the remaining work (tasks not already done)."""

    name: str
    tasks: int
    done: int
    critical_minutes: float
    critical_ids: tuple[str, ...]
    max_parallelism: int
    """The most tasks the scheduler runs at once, locks included, with a worker per task."""
    gates: tuple[str, ...]
    graph_width: int = 0
    """The widest level of the dependency graph alone (what locks may cut down)."""
    notes: tuple[str, ...] = ()
    """Why ``max_parallelism`` is low, each with the fix."""

    @property
    def todo(self) -> int:
        return self.tasks - self.done

    def as_json(self) -> dict[str, t.Any]:
        return {
            "name": self.name,
            "tasks": self.tasks,
            "done": self.done,
            "todo": self.todo,
            "critical_path": {"minutes": self.critical_minutes, "ids": list(self.critical_ids)},
            "max_parallelism": self.max_parallelism,
            "graph_width": self.graph_width,
            "gates": list(self.gates),
            "notes": list(self.notes),
        }


def summarize(plan: Plan) -> PlanSummary:
    """Summarize ``plan``; the critical path and parallelism cover the tasks still to do."""
    todo = [task for task in plan.tasks if task.status != "done"]
    minutes, path = critical_path(todo)
    width = graph_width(todo)
    parallel = scheduler_parallelism(plan)
    return PlanSummary(
        name=plan.name,
        tasks=len(plan.tasks),
        done=len(plan.tasks) - len(todo),
        critical_minutes=minutes,
        critical_ids=tuple(path),
        max_parallelism=parallel,
        gates=tuple(gate.name for gate in plan.gates),
        graph_width=width,
        notes=parallelism_notes(todo, parallel, width),
    )


def scheduler_parallelism(plan: Plan) -> int:
    """The most tasks running at once when ``plan`` is simulated with a worker per task: the
    scheduler's own decisions, so touches locks and write-shared tasks count (0 for nothing
    to do)."""
    # imported here: runner.simulate uses format_minutes from this module
    from runner.simulate import simulate

    todo = sum(1 for task in plan.tasks if task.status != "done")
    if not todo:
        return 0
    sim = simulate(plan, workers=todo)
    # an end and a start at the same minute do not overlap (the slot is handed over)
    edges = sorted([(task.start, 1) for task in sim.tasks] + [(task.end, -1) for task in sim.tasks])
    running = peak = 0
    for _moment, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def unscoped(tasks: t.Iterable[Task]) -> list[str]:
    """Ids of the writing tasks that lock the whole repository: no manifest, or the one an
    importer gives a task whose source lists no files (``files: ['**']``, write-shared)."""
    return [
        task.id
        for task in tasks
        if task.writes
        and (not task.files or (task.files == UNKNOWN_SCOPE and task.concurrency == "write-shared"))
    ]


def unscoped_note(count: int, total: int) -> str:
    """The note for ``count`` of ``total`` tasks without a manifest, with the fix."""
    return (
        f"{count} of {total} tasks have no manifest (files ['**'], write-shared), so each runs "
        "alone: give every task the files it changes (beads metadata.files, TaskCreate "
        "metadata.files, a files list on an OL wave entry, Touches in plan.md) to let them run "
        "in parallel"
    )


def parallelism_notes(todo: t.Sequence[Task], parallel: int, width: int) -> tuple[str, ...]:
    notes: list[str] = []
    blank = unscoped(todo)
    if blank:
        notes.append(unscoped_note(len(blank), len(todo)))
    if parallel < width:
        notes.append(
            f"touches locks let {parallel} of the {width} tasks the dependency graph allows at "
            "once run together: tasks whose manifests overlap, or write-shared ones, take turns"
        )
    return tuple(notes)


def format_minutes(minutes: float) -> str:
    """``90`` -> ``1h 30min``; ``45`` -> ``45min``; ``0`` -> ``0min``."""
    whole = round(minutes)
    hours, rest = divmod(whole, 60)
    if hours and rest:
        return f"{hours}h {rest}min"
    if hours:
        return f"{hours}h"
    if whole == 0 and minutes > 0:
        return f"{minutes:.1f}min"
    return f"{rest}min"
