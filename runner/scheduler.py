"""The scheduler: which tasks to start, which to skip. Pure: no clock, no I/O, no threads.

The mayor and the simulator (:mod:`runner.simulate`) ask :func:`decide` the same question with the
current task states and perform its answer. A task starts when every ``blocked_by`` task is merged,
a worker slot is free and its touches locks do not conflict with a running task or with a task
chosen in the same decision (:func:`protocol.manifest.tasks_conflict`). Ready tasks go longest
remaining critical path first, then ``priority`` (lower number first), then id.

``decide`` accepts any mapping of states. A caller that decides often on a large plan (the
simulator) passes a :class:`TaskStates` instead: it keeps the counters a decision needs, so each
decision costs about the number of tasks it starts or examines, not the size of the plan.
"""

from __future__ import annotations

import bisect
import logging
import typing as t
from dataclasses import dataclass

from protocol.manifest import lock_prefix
from protocol.plan import Plan
from protocol.plangraph import analyse, build_graph, critical_path_of
from protocol.state import ACTIVE_TASK_STATES, TERMINAL_TASK_STATES, TaskState

logger = logging.getLogger(__name__)

WAITING_STATES: t.Final[frozenset[TaskState]] = frozenset({"pending"})
"""Not started and not finished: a candidate to start (or to skip)."""
DEAD_STATES: t.Final[frozenset[TaskState]] = TERMINAL_TASK_STATES - {"merged"}
"""Finished without merging: dependents are skipped."""


@dataclass(frozen=True)
class SchedulerInput:
    plan: Plan
    states: t.Mapping[str, TaskState]
    """From ``protocol.state``; a missing task is pending, a plan task marked done is merged."""
    max_workers: int
    waves: bool = False
    case_sensitive: bool = True
    paused: bool = False
    """Dispatch paused (critical escape): start nothing."""


@dataclass(frozen=True)
class Decision:
    start: tuple[str, ...]
    """Task ids to start now, in order."""
    skip: tuple[tuple[str, str], ...]
    """(task id, reason): a dependency failed, was blocked, skipped or cancelled."""
    blocked_by_lock: tuple[str, ...]
    """Ready by dependencies, examined while a slot was free, but waiting for a touches lock."""


@dataclass(frozen=True, slots=True)
class LockSpec:
    """What a task locks: nothing (read-only), everything (exclusive), or path prefixes."""

    kind: t.Literal["none", "exclusive", "paths"]
    prefixes: tuple[str, ...] = ()
    """The prefix of each manifest entry, case-folded if needed."""
    ancestors: tuple[str, ...] = ()
    """Every proper ancestor of those prefixes ("" first): a held lock there contains them."""


def lock_spec(
    files: t.Sequence[str],
    concurrency: str,
    *,
    case_sensitive: bool,
    shared: dict[str, tuple[str, ...]] | None = None,
) -> LockSpec:
    """The lock of a task; a write task without a manifest has unknown scope: exclusive.

    ``shared`` keeps one ancestors tuple per folder across the tasks of one plan (memory only).
    """
    if concurrency == "read-only":
        return LockSpec("none")
    if concurrency == "write-shared" or not files:
        return LockSpec("exclusive")
    prefixes: dict[str, None] = {}
    for entry in files:
        prefix = lock_prefix(entry)
        prefixes[prefix if case_sensitive else prefix.casefold()] = None
    cache = {} if shared is None else shared
    if len(prefixes) == 1:  # the common case: the folder's tuple, shared as it is
        (prefix,) = prefixes
        return LockSpec("paths", (prefix,), _ancestors(prefix, cache))
    ancestors = dict.fromkeys(a for prefix in prefixes for a in _ancestors(prefix, cache))
    return LockSpec("paths", tuple(prefixes), tuple(ancestors))


def _ancestors(prefix: str, cache: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if not prefix:
        return ()
    folder = prefix.rpartition("/")[0]
    found = cache.get(folder)
    if found is None:
        found = (*_ancestors(folder, cache), folder) if folder else ("",)
        cache[folder] = found
    return found


class _LockTable:
    """Locks held by running (and just chosen) tasks, answering conflicts by set lookups."""

    def __init__(self) -> None:
        self.writers = 0
        self.exclusive = False
        self.held: set[str] = set()
        self.below: set[str] = set()
        """Every proper ancestor of a held prefix: a candidate there contains a held lock."""

    def conflicts(self, spec: LockSpec) -> bool:
        if spec.kind == "none":
            return False
        if self.exclusive:
            return True
        if spec.kind == "exclusive":
            return self.writers > 0
        held, below = self.held, self.below
        for prefix in spec.prefixes:
            if prefix in held or prefix in below:
                return True
        return any(ancestor in held for ancestor in spec.ancestors)

    def add(self, spec: LockSpec) -> None:
        if spec.kind == "none":
            return
        self.writers += 1
        if spec.kind == "exclusive":
            self.exclusive = True
            return
        self.held.update(spec.prefixes)
        self.below.update(spec.ancestors)


@dataclass(frozen=True)
class PlanIndex:
    """What the scheduler derives once from a plan: dispatch order, edges, locks."""

    plan: Plan
    case_sensitive: bool
    order: tuple[str, ...]
    """Every task id in dispatch order: remaining critical path desc, priority, id."""
    rank: t.Mapping[str, int]
    topo: t.Mapping[str, int]
    """Position in topological order (skips are reported in this order)."""
    deps: t.Mapping[str, tuple[str, ...]]
    dependents: t.Mapping[str, tuple[str, ...]]
    locks: t.Mapping[str, LockSpec]
    done: frozenset[str]

    minutes: t.Mapping[str, float]
    """Effort of each task, in minutes."""
    critical_path: tuple[float, list[str]]
    """The longest chain by effort among the tasks not done (:func:`critical_path_of`)."""

    @classmethod
    def build(cls, plan: Plan, *, case_sensitive: bool = True) -> PlanIndex:
        """Index ``plan``; ValueError if its dependencies form a cycle."""
        graph = build_graph(plan.tasks)
        topo, remaining = analyse(graph)
        done = frozenset(task.id for task in plan.tasks if task.status == "done")
        todo = graph
        if done:  # the path still to run: done tasks and the edges to them drop out
            todo = build_graph([task for task in plan.tasks if task.id not in done])
            remaining = analyse(todo).remaining
        tasks = {task.id: task for task in reversed(plan.tasks)}  # first wins, like the graph
        order = sorted(
            graph.ids, key=lambda tid: (-remaining.get(tid, 0.0), tasks[tid].priority, tid)
        )
        shared: dict[str, tuple[str, ...]] = {}  # one ancestors tuple per folder
        return cls(
            plan=plan,
            case_sensitive=case_sensitive,
            order=tuple(order),
            rank={tid: position for position, tid in enumerate(order)},
            topo={tid: position for position, tid in enumerate(topo)},
            deps=graph.deps,
            dependents=graph.dependents,
            locks={
                tid: lock_spec(
                    task.files, task.concurrency, case_sensitive=case_sensitive, shared=shared
                )
                for tid, task in tasks.items()
            },
            done=done,
            minutes=graph.minutes,
            critical_path=critical_path_of(todo, remaining),
        )


class TaskStates(t.Mapping[str, TaskState]):
    """Task states of one plan plus the counters :func:`decide` needs, updated per change.

    Reading is a plain mapping; :meth:`set` costs the number of dependents of the task. Plan tasks
    marked done are merged whatever ``states`` says.
    """

    def __init__(self, index: PlanIndex, states: t.Mapping[str, TaskState] | None = None) -> None:
        self.index = index
        given = states or {}
        self._state: dict[str, TaskState] = {}
        for tid in index.order:
            self._state[tid] = "merged" if tid in index.done else given.get(tid, "pending")
        self._unmerged: dict[str, int] = {}
        self._dead: dict[str, int] = {}
        for tid in index.order:
            deps = index.deps[tid]
            self._unmerged[tid] = sum(1 for dep in deps if self._state[dep] != "merged")
            self._dead[tid] = sum(1 for dep in deps if self._state[dep] in DEAD_STATES)
        self._active: dict[str, None] = {}
        self._ready: list[int] = []
        self._doomed: dict[str, None] = {}
        for tid in index.order:
            self._enter(tid)

    # Mapping protocol
    def __getitem__(self, task_id: str) -> TaskState:
        return self._state[task_id]

    def __iter__(self) -> t.Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

    @property
    def active(self) -> tuple[str, ...]:
        """Tasks in an active state (they hold a worker slot and their locks)."""
        return tuple(self._active)

    def ready(self) -> t.Iterator[str]:
        """Waiting tasks whose dependencies are all merged, in dispatch order."""
        order = self.index.order
        return (order[rank] for rank in self._ready)

    @property
    def doomed(self) -> tuple[str, ...]:
        """Waiting tasks with a dependency that finished without merging."""
        return tuple(self._doomed)

    def set(self, task_id: str, state: TaskState) -> None:
        """Record a new state for ``task_id`` and update the counters of its dependents."""
        old = self._state[task_id]
        if old == state:
            return
        self._leave(task_id)
        self._state[task_id] = state
        self._enter(task_id)
        merged_delta = (state == "merged") - (old == "merged")
        dead_delta = (state in DEAD_STATES) - (old in DEAD_STATES)
        if not merged_delta and not dead_delta:
            return
        for dependent in self.index.dependents[task_id]:
            self._leave(dependent)
            self._unmerged[dependent] -= merged_delta
            self._dead[dependent] += dead_delta
            self._enter(dependent)

    def _enter(self, tid: str) -> None:
        state = self._state[tid]
        if state in ACTIVE_TASK_STATES:
            self._active[tid] = None
        elif state in WAITING_STATES:
            if self._dead[tid]:
                self._doomed[tid] = None
            elif not self._unmerged[tid]:
                bisect.insort(self._ready, self.index.rank[tid])

    def _leave(self, tid: str) -> None:
        state = self._state[tid]
        if state in ACTIVE_TASK_STATES:
            del self._active[tid]
        elif state in WAITING_STATES:
            if self._dead[tid]:
                del self._doomed[tid]
            elif not self._unmerged[tid]:
                rank = self.index.rank[tid]
                position = bisect.bisect_left(self._ready, rank)
                del self._ready[position]


def _view(inp: SchedulerInput) -> TaskStates:
    states = inp.states
    if (
        isinstance(states, TaskStates)
        and states.index.plan is inp.plan
        and states.index.case_sensitive == inp.case_sensitive
    ):
        return states
    index = PlanIndex.build(inp.plan, case_sensitive=inp.case_sensitive)
    return TaskStates(index, states)


def _skips(view: TaskStates) -> tuple[tuple[str, str], ...]:
    """Waiting tasks downstream of a dead dependency, with the first such dependency named."""
    doomed = view.doomed
    if not doomed:
        return ()
    index = view.index
    closure = set(doomed)
    stack = list(doomed)
    while stack:
        for dependent in index.dependents[stack.pop()]:
            if dependent not in closure and view[dependent] in WAITING_STATES:
                closure.add(dependent)
                stack.append(dependent)
    skips: list[tuple[str, str]] = []
    for tid in sorted(closure, key=index.topo.__getitem__):
        for dep in index.deps[tid]:
            if view[dep] in DEAD_STATES:
                skips.append((tid, f"dependency {dep} {view[dep]}"))
                break
            if dep in closure:
                skips.append((tid, f"dependency {dep} skipped"))
                break
    return tuple(skips)


def decide(inp: SchedulerInput) -> Decision:
    """What to start and what to skip now, given the current task states."""
    view = _view(inp)
    skip = _skips(view)
    active = view.active
    if inp.paused or (inp.waves and active):
        return Decision(start=(), skip=skip, blocked_by_lock=())
    slots = inp.max_workers - len(active)
    if slots <= 0:
        return Decision(start=(), skip=skip, blocked_by_lock=())
    locks = _LockTable()
    specs = view.index.locks
    for tid in active:
        locks.add(specs[tid])
    start: list[str] = []
    blocked: list[str] = []
    for tid in view.ready():
        spec = specs[tid]
        if locks.conflicts(spec):
            blocked.append(tid)
            continue
        locks.add(spec)
        start.append(tid)
        slots -= 1
        if slots == 0:
            break
    if start or blocked:
        logger.debug("decided", extra={"start": start, "blocked_by_lock": blocked})
    return Decision(start=tuple(start), skip=skip, blocked_by_lock=tuple(blocked))
