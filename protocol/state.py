"""Run and task states and the event record appended to ``events.jsonl``."""

from __future__ import annotations

import typing as t
from datetime import datetime

from pydantic import Field

from protocol.base import Id, Model
from protocol.messages import utcnow

TaskState = t.Literal[
    "pending",
    "ready",
    "running",
    "offered",
    "validating",
    "merging",
    "merged",
    "rework",
    "failed",
    "blocked",
    "skipped",
    "cancelled",
]
TASK_STATES: t.Final[tuple[TaskState, ...]] = t.get_args(TaskState)
TERMINAL_TASK_STATES: t.Final[frozenset[TaskState]] = frozenset(
    {"merged", "failed", "blocked", "skipped", "cancelled"}
)
ACTIVE_TASK_STATES: t.Final[frozenset[TaskState]] = frozenset(
    {"running", "offered", "validating", "merging", "rework"}
)

RunStatus = t.Literal["running", "done", "failed", "stopped"]


class Event(Model):
    """One line of ``events.jsonl``. ``seq`` is dense from 1; ``data`` depends on ``kind``."""

    v: t.Literal[1] = 1
    seq: int = Field(ge=1)
    ts: datetime = Field(default_factory=utcnow)
    run_id: Id
    kind: str
    task_id: Id | None = None
    data: dict[str, t.Any] = Field(default_factory=dict)
