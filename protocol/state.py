"""Run and task states, the task lifecycle, and the event record appended to ``events.jsonl``.

The lifecycle is one table, :data:`TRANSITIONS`: for each event kind, the task states it may be
recorded in and the state it leads to. :func:`transition` enforces it; recording an unknown kind
or an event in a state the table does not allow is a bug (:class:`LifecycleError`), never stored.
``docs/architecture.md`` shows the diagram :func:`mermaid_diagram` draws from the same table.
"""

from __future__ import annotations

import typing as t
from datetime import datetime

from pydantic import Field

from protocol.base import Id, Model
from protocol.hosts import HostSpec
from protocol.messages import utcnow
from protocol.plan import Isolation

TaskState = t.Literal[
    "pending",
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
"""A task's recorded state. "Ready" is not recorded: it is the scheduler's view of a pending
task whose dependencies merged and whose manifest can be locked (``swarm plan simulate``)."""
TASK_STATES: t.Final[tuple[TaskState, ...]] = t.get_args(TaskState)
TERMINAL_TASK_STATES: t.Final[frozenset[TaskState]] = frozenset(
    {"merged", "failed", "blocked", "skipped", "cancelled"}
)
ACTIVE_TASK_STATES: t.Final[frozenset[TaskState]] = frozenset(
    {"running", "offered", "validating", "merging", "rework"}
)
OFFERED_STATES: t.Final[frozenset[TaskState]] = frozenset({"offered", "validating", "merging"})
"""Work the arbiter has in hand: offered, being validated, or being merged."""
LIVE_STATES: t.Final[frozenset[TaskState]] = frozenset(TASK_STATES) - TERMINAL_TASK_STATES

RunStatus = t.Literal["running", "done", "failed", "stopped"]
AutoSpawn = t.Literal["off", "safe", "all"]
CommitPolicy = t.Literal["merge", "squash", "per-task", "wave"]
RunMode = t.Literal["distributed", "local"]

TaskEventKind = t.Literal[
    "task_dispatched",
    "task_offered",
    "validation_started",
    "validation_failed",
    "merge_started",
    "task_merged",
    "merge_refused",
    "task_crashed",
    "task_failed",
    "task_blocked",
    "task_skipped",
    "task_cancelled",
    "task_retried",
    "task_nudged",
    "task_pane",
]
"""Events that are about one task and obey :data:`TRANSITIONS`."""
RunEventKind = t.Literal[
    "run_created",
    "run_resumed",
    "run_finished",
    "mayor_started",
    "mail_ignored",
    "task_message",
    "help_requested",
    "escape_reported",
    "escape_decided",
    "integration_advanced",
    "integration_reset",
    "dispatch_paused",
    "dispatch_resumed",
    "wave_started",
    "wave_commit_started",
    "wave_committed",
    "final_gate_failed",
    "run_landed",
    "land_refused",
    "ol_ratchet",
]
"""Events that change no task state (a task id, if any, only says whom they are about)."""
EventKind = TaskEventKind | RunEventKind
EVENT_KINDS: t.Final[frozenset[str]] = frozenset(t.get_args(TaskEventKind)) | frozenset(
    t.get_args(RunEventKind)
)


class Transition(t.NamedTuple):
    sources: frozenset[TaskState]
    target: TaskState | None
    """None: the task stays in the state it is in (a nudge)."""


def _from(*states: TaskState) -> frozenset[TaskState]:
    return frozenset(states)


TRANSITIONS: t.Final[dict[TaskEventKind, Transition]] = {
    # a pending task starts; refused work starts again; a lost session restarts (same attempt)
    "task_dispatched": Transition(_from("pending", "rework", "running"), "running"),
    "task_offered": Transition(_from("running"), "offered"),
    # a crash may interrupt validation or a merge: the arbiter takes the task up again
    "validation_started": Transition(_from("offered", "validating", "merging"), "validating"),
    "validation_failed": Transition(_from("validating"), "rework"),
    "merge_started": Transition(OFFERED_STATES, "merging"),
    "task_merged": Transition(OFFERED_STATES, "merged"),
    "merge_refused": Transition(OFFERED_STATES, "rework"),
    "task_crashed": Transition(_from("running"), "rework"),
    "task_nudged": Transition(_from("running"), None),
    # what the worker's screen (or its CLI's hooks) shows now: working, idle, permission, dialog
    "task_pane": Transition(_from("running"), None),
    "task_failed": Transition(_from("running", "rework"), "failed"),
    "task_blocked": Transition(_from("rework"), "blocked"),
    "task_skipped": Transition(_from("pending"), "skipped"),
    "task_cancelled": Transition(LIVE_STATES, "cancelled"),
    # `swarm retry`: a task that ended without merging runs again, with a fresh budget
    "task_retried": Transition(_from("failed", "blocked", "skipped", "cancelled"), "pending"),
}


class LifecycleError(AssertionError):
    """An event the lifecycle does not allow: a bug in whoever recorded it (exit 3)."""

    def __init__(self, kind: str, task_id: str | None, state: str | None, reason: str) -> None:
        self.kind = kind
        self.task_id = task_id
        self.state = state
        where = f" for task {task_id} in state {state}" if task_id else ""
        super().__init__(f"lifecycle: {kind}{where}: {reason}")


def transition(kind: str, task_id: str | None, state: TaskState | None) -> TaskState | None:
    """The task state after recording ``kind`` in ``state`` (None: no task state changes).

    Raises :class:`LifecycleError` for an unknown kind, a task event without a task, or a
    task event recorded in a state its row does not list."""
    if kind not in EVENT_KINDS:
        raise LifecycleError(kind, task_id, state, "unknown event kind")
    row = TRANSITIONS.get(t.cast(TaskEventKind, kind))
    if row is None:
        return None
    if state is None:
        raise LifecycleError(kind, task_id, state, "a task event needs a task of the run")
    if state not in row.sources:
        allowed = ", ".join(s for s in TASK_STATES if s in row.sources)
        raise LifecycleError(kind, task_id, state, f"allowed only in {allowed}")
    return row.target if row.target is not None else state


def mermaid_diagram() -> str:
    """The task lifecycle as a Mermaid state diagram, drawn from :data:`TRANSITIONS`."""
    lines = ["stateDiagram-v2", "    [*] --> pending"]
    for kind, row in TRANSITIONS.items():
        for source in TASK_STATES:
            if source in row.sources:
                target = row.target or source
                lines.append(f"    {source} --> {target}: {kind}")
    lines.extend(f"    {state} --> [*]" for state in TASK_STATES if state in TERMINAL_TASK_STATES)
    return "\n".join(lines) + "\n"


class RunSettings(Model):
    """How a run runs: chosen once (flag > plan > config), carried by ``run_created``."""

    mode: RunMode = "distributed"
    max_workers: int = 5
    waves: bool = False
    keep_sessions: bool = False
    agent: str = "scripted"
    agent_cmd: str | None = None
    deadline: float | None = None
    """Wall-clock (epoch seconds) end of ``--timeout``: the run stops with reason ``timeout``."""
    stall_after: float = 600.0
    stall_restart: bool = True
    auto_spawn: AutoSpawn = "safe"
    commit_policy: CommitPolicy = "merge"
    """merge: a --no-ff merge commit per task; squash: one commit per task; per-task: agentops'
    --per-task-commits (one ``chore(<id>): <subject>`` commit per task); wave: agentops' wave
    commits under ``--waves`` (each wave's merges become one ``chore(wave-N): ...`` commit)."""
    land: bool = False
    isolation: Isolation = "worktree"
    network: bool = True
    """Sandboxed workers reach the network (their agent's API); False: ``--unshare-net``."""
    agent_permissions: t.Literal["worktree", "full"] | None = None
    """The agents' permission level (``--agent-permissions``; None: the config file's)."""
    trust_worktrees: bool | None = None
    """Consent to record trust for this run's worktrees (None: the config file's)."""
    hosts: tuple[HostSpec, ...] = ()
    """Where workers run (``--hosts``; docs/hosts.md); empty: only this machine."""


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
    host: str = ""
    """The host the task's worker runs on (``--hosts``); empty: this machine."""
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
    spent: int = 0
    """Attempts made before the last ``swarm retry``: not counted against the budgets."""
    last_activity: datetime | None = None
    """The last time the worker was heard from (mail or a state change), for stall detection."""
    refusal: str = ""
    """Why the last attempt was sent back: scope, conflict, gate, validation or crash."""
    nudges: int = 0
    """Stall alerts since the last activity: 1 after a NUDGE, 2 after a HELP_REQUEST."""
    pane: str = ""
    """What a running worker's pane shows (``working``, ``idle``, ``permission``, ``dialog``;
    empty: not known, or not running)."""


class EscapeRecord(Model):
    """One scope escape the mayor decided on: spawned as a follow-up task, or rejected."""

    key: str | None = None
    source: str | None = None
    spawned: str | None = None
    """The follow-up task's id, when one was spawned."""
    spawn: bool = False
    family: str = "I"
    """The gate family whose budget it counted against."""
    code: str = ""
    """Why, for code to match on (``runner.escapes.SpawnCode``); ``reason`` is for people."""
    pause: bool = False
    reason: str = ""
    finding: str = ""


class RunState(RunSettings):
    """``runs/<run-id>/state.json``: a cache of the fold of ``events.jsonl``."""

    v: t.Literal[1] = 1
    run_id: Id
    status: RunStatus = "running"
    plan_name: str = ""
    plan_digest: str = ""
    """sha256 of the plan as created (``runner.launch.plan_digest``): a changed plan is refused."""
    repo: str = ""
    base_sha: str = ""
    target_branch: str | None = None
    target_head: str | None = None
    """The target branch's commit when the run started: ``swarm land`` refuses if it moved."""
    repo_fingerprint: dict[str, str] | None = None
    """Digests of the repository's hooks and config when the run started (``runner.git.
    repo_fingerprint``): ``swarm land`` refuses, naming what changed, if they differ."""
    integration_branch: str = ""
    integration_worktree: str = ""
    integration_head: str = ""
    worktree_root: str = ""
    tmux_socket: str | None = None
    wave: int = 0
    """The current wave (``--waves``), from 1."""
    wave_base: str | None = None
    """The integration head when the current wave started; None once it is committed."""
    wave_squash: str | None = None
    """Tip being squashed into the wave commit (set while a wave commit is under way)."""
    paused: bool = False
    """Dispatch paused (a critical scope escape): running work goes on, nothing new starts."""
    failed_gate_families: tuple[str, ...] = ()
    """Gate families (I, O, S, M) with a failed gate in this run (for the auto-spawn policy)."""
    landed: bool = False
    escapes: tuple[EscapeRecord, ...] = ()
    escape_offset: int = 0
    """Byte offset in scope-escapes.jsonl after the last line decided."""
    budget_refused: bool = False
    """Since the run (re)started, an escape was refused because a spawn budget is used up."""
    created: datetime | None = None
    ended_at: datetime | None = None
    stop_reason: str = ""
    last_seq: int = 0
    task_order: tuple[str, ...] = ()
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    handled_mail: tuple[str, ...] = ()
