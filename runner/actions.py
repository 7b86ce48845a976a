"""The vocabulary of the mayor's loop: what it observed, and the actions :func:`runner.decide.
decide` returns for its executors (the launcher, the arbiter, the outbox, session control)."""

from __future__ import annotations

import dataclasses
import typing as t

from protocol.ids import HUMAN as HUMAN  # re-exported: the mailbox names live in protocol
from protocol.ids import MAYOR as MAYOR
from protocol.messages import Envelope, Fields, MessageType
from protocol.plan import Plan, Task
from protocol.results import ScopeEscape
from protocol.state import EventKind, RunState, TaskRecord, TaskState, transition
from runner.agents.adapter import PaneState
from runner.agents.panes import PaneReport
from runner.scheduler import PlanIndex
from runner.sessions import SessionStatus

FIXUP_REFUSALS: t.Final = frozenset({"conflict", "scope"})
"""Refusals a worker fixes on its own branch (a fix-up, bounded by ``budgets.max_fixups``)."""


def worker_name(task_id: str) -> str:
    """The mail identity of a task's worker: the task id itself (ids are already safe names)."""
    return task_id


def task_branch(run_id: str, task_id: str) -> str:
    return f"swarm/{run_id}/{task_id}"


# -- what the mayor observed -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Observations:
    now: float
    """Epoch seconds."""
    mail: tuple[Envelope, ...] = ()
    """Unread mail of this run to the mayor, not handled before, in delivery order."""
    sessions: t.Mapping[str, SessionStatus] | None = None
    """Status of the run's sessions by name (one tmux call); None: not looked at this time."""
    idle: t.Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Seconds since each running task's worker last wrote to its pane or mailed (fresh
    observations only: a task restarted since is not idle)."""
    escapes: tuple[tuple[int, ScopeEscape | str], ...] = ()
    """New lines of scope-escapes.jsonl: (byte offset after the line, the escape or an error)."""
    merged: tuple[str, ...] = ()
    """Tasks the arbiter merged (or accepted) since the last ask: their workers get an answer."""
    adopting: bool = False
    """The mayor just (re)started: a running task whose session is gone restarts in place."""
    integrated: bool = False
    """The arbiter already took the offered work in this step."""
    exits: t.Mapping[str, tuple[str, bool]] = dataclasses.field(default_factory=dict)
    """Per running task whose pane died: the reason, with the agent's last lines, and whether
    not to start it again (it exited at once the same way twice; runner.agents.worker)."""
    panes: t.Mapping[str, PaneReport] = dataclasses.field(default_factory=dict)
    """Per running task, what its screen shows that needs acting on: a dialog or permission
    prompt to report, an idle agent to nudge (runner.agents.panes)."""
    pane_states: t.Mapping[str, PaneState] = dataclasses.field(default_factory=dict)
    """Per running task of a known CLI, what its pane shows now (recorded when it changes)."""
    lost: t.Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Per task whose worker is gone with its host, why: its start there failed, or the host
    has been unreachable past its grace period (runner.hosts); it crashed and is re-placed."""

    def consumed(self, *, merged: tuple[str, ...] = ()) -> Observations:
        """What is left to act on once the actions decided on these observations ran."""
        return Observations(now=self.now, merged=merged, integrated=True)


# -- actions -------------------------------------------------------------------------------------


class Ev(t.NamedTuple):
    """An event to record: the action's decision, written before the action is carried out."""

    kind: EventKind
    task_id: str | None = None
    data: t.Mapping[str, t.Any] = {}


@dataclasses.dataclass(frozen=True)
class Record:
    """Only the event: nothing else to carry out."""

    ev: Ev


@dataclasses.dataclass(frozen=True)
class Send:
    """A message from the mayor (advisory: a lost one never stops the run)."""

    to: str
    type: MessageType
    task_id: str
    fields: Fields
    importance: t.Literal["low", "normal", "high", "urgent"] = "normal"
    ack_required: bool = False
    subject: str = ""
    body: str = ""
    pane_tail_of: str | None = None
    """A session whose last pane lines the outbox appends to a help request's problem."""
    type_into: str | None = None
    """A session whose pane the message's text is also typed into (a TUI agent never reads
    its mail): leave copy mode, literal text, Enter checked (``SessionBackend.send_text``)."""


def ask_human(
    task_id: str,
    fields: Fields,
    *,
    importance: t.Literal["high", "urgent"] = "high",
    subject: str = "",
    body: str = "",
    pane_tail_of: str | None = None,
) -> Send:
    """A HELP_REQUEST to the human inbox that wants an answer (``ack_required``)."""
    return Send(
        HUMAN,
        MessageType.HELP_REQUEST,
        task_id,
        fields,
        importance=importance,
        ack_required=True,
        subject=subject,
        body=body,
        pane_tail_of=pane_tail_of,
    )


@dataclasses.dataclass(frozen=True)
class Kill:
    session: str


@dataclasses.dataclass(frozen=True)
class Launch:
    """Start (or restart) a task's worker: the launcher records ``task_dispatched`` itself,
    against the state at that moment (a wave commit just before may have moved the base)."""

    task_id: str
    attempt: int
    resumed: bool = False


@dataclasses.dataclass(frozen=True)
class Integrate:
    """The arbiter validates and merges offered work."""


@dataclasses.dataclass(frozen=True)
class StartWave:
    """Commit the wave that ended (wave commits), then record ``wave_started``."""

    tasks: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Ratchet:
    """Tell ``ol`` that an OL bead merged."""

    task_id: str
    bead: str


@dataclasses.dataclass(frozen=True)
class Drop:
    """Mark a message read with no effect of its own (a PROGRESS a later one supersedes)."""

    msg_id: str


@dataclasses.dataclass(frozen=True)
class Finish:
    """Every task settled: wave commit, final gates (or remediation), landing, the end."""


Action = Record | Send | Kill | Launch | Integrate | StartWave | Ratchet | Drop | Finish


@dataclasses.dataclass(frozen=True)
class PlanView:
    """The plan with the indexes the scheduler keeps for it."""

    plan: Plan
    index: PlanIndex
    case_sensitive: bool

    @classmethod
    def build(cls, plan: Plan, *, case_sensitive: bool) -> PlanView:
        return cls(plan, PlanIndex.build(plan, case_sensitive=case_sensitive), case_sensitive)

    def with_task(self, task: Task) -> PlanView:
        return PlanView.build(
            self.plan.model_copy(update={"tasks": (*self.plan.tasks, task)}),
            case_sensitive=self.case_sensitive,
        )


def summary(env: Envelope) -> str:
    """A message in one line, for the run log and the dashboards."""
    data = env.fields.model_dump()
    for key in ("summary", "step", "reason", "problem", "finding", "text", "title", "status"):
        value = data.get(key)
        if value:
            return f"{env.type.value}: {str(value).splitlines()[0][:200]}"
    return env.type.value


class Decisions:
    """The actions of one ask, with the task states they lead to (folded by the lifecycle table,
    so later decisions of the same ask see earlier ones)."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.actions: list[Action] = []
        self.view: dict[str, TaskState] = {tid: rec.state for tid, rec in state.tasks.items()}
        self.paused = state.paused
        self.stopped = False

    def record(self, kind: EventKind, task_id: str | None = None, **data: t.Any) -> None:
        self.actions.append(Record(Ev(kind, task_id, data)))
        self._fold(kind, task_id, data)

    def add(self, action: Action) -> None:
        self.actions.append(action)
        if isinstance(action, Launch):
            self._fold("task_dispatched", action.task_id, {})

    def _fold(self, kind: EventKind, task_id: str | None, data: t.Mapping[str, t.Any]) -> None:
        if task_id is not None and task_id in self.view:
            new = transition(kind, task_id, self.view[task_id])
            if new is not None:
                self.view[task_id] = new
        if kind == "run_finished":
            self.stopped = True
        elif kind == "dispatch_resumed":
            self.paused = False
        elif kind == "escape_decided" and data.get("pause"):
            self.paused = True

    def running(self) -> list[TaskRecord]:
        return [rec for tid, rec in self.state.tasks.items() if self.view.get(tid) == "running"]
