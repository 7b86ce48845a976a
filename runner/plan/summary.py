"""What `swarm plan validate` reports about a valid plan."""

from __future__ import annotations

import typing as t
from dataclasses import dataclass

from protocol.plan import Plan
from protocol.plangraph import critical_path, max_parallelism


@dataclass(frozen=True)
class PlanSummary:
    """Counts and the shape of the remaining work (tasks not already done)."""

    name: str
    tasks: int
    done: int
    critical_minutes: float
    critical_ids: tuple[str, ...]
    max_parallelism: int
    gates: tuple[str, ...]

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
            "gates": list(self.gates),
        }


def summarize(plan: Plan) -> PlanSummary:
    """Summarize ``plan``; the critical path and parallelism cover the tasks still to do."""
    todo = [task for task in plan.tasks if task.status != "done"]
    minutes, path = critical_path(todo)
    return PlanSummary(
        name=plan.name,
        tasks=len(plan.tasks),
        done=len(plan.tasks) - len(todo),
        critical_minutes=minutes,
        critical_ids=tuple(path),
        max_parallelism=max_parallelism(todo),
        gates=tuple(gate.name for gate in plan.gates),
    )


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
