"""What happened when, folded from a run's events: each task's attempts, the merge queue, the
checks (validation and gates) and the scope escapes. Pure: the HTML report draws it
(``runner.report_html``); :func:`load` is the one reader of the files it needs.
"""

from __future__ import annotations

import pathlib
import typing as t
from datetime import datetime

from protocol.plan import Plan
from protocol.state import Event, RunState
from runner.checks import tail
from runner.events import read_events
from runner.paths import RunPaths, SwarmPaths
from runner.state import rebuild

Outcome = t.Literal[
    "merged", "refused", "validation", "crashed", "failed", "blocked", "cancelled", "running"
]
OUTCOME_WORDS: t.Final[dict[str, str]] = {
    "merged": "merged",
    "refused": "merge refused",
    "validation": "validation failed",
    "crashed": "crashed",
    "failed": "failed",
    "blocked": "blocked",
    "cancelled": "cancelled",
    "running": "unfinished",
}
_ENDS: t.Final[dict[str, Outcome]] = {
    "task_merged": "merged",
    "merge_refused": "refused",
    "validation_failed": "validation",
    "task_crashed": "crashed",
    "task_failed": "failed",
    "task_blocked": "blocked",
    "task_cancelled": "cancelled",
}
OUTPUT_LINES: t.Final = 12


class Attempt(t.NamedTuple):
    task: str
    attempt: int
    start: float
    """Seconds since the run was created."""
    end: float
    offered: float | None
    outcome: Outcome
    reason: str


class QueueEntry(t.NamedTuple):
    task: str
    attempt: int
    offered: float
    decided: float
    outcome: Outcome
    reason: str


class CheckResult(t.NamedTuple):
    at: float
    name: str
    """``gate:tests``, ``tests`` (a validation check), or ``final gates``."""
    task: str | None
    passed: bool
    reason: str
    output: str


class Timeline(t.NamedTuple):
    state: RunState
    plan: Plan | None
    started: datetime
    duration: float
    attempts: tuple[Attempt, ...]
    queue: tuple[QueueEntry, ...]
    checks: tuple[CheckResult, ...]


class Inputs(t.NamedTuple):
    """Everything the report is drawn from: the events, the plan, and the saved check logs."""

    events: tuple[Event, ...]
    plan: Plan | None
    logs: t.Mapping[tuple[str, str], str]
    """(task id, ``gate.log`` | ``validation.log``) -> the file's text."""


LOG_NAMES: t.Final = ("gate.log", "validation.log")
LOG_TAIL_BYTES: t.Final = 64 * 1024


def load(repo: pathlib.Path, run_id: str) -> Inputs:
    """Read a run's events, its plan (None if unreadable) and its tasks' check logs."""
    run = SwarmPaths.for_repo(repo).run(run_id)
    events = tuple(read_events(run.events))
    try:
        plan: Plan | None = Plan.model_validate_json(run.plan.read_bytes())
    except (OSError, ValueError):
        plan = None
    return Inputs(events, plan, _logs(run, events))


def _logs(run: RunPaths, events: t.Sequence[Event]) -> dict[tuple[str, str], str]:
    logs: dict[tuple[str, str], str] = {}
    for task_id in dict.fromkeys(e.task_id for e in events if e.task_id):
        assert task_id is not None
        for name in LOG_NAMES:
            try:
                logs[(task_id, name)] = _tail_of(run.task_dir(task_id) / name)
            except OSError:
                continue
    return logs


def _tail_of(path: pathlib.Path) -> str:
    """The last :data:`LOG_TAIL_BYTES` of ``path`` (a worker may leave a huge log)."""
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - LOG_TAIL_BYTES))
        return fh.read().decode(errors="replace")


def build(inputs: Inputs) -> Timeline:
    """Fold the events into attempts, queue entries and check results (see the module doc)."""
    events = inputs.events
    state = rebuild(events)
    start = events[0].ts
    end = state.ended_at or events[-1].ts

    def at(event: Event) -> float:
        return max(0.0, (event.ts - start).total_seconds())

    duration = max(1.0, (end - start).total_seconds())
    attempts: list[Attempt] = []
    queue: list[QueueEntry] = []
    checks: list[CheckResult] = []
    open_: dict[str, Attempt] = {}
    offers: dict[str, float] = {}
    fast_gates = [g.name for g in inputs.plan.gates if g.fast] if inputs.plan else []
    for event in events:
        data, tid = event.data, event.task_id
        if tid is None:
            checks += _run_checks(event, at(event), inputs.plan)
            continue
        if event.kind == "task_dispatched":
            current = open_.get(tid)
            if current is not None and current.attempt == data.get("attempt"):
                continue  # a lost session restarted in place: the same attempt goes on
            open_[tid] = Attempt(
                tid, int(data.get("attempt", 1)), at(event), 0, None, "running", ""
            )
        elif event.kind == "task_offered" and tid in open_:
            offers[tid] = at(event)
            open_[tid] = open_[tid]._replace(offered=at(event))
        outcome = _ENDS.get(event.kind)
        if outcome is None:
            continue
        reason = str(data.get("reason") or data.get("text") or "")
        if tid in offers and outcome in ("merged", "refused", "validation"):
            attempt = open_[tid].attempt if tid in open_ else 0
            queue.append(QueueEntry(tid, attempt, offers.pop(tid), at(event), outcome, reason))
        checks += _task_checks(event, at(event), inputs.logs, fast_gates)
        if tid in open_:
            attempts.append(open_.pop(tid)._replace(end=at(event), outcome=outcome, reason=reason))
        elif outcome in ("failed", "blocked", "cancelled"):  # after a refusal: the task's end
            attempts.append(Attempt(tid, 0, at(event), at(event), None, outcome, reason))
    attempts += [a._replace(end=duration) for a in open_.values()]
    order = {tid: n for n, tid in enumerate(state.task_order)}
    attempts.sort(key=lambda a: (order.get(a.task, len(order)), a.start))
    return Timeline(
        state, inputs.plan, start, duration, tuple(attempts), tuple(queue), tuple(checks)
    )


def _task_checks(
    event: Event, when: float, logs: t.Mapping[tuple[str, str], str], fast_gates: list[str]
) -> list[CheckResult]:
    data, tid = event.data, event.task_id
    assert tid is not None
    if event.kind == "validation_failed":
        output = tail(logs.get((tid, "validation.log"), ""), OUTPUT_LINES)
        name = str(data.get("check", "validation"))
        return [CheckResult(when, name, tid, False, str(data.get("reason", "")), output)]
    if event.kind == "merge_refused" and data.get("kind") == "gate":
        output = tail(logs.get((tid, "gate.log"), ""), OUTPUT_LINES)
        name = str(data.get("check", "gate"))
        return [CheckResult(when, name, tid, False, str(data.get("reason", "")), output)]
    if event.kind == "task_merged" and data.get("merge_sha") and fast_gates:
        names = ", ".join(fast_gates)
        return [CheckResult(when, f"gate:{names}", tid, True, f"passed on {tid}'s merge", "")]
    return []


def _run_checks(event: Event, when: float, plan: Plan | None) -> list[CheckResult]:
    data = event.data
    if event.kind == "final_gate_failed":
        output = tail(str(data.get("output", "")), OUTPUT_LINES)
        return [CheckResult(when, "final gates", None, False, str(data.get("reason", "")), output)]
    if event.kind == "run_finished" and data.get("status") == "done" and plan and plan.gates:
        names = ", ".join(g.name for g in plan.gates)
        return [CheckResult(when, "final gates", None, True, f"{names} passed", "")]
    return []
