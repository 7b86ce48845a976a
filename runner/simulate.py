"""The scheduler on a virtual clock: efforts as durations (minutes), every task succeeds.

The same :func:`runner.scheduler.decide` the mayor uses chooses what starts, so locks, the
critical-path order and waves behave in the simulation as they do in a run.
"""

from __future__ import annotations

import collections
import heapq
import typing as t
from dataclasses import dataclass

from protocol.hosts import HostSpec
from protocol.plan import Plan
from runner.hosts.placement import choose
from runner.plan.summary import format_minutes
from runner.scheduler import PlanIndex, SchedulerInput, TaskStates, decide


@dataclass(frozen=True, slots=True)
class SimTask:
    id: str
    start: float
    end: float
    worker_slot: int
    host: str = ""
    """Where the task ran (``hosts``; :func:`runner.hosts.placement.choose`), else empty."""


@dataclass(frozen=True)
class Simulation:
    tasks: tuple[SimTask, ...]
    """Simulated tasks in start order (done tasks are not run)."""
    makespan: float
    critical_path: tuple[float, list[str]]
    workers: int = 1
    waves: bool = False


def simulate(
    plan: Plan, *, workers: int, waves: bool = False, hosts: t.Sequence[HostSpec] = ()
) -> Simulation:
    """Run ``plan`` on ``workers`` virtual workers; ValueError for fewer than one worker.
    With ``hosts``, each start is placed on a host as the mayor places it."""
    if workers < 1:
        raise ValueError(f"bad worker count {workers}: use 1 or more")
    index = PlanIndex.build(plan)
    states = TaskStates(index)
    minutes, position = index.minutes_of, index.position
    free = list(range(workers))
    running: list[tuple[float, int, str]] = []  # (end, slot, id): slots are unique
    done: list[SimTask] = []
    used: collections.Counter[str] = collections.Counter()  # workers per host
    placed: dict[str, str] = {}
    now = 0.0
    question = SchedulerInput(plan=plan, states=states, max_workers=workers, waves=waves)
    while True:
        decision = decide(question)  # the same question each time: ``states`` moves on
        if decision.skip:
            for task_id, _reason in decision.skip:
                states.set(task_id, "skipped")
        for task_id in decision.start:
            slot = heapq.heappop(free)
            end = now + minutes[position[task_id]]
            states.set(task_id, "running")
            heapq.heappush(running, (end, slot, task_id))
            host = ""
            if hosts:  # placement bookkeeping only where there is any (10,000 tasks: memory)
                host = choose(hosts, used)
                placed[task_id] = host
                used[host] += 1
            done.append(SimTask(task_id, now, end, slot, host))
        if not running:
            break
        now = running[0][0]
        while running and running[0][0] == now:
            _, slot, task_id = heapq.heappop(running)
            states.set(task_id, "merged")
            heapq.heappush(free, slot)
            if hosts:
                used[placed[task_id]] -= 1
    return Simulation(
        tasks=tuple(done),
        makespan=max((task.end for task in done), default=0.0),
        critical_path=index.critical_path,
        workers=workers,
        waves=waves,
    )


def gantt(sim: Simulation, width: int = 80, *, max_rows: int | None = 40) -> str:
    """A text Gantt chart, one row per task in start order, no line longer than ``width``."""
    rows = list(sim.tasks)
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        hidden = len(rows) - max_rows
        rows = rows[:max_rows]
    if not rows:
        return "(nothing to run)"
    label = max(min(max(len(task.id) for task in rows), 16), len("task"))
    slot_width = len(str(max(task.worker_slot for task in rows) + 1))
    times = [f"{format_minutes(task.start)}-{format_minutes(task.end)}" for task in rows]
    time_width = max(len(text) for text in times)
    bar_width = max(width - label - slot_width - time_width - 5, 10)
    span = sim.makespan or 1.0
    scale = bar_width / span
    lines = []
    ruler_end = format_minutes(sim.makespan)
    head = f"{'task':<{label}} {'w':>{slot_width}} |"
    ruler = "0" + ruler_end.rjust(bar_width - 1) if bar_width > len(ruler_end) else "0"
    lines.append(f"{head}{ruler}|")
    for task, text in zip(rows, times, strict=True):
        first = min(round(task.start * scale), bar_width - 1)
        last = max(first + 1, min(round(task.end * scale), bar_width))
        bar = " " * first + "#" * (last - first) + " " * (bar_width - last)
        name = task.id if len(task.id) <= label else task.id[: label - 1] + "~"
        where = f" @{task.host}" if task.host else ""
        lines.append(f"{name:<{label}} {task.worker_slot + 1:>{slot_width}} |{bar}| {text}{where}")
    if hidden:
        lines.append(f"... {hidden} more tasks")
    return "\n".join(line[:width] for line in lines)


def _mermaid_label(text: str) -> str:
    return text.replace('"', "#quot;").replace("\n", " ")


def mermaid(plan: Plan) -> str:
    """A Mermaid ``graph TD`` of the plan: an arrow from each dependency to its dependent."""
    node: dict[str, str] = {}
    lines = ["graph TD"]
    for number, task in enumerate(plan.tasks):
        if task.id in node:
            continue
        node[task.id] = f"t{number}"
        title = f"{task.id}: {task.subject}" if task.subject else task.id
        lines.append(f'  {node[task.id]}["{_mermaid_label(title)}"]')
    for task in plan.tasks:
        for dep in dict.fromkeys(task.blocked_by):
            if dep in node:
                lines.append(f"  {node[dep]} --> {node[task.id]}")
    done = [node[task.id] for task in plan.tasks if task.status == "done" and task.id in node]
    if done:
        lines.append("  classDef done fill:#ddd,stroke:#999,color:#555;")
        lines.append(f"  class {','.join(dict.fromkeys(done))} done;")
    return "\n".join(lines) + "\n"


def speedup(continuous: Simulation, waves: Simulation) -> float:
    """How much faster continuous dispatch finishes than waves (1.0 when both are empty)."""
    if continuous.makespan <= 0:
        return 1.0
    return waves.makespan / continuous.makespan


def as_json(sim: Simulation) -> dict[str, t.Any]:
    """The simulation as plain data (for ``--json``)."""
    minutes, path = sim.critical_path
    return {
        "mode": "waves" if sim.waves else "continuous",
        "workers": sim.workers,
        "makespan": sim.makespan,
        "critical_path": {"minutes": minutes, "ids": path},
        "tasks": [
            {
                "id": task.id,
                "start": task.start,
                "end": task.end,
                "worker": task.worker_slot,
                **({"host": task.host} if task.host else {}),
            }
            for task in sim.tasks
        ],
    }
