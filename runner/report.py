"""The final report (agentops "Swarm Distributed Mode Results") and status rows: pure functions
of the run state, so ``swarm report``, ``swarm status`` and the saved ``report.md`` agree."""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime

from protocol.state import RunState, TaskRecord


def _elapsed(task: TaskRecord, at: datetime) -> str:
    if task.dispatched_at is None:
        return "-"
    end = task.ended_at or at
    seconds = int((end - task.dispatched_at).total_seconds())
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


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


def counts(state: RunState) -> dict[str, int]:
    out: dict[str, int] = {}
    for task in state.tasks.values():
        out[task.state] = out.get(task.state, 0) + 1
    return dict(sorted(out.items()))


def status_rows(state: RunState, at: datetime | None = None) -> list[dict[str, t.Any]]:
    """One row per task, in plan order: the table of ``swarm status`` and ``swarm watch``
    (``pane``: what a running worker's pane shows; ``shown``: the state column's text)."""
    at = at or datetime.now(UTC)
    return [
        {
            "task": task.id,
            "state": task.state,
            "pane": task.pane if task.state == "running" else "",
            "shown": _shown(task),
            "attempt": task.attempt,
            "session": task.session or "",
            "host": task.host,
            "elapsed": _elapsed(task, at),
            "last": task.reason
            if task.state in ("failed", "skipped", "rework", "blocked")
            else task.last_message,
        }
        for task in (state.tasks[tid] for tid in state.task_order)
    ]


def where(row: t.Mapping[str, t.Any]) -> str:
    """A row's session, ``host:session`` for a worker on another host (``--hosts``)."""
    host = row.get("host") or ""
    if host and host != "local" and row["session"]:
        return f"{host}:{row['session']}"
    return str(row["session"])


def _shown(task: TaskRecord) -> str:
    """The state column: a running task whose pane waits on something says what."""
    if task.state == "running" and task.pane in ("idle", "permission", "dialog"):
        return task.pane
    return task.state


def status_document(state: RunState) -> dict[str, t.Any]:
    return {
        "run_id": state.run_id,
        "status": state.status,
        "reason": state.stop_reason,
        "counts": counts(state),
        "integration_branch": state.integration_branch,
        "integration_head": state.integration_head,
        "paused": state.paused,
        "escapes": [e.model_dump(mode="json") for e in state.escapes],
        "tasks": [
            task.model_dump(mode="json") for task in (state.tasks[tid] for tid in state.task_order)
        ],
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
