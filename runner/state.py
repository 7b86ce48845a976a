"""Durable run state: ``events.jsonl`` (append-only, the truth) and ``state.json`` (its fold).

Every decision the mayor takes is appended here *before* it is acted on; :func:`apply` folds an
event into the state, so ``state.json`` can always be rebuilt from the events alone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
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
from runner.escapes import LoopGuard, progress_of
from runner.events import parse_line, parse_lines, read_events

logger = logging.getLogger(__name__)

__all__ = [  # the file primitives live in agentmail.fs; the one events reader in runner.events
    "RunLog",
    "apply",
    "current_state",
    "exclusive_lock",
    "fold_log",
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
            host=data.get("host", ""),
            base_sha=data.get("base_sha"),
            dispatched_at=event.ts,
            exit_status=None,
            ended_at=None,
            pane="",
        )
        if data.get("fixup"):
            update["fixups"] = task.fixups + 1
    elif event.kind == "task_retried":  # a fresh budget; the reason stays for the next brief
        update.update(spent=task.attempt, fixups=0, conflicts=0, attempt_limit=None, ended_at=None)
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


SNAPSHOT_EVERY: t.Final = 1000
"""Events between two snapshots: a resume or a status replays fewer than this many."""
SNAPSHOT_VERSION: t.Final = 1


def snapshot_path(state_path: pathlib.Path) -> pathlib.Path:
    """``snapshot.json`` beside ``state.json``: the fold plus the events it covers."""
    return state_path.with_name("snapshot.json")


@dataclasses.dataclass
class Fold:
    """What a mayor folds from the events, beside the state: the anti-loop counters after
    each event (:meth:`runner.escapes.LoopGuard.replay`) and the definitions of the tasks the
    run added. Kept per event by :class:`RunLog`, saved in the snapshot with the state."""

    state: RunState | None = None
    guard: LoopGuard = dataclasses.field(default_factory=LoopGuard)
    task_defs: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)

    def step(self, event: Event) -> RunState:
        self.state = apply(self.state, event)  # the lifecycle check first: raises, or folds
        self.guard = self.guard.observe(progress_of(self.state))
        if task_def := event.data.get("task_def"):
            self.task_defs.append(task_def)
        return self.state

    def as_json(self) -> dict[str, t.Any]:
        guard = self.guard
        return {
            "state": None if self.state is None else self.state.model_dump(mode="json"),
            "guard": {
                "iterations": guard.iterations,
                "idle": guard.idle,
                "generation": sorted(guard.generation),
                "settled_at_start": guard.settled_at_start,
            },
            "task_defs": self.task_defs,
        }

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> Fold:
        guard = data["guard"]
        return cls(
            state=RunState.model_validate(data["state"]),
            guard=LoopGuard(
                iterations=int(guard["iterations"]),
                idle=int(guard["idle"]),
                generation=frozenset((str(tid), int(n)) for tid, n in guard["generation"]),
                settled_at_start=int(guard["settled_at_start"]),
            ),
            task_defs=[dict(d) for d in data["task_defs"]],
        )


class Folded(t.NamedTuple):
    fold: Fold
    """The fold of every complete event (its state None: no events yet)."""
    end: int
    """Bytes of the events file that are complete lines (a torn tail starts here)."""
    lines: int
    """Complete lines up to ``end``."""
    digest: t.Any
    """A running sha256 of those bytes (``hashlib`` object), for the next snapshot."""
    replayed: int
    """Events folded one by one (the tail after the snapshot, or all of them)."""
    torn: bool


class _Covered(t.NamedTuple):
    offset: int
    lines: int
    digest: t.Any
    fold: Fold


def _trusted_snapshot(path: pathlib.Path, raw: bytes, end: int) -> _Covered | None:
    """The snapshot when it describes a prefix of exactly these bytes: missing, unreadable,
    garbage, for another file or newer than the events: None."""
    try:
        data = json.loads(path.read_bytes())
        offset, lines = data["events_offset"], data["events_lines"]
        if data["version"] != SNAPSHOT_VERSION or not isinstance(offset, int):
            return None
        if not 0 < offset <= end or raw[offset - 1 : offset] != b"\n":
            return None
        digest = hashlib.sha256(memoryview(raw)[:offset])
        if digest.hexdigest() != data["events_digest"]:
            return None
        fold = Fold.from_json(data)
        state = fold.state
        last = parse_line(path, 0, raw[raw.rfind(b"\n", 0, offset - 1) + 1 : offset])
        if state is None or (last.seq, last.run_id) != (state.last_seq, state.run_id):
            return None  # a fold of other events than the ones it claims to cover
        return _Covered(offset, int(lines), digest, fold)
    except (OSError, ValueError, KeyError, TypeError, UsageError):
        return None


def fold_log(events_path: pathlib.Path, state_path: pathlib.Path) -> Folded:
    """The run's fold from its snapshot plus the events after it, or, when the snapshot is
    missing, stale, corrupt or for other bytes, from every event (the log is the truth)."""
    try:
        raw = events_path.read_bytes()
    except FileNotFoundError:
        raw = b""
    end = raw.rfind(b"\n") + 1
    covered = _trusted_snapshot(snapshot_path(state_path), raw, end) if end else None
    if covered is None:
        covered = _Covered(0, 0, hashlib.sha256(), Fold())
    tail = parse_lines(events_path, covered.lines + 1, raw[covered.offset : end])
    state = covered.fold.state
    if state is not None and tail and tail[0].seq != state.last_seq + 1:
        # the snapshot's fold does not join the events after it: replay them all
        covered = _Covered(0, 0, hashlib.sha256(), Fold())
        tail = parse_lines(events_path, 1, raw[:end])
    fold = covered.fold
    for event in tail:
        fold.step(event)
    digest = covered.digest
    digest.update(memoryview(raw)[covered.offset : end])
    torn = bool(raw[end:].strip())
    if torn:
        logger.warning("ignored a torn last event line in %s", events_path)
    return Folded(fold, end, covered.lines + len(tail), digest, len(tail), torn)


def current_state(events_path: pathlib.Path, state_path: pathlib.Path) -> RunState:
    """What ``swarm status`` and ``resume`` trust: the fold of every complete event, read
    through the snapshot (O(events since it)); UsageError naming a corrupt event line."""
    state = fold_log(events_path, state_path).fold.state
    if state is None:
        raise RunFailed(f"no events in {events_path}: the run was never created")
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
        self.fold = Fold()
        """The state, the anti-loop counters and the added tasks, folded per event."""
        self._offset = 0
        """Bytes of the events file written (whole lines): what a snapshot covers."""
        self._lines = 0
        self._digest = hashlib.sha256()
        self._unsnapped = 0
        """Events since the last snapshot."""

    @classmethod
    def open(
        cls,
        events_path: pathlib.Path,
        state_path: pathlib.Path,
        *,
        listener: t.Callable[[Event, RunState], None] | None = None,
    ) -> RunLog:
        """Open an existing run: its state is the fold of the events (the truth), read
        through the snapshot when that covers a prefix of them."""
        log = cls(events_path, state_path, listener=listener)
        folded = fold_log(events_path, state_path)
        log.fold = folded.fold
        if folded.fold.state is not None:
            log._state = folded.fold.state
            log._seq = folded.fold.state.last_seq
            log._unsnapped = folded.replayed
        if folded.torn:  # a crash mid-append: cut the torn line off before appending again
            with events_path.open("r+b") as fh:
                fh.truncate(folded.end)
        log._offset, log._lines, log._digest = folded.end, folded.lines, folded.digest
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
        return self.record_all([(kind, task_id, data)], save=save)

    def record_all(
        self,
        events: t.Sequence[tuple[EventKind, str | None, t.Mapping[str, t.Any]]],
        *,
        save: bool = True,
    ) -> RunState:
        """Append several events as one durable write (one ``write()`` under flock, one
        fsync): all of them or, if the lifecycle refuses one, none. For decisions taken
        together before one act (the arbiter's merge without gates: started and merged)."""
        fold = dataclasses.replace(self.fold, task_defs=list(self.fold.task_defs))
        folded: list[tuple[Event, RunState]] = []
        for kind, task_id, data in events:
            run_id = fold.state.run_id if fold.state else data["run_id"]
            seq = self._seq + len(folded) + 1
            event = Event(seq=seq, run_id=run_id, kind=kind, task_id=task_id, data=dict(data))
            folded.append((event, fold.step(event)))  # the lifecycle check, before writing
        state = fold.state
        if state is None or not folded:
            return self.state
        lines = b"".join(event.model_dump_json().encode() + b"\n" for event, _ in folded)
        fs.append_bytes(self.events_path, lines, mode=fs.PUBLIC)
        self.fold = fold
        self._offset += len(lines)
        self._lines += len(folded)
        self._digest.update(lines)
        self._unsnapped += len(folded)
        self._seq += len(folded)
        self._state = state
        finished = any(event.kind == "run_finished" for event, _ in folded)
        if save and (not self._batching or finished):  # readers wait for the end
            self.save()
        else:
            self._dirty = True
        for event, after in folded:
            if self.listener is not None:
                self.listener(event, after)
            logger.debug(
                "recorded %s", event.kind, extra={"task_id": event.task_id, "event_seq": event.seq}
            )
        return state

    def save(self, *, snapshot: bool = False) -> None:
        """Write ``state.json``; every :data:`SNAPSHOT_EVERY` events (or with ``snapshot``)
        also ``snapshot.json``, the fold with the offset and digest of the events it covers
        (not at the run's end: a follower that returns then must not find the mayor still
        writing; the fewer than 1,000 events after the last snapshot fold in milliseconds)."""
        fs.write_text_atomic(self.state_path, self.state.model_dump_json(indent=1))
        self._dirty = False
        if snapshot or self._unsnapped >= SNAPSHOT_EVERY:
            self.snapshot()

    def snapshot(self) -> None:
        """Write ``snapshot.json`` now (atomically): a resume then replays only what follows."""
        data = {
            "version": SNAPSHOT_VERSION,
            "events_offset": self._offset,
            "events_lines": self._lines,
            "events_digest": self._digest.hexdigest(),
            **self.fold.as_json(),
        }
        fs.write_text_atomic(snapshot_path(self.state_path), json.dumps(data))
        self._unsnapped = 0

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
