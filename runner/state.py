"""Durable run state: ``events.jsonl`` (append-only, the truth) and ``state.json`` (its fold).

Every decision the mayor takes is appended here *before* it is acted on; :func:`apply` folds an
event into the state, so ``state.json`` can always be rebuilt from the events alone.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import typing as t
from datetime import datetime

from agentmail import fs
from agentmail.fs import exclusive_lock, fsync_dir, lock_held
from agentmail.fs import write_text_atomic as write_json_atomic
from protocol.state import (
    TERMINAL_TASK_STATES,
    EscapeRecord,
    Event,
    EventKind,
    RunState,
    TaskRecord,
    TaskState,
    transition,
)
from runner.errors import RunFailed, UsageError
from runner.events import read_events

logger = logging.getLogger(__name__)

__all__ = [  # the file primitives live in agentmail.fs; the one events reader in runner.events
    "RunLog",
    "apply",
    "exclusive_lock",
    "fsync_dir",
    "load_state",
    "lock_held",
    "read_events",
    "rebuild",
    "write_json_atomic",
]

_REFUSAL_BY_KIND: t.Final = {
    "merge_refused": "merge",
    "validation_failed": "validation",
    "task_crashed": "crash",
}
_NOT_ACTIVITY: t.Final = frozenset({"task_nudged", "task_pane"})


def apply(state: RunState | None, event: Event) -> RunState:
    """Fold one event into the run state (pure; the input is not modified).

    Raises :class:`~protocol.state.LifecycleError` for an event the lifecycle does not allow."""
    data = event.data
    if event.kind == "run_created":
        order = tuple(data["tasks"])
        done = set(data.get("done", ()))
        tasks = {
            tid: TaskRecord(id=tid, state="merged" if tid in done else "pending") for tid in order
        }
        skip = {"tasks", "run_id"}
        fields = {k: v for k, v in data.items() if k in RunState.model_fields and k not in skip}
        return RunState(
            run_id=event.run_id,
            created=event.ts,
            task_order=order,
            tasks=tasks,
            last_seq=event.seq,
            **fields,
        )
    if state is None:
        raise ValueError(f"event {event.seq} ({event.kind}) before run_created")
    task = state.tasks.get(event.task_id) if event.task_id is not None else None
    new_state = transition(event.kind, event.task_id, task.state if task else None)
    update: dict[str, t.Any] = {"last_seq": event.seq}
    if msg_id := data.get("msg_id"):
        update["handled_mail"] = (*state.handled_mail, msg_id)
    if event.kind == "run_finished":
        update.update(status=data["status"], stop_reason=data.get("reason", ""), ended_at=event.ts)
    elif event.kind == "run_resumed":
        update.update(
            status="running", stop_reason="", ended_at=None, deadline=None, budget_refused=False
        )
    elif event.kind == "integration_advanced":  # the wave commit (older runs: external)
        update["integration_head"] = data["head"]
    elif event.kind in ("dispatch_paused", "dispatch_resumed"):
        update["paused"] = event.kind == "dispatch_paused"
    elif event.kind == "wave_started":
        update.update(wave=data["wave"], wave_base=data["base"], wave_squash=None)
    elif event.kind == "wave_commit_started":
        update["wave_squash"] = data["tip"]
    elif event.kind == "wave_committed":
        update.update(integration_head=data["head"], wave_base=None, wave_squash=None)
    elif event.kind == "run_landed":
        update["landed"] = True
    if task_def := data.get("task_def"):  # a follow-up or remediation task joins the run
        tid = task_def["id"]
        update["tasks"] = {**state.tasks, tid: TaskRecord(id=tid)}
        update["task_order"] = (*state.task_order, tid)
    if event.kind == "escape_decided":
        if data.get("pause"):
            update["paused"] = True  # a critical escape: in the same event, so never lost
        record = EscapeRecord(
            key=data.get("key"),
            source=data.get("source"),
            spawned=data.get("task") if data.get("spawn") else None,
            spawn=bool(data.get("spawn")),
            family=str(data.get("family", "I")),
            code=str(data.get("code", "")),
            pause=bool(data.get("pause")),
            reason=str(data.get("reason", "")),
            finding=str(data.get("finding", "")),
        )
        update["escapes"] = (*state.escapes, record)
        if "offset" in data:
            update["escape_offset"] = max(state.escape_offset, int(data["offset"]))
        if record.code in ("budget", "family_budget") and "offset" in data:
            update["budget_refused"] = True  # an escape line, not a remediation
    family = data.get("gate_family")
    if family and family not in state.failed_gate_families:
        update["failed_gate_families"] = (*state.failed_gate_families, family)
    if task is not None:
        tasks = dict(update.get("tasks", state.tasks))
        tasks[task.id] = _apply_task(task, event, new_state)
        update["tasks"] = tasks
        if event.kind == "task_merged" and data.get("integration_head"):
            update["integration_head"] = data["integration_head"]
    return state.model_copy(update=update)


def _apply_task(task: TaskRecord, event: Event, new_state: TaskState | None) -> TaskRecord:
    data = event.data
    update: dict[str, t.Any] = {}
    if new_state is not None and new_state != task.state:
        update["state"] = new_state
        update["pane"] = ""
        if new_state in TERMINAL_TASK_STATES:
            update["ended_at"] = event.ts
    if "pane" in data:
        update["pane"] = str(data["pane"])
    if event.kind not in _NOT_ACTIVITY:
        update["last_activity"] = event.ts
        update["nudges"] = 0
    elif event.kind == "task_nudged":
        update["nudges"] = task.nudges + 1
    if event.kind == "task_dispatched":
        update.update(
            attempt=data["attempt"],
            session=data.get("session"),
            branch=data.get("branch"),
            worktree=data.get("worktree"),
            base_sha=data.get("base_sha"),
            dispatched_at=event.ts,
            exit_status=None,
            ended_at=None,
            pane="",
        )
        if data.get("fixup"):
            update["fixups"] = task.fixups + 1
    for key in ("head_sha", "merge_sha", "exit_status", "attempt_limit"):
        if key in data:
            update[key] = data[key]
    if "reason" in data:
        update["reason"] = data["reason"]
    if "files" in data:
        update["files"] = tuple(data["files"])
    if event.kind == "merge_refused" and data.get("kind") == "conflict":
        update["conflicts"] = task.conflicts + 1
    refusal = _REFUSAL_BY_KIND.get(event.kind)
    if refusal is not None:
        update["refusal"] = data.get("kind", refusal)
    if text := data.get("text"):
        update["last_message"] = text
    return task.model_copy(update=update)


def rebuild(events: t.Iterable[Event]) -> RunState:
    state: RunState | None = None
    for event in events:
        state = apply(state, event)
    if state is None:
        raise RunFailed("no events: the run was never created")
    return state


def load_state(path: pathlib.Path) -> RunState:
    try:
        return RunState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise UsageError(f"no run state at {path}") from None


class RunLog:
    """The event log and state file of one run, owned by its (single) mayor."""

    def __init__(
        self,
        events_path: pathlib.Path,
        state_path: pathlib.Path,
        *,
        listener: t.Callable[[Event, RunState], None] | None = None,
    ) -> None:
        self.events_path = events_path
        self.state_path = state_path
        self.listener = listener
        self._state: RunState | None = None
        self._seq = 0
        self._batching = False
        self._dirty = False

    @classmethod
    def open(
        cls,
        events_path: pathlib.Path,
        state_path: pathlib.Path,
        *,
        listener: t.Callable[[Event, RunState], None] | None = None,
    ) -> RunLog:
        """Open an existing run: the state is rebuilt from the events (the truth)."""
        log = cls(events_path, state_path, listener=listener)
        events = read_events(events_path)
        if events:
            log._state = rebuild(events)
            log._seq = events[-1].seq
            raw = events_path.read_bytes()
            if not raw.endswith(b"\n"):
                # a torn last line (a crash mid-append): cut it off before appending again
                with events_path.open("r+b") as fh:
                    fh.truncate(raw.rfind(b"\n") + 1)
        return log

    @property
    def state(self) -> RunState:
        if self._state is None:
            raise RunFailed(f"run log {self.events_path} has no run_created event")
        return self._state

    def record(
        self, kind: EventKind, task_id: str | None = None, /, *, save: bool = True, **data: t.Any
    ) -> RunState:
        """Append one event durably (one ``write()`` under flock, fsync), fold it, save state."""
        run_id = self._state.run_id if self._state else data["run_id"]
        self._seq += 1
        event = Event(seq=self._seq, run_id=run_id, kind=kind, task_id=task_id, data=data)
        try:
            state = apply(self._state, event)  # the lifecycle check, before anything is written
        except BaseException:
            self._seq -= 1
            raise
        fs.append_bytes(self.events_path, event.model_dump_json().encode() + b"\n", mode=fs.PUBLIC)
        self._state = state
        if save and (not self._batching or kind == "run_finished"):  # readers wait for the end
            self.save()
        else:
            self._dirty = True
        if self.listener is not None:
            self.listener(event, self._state)
        logger.debug("recorded %s", kind, extra={"task_id": task_id, "event_seq": self._seq})
        return self._state

    def save(self) -> None:
        fs.write_text_atomic(self.state_path, self.state.model_dump_json(indent=1))
        self._dirty = False

    @contextlib.contextmanager
    def batch(self) -> t.Iterator[None]:
        """Write ``state.json`` once for all events recorded in the block (each event is still
        appended and fsynced on its own: the log, not the cache, is what makes them durable)."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            if self._dirty:
                self.save()


def elapsed(start: datetime | None, end: datetime) -> float:
    return 0.0 if start is None else (end - start).total_seconds()
