"""What ``swarm watch`` shows (and ``swarm status`` prints once): pure renderables of the run state.

:func:`render` is a pure function of the state, the plan, the events and the time: a header, a
progress bar (merged / total, with an ETA from the remaining efforts), the merge queue, the
last scope escapes and help requests, and the task table (:func:`status_table`, last, so a
terminal too short for every row crops only the table). Everything fits ``width`` columns.

:class:`EventTail` follows ``events.jsonl`` incrementally (:class:`runner.events.EventTail`, folded
with :func:`runner.state.apply`), so a wake-up costs only the new lines.
"""

from __future__ import annotations

import logging
import pathlib
import typing as t
from datetime import UTC, datetime

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from protocol.plan import DEFAULT_EFFORT_MINUTES, Plan
from protocol.state import TERMINAL_TASK_STATES, Event, RunState
from runner import events, status_view
from runner.report import as_doc
from runner.state import apply
from runner.status_view import left_ellipsis as left_ellipsis  # importable from here
from runner.why import Why, logs_hint

logger = logging.getLogger(__name__)

QUEUE_STATES: t.Final = ("merging", "validating", "offered")
"""The merge queue, head first: the task being merged, then validated, then waiting."""
ESCAPE_KINDS: t.Final = frozenset({"escape_reported", "escape_decided"})
HELP_KIND: t.Final = "help_requested"
EVENT_KINDS: t.Final = frozenset({*ESCAPE_KINDS, HELP_KIND, "task_offered"})
"""The only event kinds :func:`render` looks at (:class:`EventTail` keeps just these)."""
RECENT: t.Final = 3

_STATE_STYLE: t.Final = status_view.STATE_STYLE
_STATUS_STYLE: t.Final[dict[str, str]] = {
    "running": "cyan",
    "done": "bold green",
    "failed": "bold red",
    "stopped": "yellow",
}


def _now(at: datetime | None) -> datetime:
    return at or datetime.now(UTC)


def duration_text(seconds: float) -> str:
    """``45s``, ``12m``, ``2h05m``: short enough for a status line."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _effort(plan: Plan | None, task_id: str) -> float:
    if plan is not None:
        for task in plan.tasks:
            if task.id == task_id:
                return task.minutes
    return float(DEFAULT_EFFORT_MINUTES)  # spawned tasks (T-AUTO-n) are not in the plan


class Progress(t.NamedTuple):
    merged: int
    total: int
    eta: float | None
    """Seconds left, from the remaining efforts at the pace of the efforts merged so far; None
    before the first merge (no pace yet) or when the run has ended."""


def progress(state: RunState, plan: Plan | None, at: datetime | None = None) -> Progress:
    at = _now(at)
    tasks = list(state.tasks.values())
    merged = sum(1 for task in tasks if task.state == "merged")
    # tasks done before the run (status: done in the plan) were never dispatched: no pace
    paced = sum(
        _effort(plan, task.id)
        for task in tasks
        if task.state == "merged" and task.dispatched_at is not None
    )
    remaining = sum(
        _effort(plan, task.id) for task in tasks if task.state not in TERMINAL_TASK_STATES
    )
    eta: float | None = None
    if state.status == "running" and paced > 0 and state.created is not None:
        wall = max(0.0, (at - state.created).total_seconds())
        eta = remaining * wall / paced
    return Progress(merged, len(tasks), eta)


def _bar(done: int, total: int, width: int) -> Text:
    width = max(width, 4)
    filled = width if total == 0 else round(width * done / total)
    bar = Text("█" * filled, style="green")
    bar.append("░" * (width - filled), style="dim")
    return bar


def final_gates(state: RunState, plan: Plan | None, at: datetime) -> str | None:
    """``final gates: tests, lint (12s)`` while a running run's every task is merged and its
    gates run (the mayor records nothing until they end); None otherwise."""
    if state.status != "running" or plan is None or not plan.gates or not state.tasks:
        return None
    if any(task.state != "merged" for task in state.tasks.values()):
        return None
    ends = [task.ended_at for task in state.tasks.values() if task.ended_at is not None]
    since = max(ends) if ends else None
    took = f" ({duration_text((at - since).total_seconds())})" if since is not None else ""
    return f"final gates: {', '.join(gate.name for gate in plan.gates)}{took}"


def _header(
    state: RunState, at: datetime, *, mayor: str | None = None, gates: str | None = None
) -> Text:
    text = Text("run ")
    text.append(state.run_id, style="bold")
    text.append(": ")
    if mayor is not None:  # a dead mayor never looks like a live run, nor does its clock run
        text.append(mayor, style="bold red")
        return text
    text.append(state.status, style=_STATUS_STYLE.get(state.status, ""))
    if gates is not None:
        text.append(f"  {gates}", style="yellow")
    if state.plan_name:
        text.append(f"  plan {state.plan_name}")
    if state.status == "running" and gates is None:
        active = sum(
            1
            for task in state.tasks.values()
            if task.state in ("running", "offered", "validating", "merging")
        )
        text.append(f"  workers {active}/{state.max_workers}")
    if state.created is not None:
        end = state.ended_at or at
        text.append(f"  {duration_text((end - state.created).total_seconds())}")
    if state.stop_reason:
        text.append(f"  ({state.stop_reason})")
    return text


def _progress_line(
    state: RunState, plan: Plan | None, at: datetime, width: int, *, show_eta: bool = True
) -> Text:
    prog = progress(state, plan, at)
    pct = 100 if prog.total == 0 else prog.merged * 100 // prog.total
    left = f"merged {prog.merged}/{prog.total} "
    if state.status != "running" or not show_eta:
        eta = ""
    elif prog.eta is None:
        eta = "  ETA ?"
    else:
        eta = f"  ETA {duration_text(prog.eta)}"
    right = f" {pct:3d}%{eta}"
    line = Text(left)
    line.append_text(_bar(prog.merged, prog.total, min(40, width - len(left) - len(right))))
    line.append(right)
    return line


def _one_line(text: str, width: int) -> Text:
    return _clip(Text(text), width)


def merge_queue(state: RunState, events: t.Sequence[Event]) -> list[str]:
    """Task ids in the merge queue, head first (merging, validating, then offered by time)."""
    offered_at: dict[str, int] = {}
    for event in events:
        if event.kind == "task_offered" and event.task_id is not None:
            offered_at[event.task_id] = event.seq
    queued = [tid for tid in state.task_order if state.tasks[tid].state in QUEUE_STATES]
    queued += [
        tid
        for tid, task in state.tasks.items()
        if tid not in state.task_order and task.state in QUEUE_STATES
    ]
    return sorted(
        queued,
        key=lambda tid: (QUEUE_STATES.index(state.tasks[tid].state), offered_at.get(tid, 0)),
    )


def escape_text(event: Event) -> str:
    data = event.data
    who = f"{event.task_id}: " if event.task_id else ""
    if event.kind == "escape_reported":
        return f"{who}escape: {data.get('text', '')}"
    key = data.get("key") or f"byte {data.get('offset', '?')}"
    if data.get("spawn"):
        return f"escape {key}: spawned {data.get('task') or ''} ({data.get('reason', '')})"
    return f"escape {key}: not spawned ({data.get('reason', '')})"


def _recent(events: t.Sequence[Event], kinds: t.Container[str]) -> list[Event]:
    found: list[Event] = []
    for event in reversed(events):
        if event.kind in kinds:
            found.append(event)
            if len(found) == RECENT:
                break
    return found[::-1]


def _section(title: str, lines: list[str], width: int) -> Group:
    head = Text(title, style="bold")
    if not lines:
        head.append(" none", style="dim")
        return Group(head)
    return Group(head, *(_one_line(f"  {line}", width) for line in lines))


def status_table(
    state: RunState, *, width: int = 80, at: datetime | None = None, title: bool = True
) -> Table:
    """One row per task, in plan order: task, state, worker session, attempt, elapsed, last
    message (the failure reason for failed, skipped, rework and blocked tasks), exactly
    ``width`` columns wide (pass the console's width; the last message is cut with ``…``).
    The rows and widths are :mod:`runner.status_view`'s, which ``swarm status`` prints without
    rich; every cell is text, never markup (``[k1]`` in a message is shown as it is)."""
    rows, cells = status_view.table_rows(as_doc(state), _now(at))
    cols = status_view.columns(rows, width)
    table = Table(
        title=f"run {state.run_id}: {state.status}" if title else None,
        title_justify="left",
        box=None,
        padding=(0, 1),
        pad_edge=False,
        expand=True,
        width=width,
        header_style="bold",
    )
    table.add_column("task", no_wrap=True, overflow="ellipsis", width=cols.task)
    table.add_column("state", no_wrap=True, width=cols.state)
    table.add_column("session", no_wrap=True, overflow="ellipsis", width=cols.session)
    table.add_column("try", no_wrap=True, justify="right", width=cols.attempt)
    table.add_column("elapsed", no_wrap=True, justify="right", width=cols.elapsed)
    table.add_column("last", no_wrap=True, overflow="ellipsis", ratio=1)
    for task, shown, session, attempt, elapsed, last in cells:
        table.add_row(
            Text(task),
            Text(shown, style=_STATE_STYLE.get(shown, "")),
            Text(status_view.session_cell(session, cols.session)),
            Text(attempt),
            Text(elapsed),
            Text(last),
        )
    return table


def why_lines(whys: t.Sequence[Why], run_id: str) -> list[str]:
    """The dashboard's ``why:`` section: each reason, its check's last two lines, the command
    that shows the rest."""
    out: list[str] = []
    for found in whys[-RECENT:]:
        out.append(f"{found.task_id}: {found.reason}")
        out += [f"  | {line}" for line in found.tail[-2:]]
        if hint := logs_hint(found, run_id):
            out.append(f"  {hint}")
    return out


def header_lines(
    state: RunState,
    plan: Plan | None,
    events: t.Sequence[Event],
    *,
    width: int = 80,
    at: datetime | None = None,
    mayor: str | None = None,
) -> list[Text]:
    """The header, the progress bar and the merge queue, one line each."""
    at = clock(state, mayor, at)
    queue = merge_queue(state, events)
    queue_text = ", ".join(f"{tid} {state.tasks[tid].state}" for tid in queue)
    gates = final_gates(state, plan, at)
    return [
        _clip(_header(state, at, mayor=mayor, gates=gates), width),
        _clip(_progress_line(state, plan, at, width, show_eta=mayor is None), width),
        _one_line(f"merge queue: {queue_text or 'empty'}", width),
    ]


def clock(state: RunState, mayor: str | None, at: datetime | None = None) -> datetime:
    """The time elapsed values are shown at: ``at`` (now), the end of an ended run, or, for a
    run whose mayor is gone (``mayor``), when it was last heard from (its clock stopped)."""
    at = state.ended_at or _now(at)
    if mayor is None or state.status != "running":
        return at
    times = [task.last_activity for task in state.tasks.values() if task.last_activity]
    if state.created is not None:
        times.append(state.created)
    return min(at, max(times)) if times else at


def inbox_line(events: t.Sequence[Event]) -> str:
    """``inbox: 2 help requests, 1 scope escape (i shows them)``."""
    helps = sum(1 for e in events if e.kind == HELP_KIND)
    escapes = sum(1 for e in events if e.kind == "escape_reported")
    return (
        f"inbox: {helps} help request{'s' * (helps != 1)}, "
        f"{escapes} scope escape{'s' * (escapes != 1)} (i shows them)"
    )


def render(
    state: RunState,
    plan: Plan | None,
    events: t.Sequence[Event],
    *,
    width: int = 80,
    at: datetime | None = None,
    mayor: str | None = None,
    whys: t.Sequence[Why] = (),
) -> RenderableType:
    """The whole dashboard (pure: same inputs, same output). ``events`` need only hold the
    kinds in :data:`EVENT_KINDS`; ``at`` is the time elapsed values are computed for;
    ``mayor`` says the mayor is not running (:func:`runner.launch.mayor_missing`); ``whys``
    are the refused tasks' reasons (:func:`runner.why.of_run`)."""
    at = clock(state, mayor, at)
    width = max(width, 20)
    parts: list[RenderableType] = [
        *header_lines(state, plan, events, width=width, at=at, mayor=mayor),
        _section("escapes:", [escape_text(e) for e in _recent(events, ESCAPE_KINDS)], width),
        _section(
            "help requests:",
            [f"{e.task_id or '?'}: {e.data.get('text', '')}" for e in _recent(events, {HELP_KIND})],
            width,
        ),
    ]
    if whys:
        parts.append(_section("why:", why_lines(whys, state.run_id), width))
    parts.append(status_table(state, width=width, at=at, title=False))
    return Group(*parts)


def _clip(text: Text, width: int) -> Text:
    text.truncate(width, overflow="ellipsis")
    text.no_wrap = True
    return text


class EventTail(events.EventTail):
    """Follows one run's ``events.jsonl`` (:class:`runner.events.EventTail`: whole lines only,
    a corrupt line raises): :meth:`poll` folds the events appended since the last call into
    :attr:`state`. A file that shrank (replaced) is folded again from the start."""

    def __init__(self, path: pathlib.Path, kinds: t.Container[str] = EVENT_KINDS) -> None:
        super().__init__(path)
        self.kinds = kinds
        self.state: RunState | None = None
        self.events: list[Event] = []
        """The events of :attr:`kinds` seen so far."""

    def poll(self) -> bool:
        """Read what was appended; True when at least one event was folded."""
        chunk = self.read()
        if chunk.restarted:
            self.state, self.events = None, []
        changed = False
        for event in chunk.events:
            try:
                self.state = apply(self.state, event)
            except (ValueError, KeyError) as exc:
                logger.warning("skipped event %d: %s", event.seq, exc)
                continue
            if event.kind in self.kinds:
                self.events.append(event)
            changed = True
        return changed
