"""The final report (agentops "Swarm Distributed Mode Results") and status rows: pure functions
of the run state, so ``swarm report``, ``swarm status`` and the saved ``report.md`` agree.

The status rows and document are built from the state's JSON document (``state.json``, or
``RunState.model_dump(mode="json")``: :func:`as_doc`), so ``swarm status`` can show a run
without pydantic (:mod:`runner.status_view`); nothing here imports it."""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime

if t.TYPE_CHECKING:
    from protocol.state import RunState, TaskRecord

StateDoc = t.Mapping[str, t.Any]
"""A run state as JSON (``state.json``; ``RunState.model_dump(mode="json")``)."""
NO_CHANGE: t.Final = "no change"


def as_doc(state: RunState | StateDoc) -> StateDoc:
    """The JSON document of ``state`` (a ``RunState``, or already its document)."""
    if isinstance(state, t.Mapping):
        return state
    return state.model_dump(mode="json")


def _elapsed(task: TaskRecord, at: datetime) -> str:
    return _duration(task.dispatched_at, task.ended_at, at)


def _duration(start: datetime | None, end: datetime | None, at: datetime) -> str:
    if start is None:
        return "-"
    seconds = int(((end or at) - start).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def format_seconds(seconds: float, *, tenths: bool = False) -> str:
    """``4.2s`` (with ``tenths``, under 10 s), ``42s``, ``3m05s``, ``2h10m``, ``3d04h``."""
    if tenths and seconds < 10 and seconds != int(seconds):
        return f"{max(seconds, 0.0):.1f}s"
    whole = max(0, round(seconds))
    for size, unit, small, sub in (
        (86400, "d", 3600, "h"),
        (3600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        if whole >= size:
            return f"{whole // size}{unit}{whole % size // small:02d}{sub}"
    return f"{whole}s"


def counts(state: RunState | StateDoc) -> dict[str, int]:
    out: dict[str, int] = {}
    for task in as_doc(state)["tasks"].values():
        out[task["state"]] = out.get(task["state"], 0) + 1
    return dict(sorted(out.items()))


def status_rows(state: RunState | StateDoc, at: datetime | None = None) -> list[dict[str, t.Any]]:
    """One row per task, in plan order: the table of ``swarm status`` and ``swarm watch``
    (``pane``: what a running worker's pane shows; ``shown``: the state column's text,
    :func:`shown_state`)."""
    doc = as_doc(state)
    at = at or datetime.now(UTC)
    return [
        {
            "task": task["id"],
            "state": task["state"],
            "pane": task["pane"] if task["state"] == "running" else "",
            "shown": shown_state(task),
            "attempt": task["attempt"],
            "session": task["session"] or "",
            "host": task["host"],
            "elapsed": _duration(_time(task["dispatched_at"]), _time(task["ended_at"]), at),
            "last": task["reason"]
            if task["state"] in ("failed", "skipped", "rework", "blocked")
            else task["last_message"],
        }
        for task in (doc["tasks"][tid] for tid in doc["task_order"])
    ]


def where(row: t.Mapping[str, t.Any]) -> str:
    """A row's session, ``host:session`` for a worker on another host (``--hosts``)."""
    host = row.get("host") or ""
    if host and host != "local" and row["session"]:
        return f"{host}:{row['session']}"
    return str(row["session"])


def shown_state(task: t.Mapping[str, t.Any]) -> str:
    """The state column of a task (its JSON document): a running task whose pane waits on
    something says what, and a task merged without changing anything (an empty offer of an
    ``allow_empty`` task, a read-only task) says ``no change``: not a plain success."""
    state = str(task["state"])
    if state == "running" and task["pane"] in ("idle", "permission", "dialog"):
        return str(task["pane"])
    if state == "merged" and task["merge_sha"] is None and task["attempt"] > 0:
        return NO_CHANGE
    return state


def status_document(state: RunState | StateDoc) -> dict[str, t.Any]:
    doc = as_doc(state)
    return {
        "run_id": doc["run_id"],
        "status": doc["status"],
        "reason": doc["stop_reason"],
        "counts": counts(doc),
        "integration_branch": doc["integration_branch"],
        "integration_head": doc["integration_head"],
        "paused": doc["paused"],
        "escapes": list(doc["escapes"]),
        "tasks": [doc["tasks"][tid] for tid in doc["task_order"]],
    }


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    if not rows:
        return ["(none)", ""]
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return [*out, ""]


def render_report(state: RunState) -> str:
    tasks = [state.tasks[tid] for tid in state.task_order]
    merged = [t for t in tasks if t.state == "merged"]
    failed = [t for t in tasks if t.state in ("failed", "blocked", "skipped", "cancelled")]
    active = [
        t
        for t in tasks
        if t.state not in ("merged", "failed", "blocked", "skipped", "cancelled", "pending")
    ]
    at = state.ended_at or datetime.now(UTC)
    out = [
        "## Swarm Distributed Mode Results",
        "",
        f"**Run:** `{state.run_id}`  **Status:** {state.status}"
        + (f" ({state.stop_reason})" if state.stop_reason else ""),
        f"**Integration branch:** `{state.integration_branch}` at `{state.integration_head[:12]}`",
        f"**Tasks:** {len(merged)}/{len(tasks)} merged",
        "",
        "### Completed",
        "",
        *_table(
            ["Task", "Attempts", "Merge commit", "Elapsed"],
            [[t.id, str(t.attempt), (t.merge_sha or "-")[:12], _elapsed(t, at)] for t in merged],
        ),
        "### Failed",
        "",
        *_table(
            ["Task", "State", "Attempts", "Reason"],
            [[t.id, t.state, str(t.attempt), t.reason] for t in failed],
        ),
        "### Active Sessions",
        "",
        *_table(["Task", "State", "Session"], [[t.id, t.state, t.session or "-"] for t in active]),
        "### Scope Escapes",
        "",
        *_table(
            ["From", "Key", "Decision"],
            [
                [
                    e.source or "-",
                    e.key or "-",
                    f"spawned {e.spawned}" if e.spawned else f"rejected: {e.reason}",
                ]
                for e in state.escapes
            ],
        ),
        "### Merge Status",
        "",
        *_table(
            ["Branch", "Status", "Conflicts", "Fix-ups"],
            [
                [
                    t.branch or f"swarm/{state.run_id}/{t.id}",
                    _merge_status(t),
                    str(t.conflicts),
                    str(t.fixups),
                ]
                for t in tasks
                if t.attempt > 0
            ],
        ),
    ]
    return "\n".join(out)


def _merge_status(task: TaskRecord) -> str:
    if task.state == "merged":
        return "MERGED" if task.merge_sha else "MERGED (no changes)"
    return task.state.upper()
