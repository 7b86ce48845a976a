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


class TaskRecord(Model):
    """What the run knows about one task; derived from events (see ``runner.state.apply``)."""

    id: Id
    state: TaskState = "pending"
    attempt: int = 0
    session: str | None = None
    branch: str | None = None
    worktree: str | None = None
    base_sha: str | None = None
    head_sha: str | None = None
    merge_sha: str | None = None
    dispatched_at: datetime | None = None
    ended_at: datetime | None = None
    last_message: str = ""
    reason: str = ""
    files: tuple[str, ...] = ()
    """Files named by the last refusal (conflicting or out-of-manifest)."""
    conflicts: int = 0
    fixups: int = 0
    exit_status: int | None = None
    attempt_limit: int | None = None
    """Fewer attempts than the plan's budget when the last failure's kind allows fewer."""
    last_activity: datetime | None = None
    """The last time the worker was heard from (mail or a state change), for stall detection."""
    refusal: str = ""
    """Why the last attempt was sent back: scope, conflict, gate, validation or crash."""
    nudges: int = 0
    """Stall alerts since the last activity: 1 after a NUDGE, 2 after a HELP_REQUEST."""


class EscapeRecord(Model):
    """One scope escape the mayor decided on: spawned as a follow-up task, or rejected."""

    key: str | None = None
    source: str | None = None
    spawned: str | None = None
    reason: str = ""
    finding: str = ""


class RunState(Model):
    """``runs/<run-id>/state.json``: a cache of the fold of ``events.jsonl``."""

    v: t.Literal[1] = 1
    run_id: Id
    status: RunStatus = "running"
    plan_name: str = ""
    repo: str = ""
    mode: t.Literal["distributed", "local"] = "distributed"
    base_sha: str = ""
    target_branch: str | None = None
    integration_branch: str = ""
    integration_worktree: str = ""
    integration_head: str = ""
    worktree_root: str = ""
    tmux_socket: str | None = None
    max_workers: int = 5
    waves: bool = False
    keep_sessions: bool = False
    agent: str = "scripted"
    agent_cmd: str | None = None
    deadline: float | None = None
    """Wall-clock (epoch seconds) end of ``--timeout``: the run stops with reason ``timeout``."""
    stall_after: float = 600.0
    stall_restart: bool = True
    auto_spawn: t.Literal["off", "safe", "all"] = "safe"
    commit_policy: t.Literal["merge", "squash", "per-task", "wave"] = "merge"
    """merge: a --no-ff merge commit per task; squash: one commit per task; per-task: agentops'
    --per-task-commits (one ``chore(<id>): <subject>`` commit per task); wave: agentops' wave
    commits under ``--waves`` (each wave's merges become one ``chore(wave-N): ...`` commit)."""
    wave: int = 0
    """The current wave (``--waves``), from 1."""
    wave_base: str | None = None
    """The integration head when the current wave started; None once it is committed."""
    wave_squash: str | None = None
    """Tip being squashed into the wave commit (set while a wave commit is under way)."""
    land: bool = False
    paused: bool = False
    """Dispatch paused (a critical scope escape): running work goes on, nothing new starts."""
    failed_gate_families: tuple[str, ...] = ()
    """Gate families (I, O, S, M) with a failed gate in this run (for the auto-spawn policy)."""
    landed: bool = False
    escapes: tuple[EscapeRecord, ...] = ()
    created: datetime | None = None
    ended_at: datetime | None = None
    stop_reason: str = ""
    last_seq: int = 0
    task_order: tuple[str, ...] = ()
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    handled_mail: tuple[str, ...] = ()
