"""The scheduler: which tasks to start, which to skip. Pure: no clock, no I/O, no threads.

The mayor and the simulator (:mod:`runner.simulate`) ask :func:`decide` the same question with the
current task states and perform its answer. A task starts when every ``blocked_by`` task is merged,
a worker slot is free and its touches locks do not conflict with a running task or with a task
chosen in the same decision (:func:`protocol.manifest.tasks_conflict`). Ready tasks go longest
remaining critical path first, then ``priority`` (lower number first), then id.

``decide`` accepts any mapping of states. A caller that decides often on a large plan (the
simulator) passes a :class:`TaskStates` instead: it keeps the counters a decision needs (ready
tasks by rank, the locks of the active tasks counted per prefix), so each decision costs about
the number of tasks it starts or examines, not the size of the plan. Inside, tasks are numbers
and the index is a few lists by number: 10,000 tasks cost a few lists, not objects per task.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import typing as t
from dataclasses import dataclass
from functools import cached_property

from protocol.manifest import lock_prefix
from protocol.plan import Plan, Task, effort_minutes
from protocol.plangraph import build_graph, find_cycle_in_graph
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


@dataclass(frozen=True, slots=True)
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


Paths = str | tuple[str, ...] | None
"""A task's lock as the index keeps it: ``None`` for none (read-only), ``()`` for exclusive,
else its one prefix (a string, ``""`` the root: no tuple per task in the common case) or a
tuple of several."""


def _prefix(entry: str) -> str:
    """:func:`lock_prefix` of a manifest entry, without its work when the entry is plain.

    A plain entry (no empty, ``.`` or ``..`` component, no leading or trailing ``/``, no glob
    character, nothing that looks like a drive) is its own normalized prefix.
    """
    if (
        entry
        and entry[0] not in "/."
        and entry[-1] != "/"
        and entry[1:2] != ":"
        and "//" not in entry
        and "/." not in entry
        and "*" not in entry
        and "?" not in entry
        and "[" not in entry
        and "\0" not in entry
    ):
        return entry
    return lock_prefix(entry)


def _lock_of(
    files: t.Sequence[str],
    concurrency: str,
    case_sensitive: bool,
    cache: dict[str, tuple[str, ...]],
) -> tuple[Paths, tuple[str, ...]]:
    """(paths, ancestors) of a task; a write task without a manifest has unknown scope:
    exclusive. ``cache`` keeps one ancestors tuple per folder across the tasks of one plan."""
    if concurrency == "read-only":
        return None, ()
    if concurrency == "write-shared" or not files:
        return (), ()
    if len(files) == 1:  # the common case: no tuple, the folder's ancestors shared as they are
        prefix = _prefix(files[0])
        if not case_sensitive:
            prefix = prefix.casefold()
        return prefix, _ancestors(prefix, cache)
    prefixes: dict[str, None] = {}
    for entry in files:
        prefix = _prefix(entry)
        prefixes[prefix if case_sensitive else prefix.casefold()] = None
    if len(prefixes) == 1:
        (prefix,) = prefixes
        return prefix, _ancestors(prefix, cache)
    ancestors = dict.fromkeys(a for prefix in prefixes for a in _ancestors(prefix, cache))
    return tuple(prefixes), tuple(ancestors)


def _ancestors(prefix: str, cache: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if not prefix:
        return ()
    cut = prefix.rfind("/")
    folder = prefix[:cut] if cut > 0 else ""
    found = cache.get(folder)
    if found is None:
        found = (*_ancestors(folder, cache), folder) if folder else ("",)
        cache[folder] = found
    return found


class _Locks:
    """Locks held, counted per prefix so that releasing one is as cheap as taking it."""

    __slots__ = ("below", "exclusive", "held", "writers")

    def __init__(self) -> None:
        self.writers = 0
        self.exclusive = 0
        self.held: dict[str, int] = {}
        self.below: dict[str, int] = {}
        """Every proper ancestor of a held prefix: a candidate there contains a held lock."""

    def conflicts(self, paths: str | tuple[str, ...], ancestors: tuple[str, ...]) -> bool:
        if self.exclusive:
            return True
        held, below = self.held, self.below
        if type(paths) is str:
            if paths in held or paths in below:
                return True
        elif not paths:
            return self.writers > 0
        else:
            for prefix in paths:
                if prefix in held or prefix in below:
                    return True
        for ancestor in ancestors:  # noqa: SIM110 - any() would build a generator per check
            if ancestor in held:
                return True
        return False

    def add(self, paths: str | tuple[str, ...], ancestors: tuple[str, ...], delta: int = 1) -> None:
        """Take (``delta`` 1) or release (-1) a lock."""
        self.writers += delta
        held, below = self.held, self.below
        if type(paths) is str:
            left = held.get(paths, 0) + delta
            if left:
                held[paths] = left
            else:
                del held[paths]
        elif not paths:
            self.exclusive += delta
            return
        else:
            for prefix in paths:
                _bump(held, prefix, delta)
        for ancestor in ancestors:  # inlined _bump: the hot path of a simulation
            left = below.get(ancestor, 0) + delta
            if left:
                below[ancestor] = left
            else:
                del below[ancestor]


_K = t.TypeVar("_K")


def _bump(counts: dict[_K, int], key: _K, delta: int) -> None:
    """Add ``delta`` to a count kept only while it is not zero."""
    left = counts.get(key, 0) + delta
    if left:
        counts[key] = left
    else:
        del counts[key]


class PlanIndex:
    """What the scheduler derives once from a plan: dispatch order, edges, locks.

    Tasks are numbered in plan order (the first of a repeated id wins) and everything is kept
    in lists by that number, so that a plan of 100,000 tasks costs a few lists, not a few
    objects per task. The mappings by id (:attr:`order`, :attr:`rank`, :attr:`deps`, ...) are
    built on first use, for callers.
    """

    def __init__(self, plan: Plan, *, case_sensitive: bool = True) -> None:
        self.plan = plan
        self.case_sensitive = case_sensitive
        position: dict[str, int] = {}
        unique: list[Task] = []
        for task in plan.tasks:
            if task.id not in position:
                position[task.id] = len(unique)
                unique.append(task)
        self.position: t.Final = position
        """Task id -> its number."""
        self.tasks: t.Final = unique
        self.ids: t.Final = [task.id for task in unique]
        count = len(unique)
        nodes = list(position.values())
        self.nodes: t.Final = nodes
        """0 .. n-1, one int object per number, shared by every list that holds one."""
        effort: dict[str | None, float] = {}
        minutes: list[float] = []
        followers: list[list[int]] = [[] for _ in nodes]
        waiting = [0] * count
        done: set[int] = set()
        cache: dict[str, tuple[str, ...]] = {}
        folder = "\0"  # the last task's folder (none yet) and its ancestors
        above: tuple[str, ...] = ()
        paths: list[Paths] = []
        ancestors: list[tuple[str, ...]] = []
        for task, node in zip(unique, nodes, strict=True):
            cost = effort.get(task.effort)
            if cost is None:
                cost = effort[task.effort] = effort_minutes(task.effort)
            minutes.append(cost)
            blocked = task.blocked_by
            if len(blocked) > 1 and (
                blocked[0] == blocked[1] if len(blocked) == 2 else len(set(blocked)) < len(blocked)
            ):
                blocked = tuple(dict.fromkeys(blocked))
            for dep in blocked:
                source = position.get(dep)
                if source is not None:
                    followers[source].append(node)
                    waiting[node] += 1
            if task.status == "done":
                done.add(node)
            files = task.files
            if len(files) == 1 and case_sensitive and task.concurrency == "write-local":
                prefix = _prefix(files[0])  # the common case, without _lock_of's tuple
                paths.append(prefix)
                cut = prefix.rfind("/")
                if cut != len(folder) or not prefix.startswith(folder) or cut < 1:
                    folder = prefix[:cut] if cut > 0 else ""  # a new folder (no slice per task)
                    above = _ancestors(prefix, cache)
                ancestors.append(above)
            else:
                lock, lock_ancestors = _lock_of(files, task.concurrency, case_sensitive, cache)
                paths.append(lock)
                ancestors.append(lock_ancestors)
        self.minutes_of: t.Final = minutes
        self.followers: t.Final = followers
        """Per task number: the numbers of the tasks that depend on it."""
        self.dep_count: t.Final = tuple(waiting)
        self.done_nodes: t.Final = frozenset(done)
        self.paths: t.Final = paths
        self.ancestors: t.Final = ancestors
        self.done: t.Final = frozenset(self.ids[node] for node in done)

        # a topological order (any: the remaining path does not depend on which), cycle check
        flow = [node for node in nodes if not waiting[node]]
        for node in flow:  # grows while it is walked
            for follower in followers[node]:
                left = waiting[follower] - 1
                waiting[follower] = left
                if not left:
                    flow.append(follower)
        if len(flow) != count:
            graph = build_graph(unique)
            raise ValueError(f"the plan has a cycle: {' -> '.join(find_cycle_in_graph(graph))}")
        # the remaining critical path of each task still to run (done tasks and edges to them
        # drop out: they stay 0.0)
        remaining = [0.0] * count
        for node in reversed(flow):
            if node in done:
                continue
            tail = 0.0
            for follower in followers[node]:
                value = remaining[follower]
                if value > tail:
                    tail = value
            remaining[node] = minutes[node] + tail
        # dispatch order: remaining path desc, priority, id (stable sorts, last key first)
        by_rank = sorted(nodes, key=self.ids.__getitem__)
        priorities = [task.priority for task in unique]
        if priorities and min(priorities) != max(priorities):
            by_rank.sort(key=priorities.__getitem__)
        by_rank.sort(key=remaining.__getitem__, reverse=True)
        self.by_rank: t.Final = by_rank
        """Task numbers in dispatch order."""
        rank = [0] * count
        for place, node in zip(nodes, by_rank, strict=True):  # nodes: the ints 0 .. n-1
            rank[node] = place
        self.rank_of: t.Final = rank
        self.critical_path: t.Final = self._critical_path(remaining)
        """The longest chain by effort among the tasks not done (as :func:`critical_path_of`)."""

    @classmethod
    def build(cls, plan: Plan, *, case_sensitive: bool = True) -> PlanIndex:
        """Index ``plan``; ValueError if its dependencies form a cycle."""
        return cls(plan, case_sensitive=case_sensitive)

    def _critical_path(self, remaining: list[float]) -> tuple[float, list[str]]:
        ids, done = self.ids, self.done_nodes
        todo = [node for node in self.nodes if node not in done] if done else self.nodes
        if not todo:
            return 0.0, []
        top = max(remaining)  # done tasks are 0.0, never above a task still to run
        node = self.position[min(ids[node] for node in todo if remaining[node] == top)]
        path = [ids[node]]
        while True:
            best = -1
            for follower in self.followers[node]:
                if follower in done:
                    continue
                if (
                    best < 0
                    or remaining[follower] > remaining[best]
                    or (remaining[follower] == remaining[best] and ids[follower] < ids[best])
                ):
                    best = follower
            if best < 0:
                return top, path
            node = best
            path.append(ids[node])

    def deps_of(self, node: int) -> tuple[int, ...]:
        """The numbers of the tasks ``node`` depends on, in ``blocked_by`` order."""
        position = self.position
        return tuple(
            dict.fromkeys(position[dep] for dep in self.tasks[node].blocked_by if dep in position)
        )

    @cached_property
    def topo_rank(self) -> list[int]:
        """Per task number: its position in the topological order ties broken by id (skips
        are reported in this order)."""
        ids, followers = self.ids, self.followers
        waiting = list(self.dep_count)
        heap = [ids[node] for node in self.nodes if not waiting[node]]
        heapq.heapify(heap)
        result = [0] * len(ids)
        step = 0
        while heap:
            node = self.position[heapq.heappop(heap)]
            result[node] = step
            step += 1
            for follower in followers[node]:
                waiting[follower] -= 1
                if not waiting[follower]:
                    heapq.heappush(heap, ids[follower])
        return result

    # the same by id, for callers
    @cached_property
    def order(self) -> tuple[str, ...]:
        """Every task id in dispatch order: remaining critical path desc, priority, id."""
        return tuple(self.ids[node] for node in self.by_rank)

    @cached_property
    def rank(self) -> dict[str, int]:
        return dict(zip(self.ids, self.rank_of, strict=True))

    @cached_property
    def topo(self) -> dict[str, int]:
        """Position in topological order (skips are reported in this order)."""
        return dict(zip(self.ids, self.topo_rank, strict=True))

    @cached_property
    def minutes(self) -> dict[str, float]:
        """Effort of each task, in minutes."""
        return dict(zip(self.ids, self.minutes_of, strict=True))

    @cached_property
    def deps(self) -> dict[str, tuple[str, ...]]:
        ids = self.ids
        return {ids[node]: tuple(ids[dep] for dep in self.deps_of(node)) for node in self.nodes}

    @cached_property
    def dependents(self) -> dict[str, tuple[str, ...]]:
        ids = self.ids
        return {
            ids[node]: tuple(sorted(ids[follower] for follower in self.followers[node]))
            for node in self.nodes
        }

    @cached_property
    def locks(self) -> dict[str, LockSpec]:
        def spec(paths: Paths, ancestors: tuple[str, ...]) -> LockSpec:
            if paths is None:
                return LockSpec("none")
            if isinstance(paths, str):
                return LockSpec("paths", (paths,), ancestors)
            return LockSpec("paths", paths, ancestors) if paths else LockSpec("exclusive")

        return {
            tid: spec(paths, above)
            for tid, paths, above in zip(self.ids, self.paths, self.ancestors, strict=True)
        }


class TaskStates(t.Mapping[str, TaskState]):
    """Task states of one plan plus the counters :func:`decide` needs, updated per change.

    Reading is a plain mapping; :meth:`set` costs the number of dependents of the task. Plan tasks
    marked done are merged whatever ``states`` says. The locks of the active tasks are counted
    as they change, so a decision never rebuilds them.
    """

    def __init__(self, index: PlanIndex, states: t.Mapping[str, TaskState] | None = None) -> None:
        self.index = index
        ids, done, followers = index.ids, index.done_nodes, index.followers
        state: list[TaskState] = ["pending"] * len(ids)
        if states:
            for node, tid in enumerate(ids):
                state[node] = states.get(tid, "pending")
        for node in done:
            state[node] = "merged"
        self._state = state
        self._unmerged = list(index.dep_count)
        self._dead: dict[int, int] = {}
        """Only the non-zero counts: almost always empty."""
        if states or done:
            unmerged, dead = self._unmerged, self._dead
            for node in index.nodes:
                current = state[node]
                if current == "merged":
                    for follower in followers[node]:
                        unmerged[follower] -= 1
                elif current in DEAD_STATES:
                    for follower in followers[node]:
                        dead[follower] = dead.get(follower, 0) + 1
        self._active: dict[int, None] = {}
        self.locks = _Locks()
        self._ready: list[int] = []
        """Ranks of the waiting tasks whose dependencies are all merged, ascending."""
        self._doomed: dict[int, None] = {}
        for node in index.by_rank:
            self._enter(node)

    # Mapping protocol
    def __getitem__(self, task_id: str) -> TaskState:
        return self._state[self.index.position[task_id]]

    def __iter__(self) -> t.Iterator[str]:
        return iter(self.index.ids)

    def __len__(self) -> int:
        return len(self._state)

    def state_of(self, node: int) -> TaskState:
        return self._state[node]

    @property
    def active(self) -> tuple[str, ...]:
        """Tasks in an active state (they hold a worker slot and their locks)."""
        ids = self.index.ids
        return tuple(ids[node] for node in self._active)

    @property
    def active_count(self) -> int:
        return len(self._active)

    def ready(self) -> t.Iterator[str]:
        """Waiting tasks whose dependencies are all merged, in dispatch order."""
        ids, by_rank = self.index.ids, self.index.by_rank
        return (ids[by_rank[rank]] for rank in self._ready)

    def ready_ranks(self) -> list[int]:
        """The same as ranks (:attr:`PlanIndex.by_rank`): do not change the list."""
        return self._ready

    @property
    def doomed(self) -> tuple[str, ...]:
        """Waiting tasks with a dependency that finished without merging."""
        ids = self.index.ids
        return tuple(ids[node] for node in self._doomed)

    def doomed_nodes(self) -> t.Collection[int]:
        return self._doomed.keys()

    def set(self, task_id: str, state: TaskState) -> None:
        """Record a new state for ``task_id`` and update the counters of its dependents."""
        node = self.index.position[task_id]
        old = self._state[node]
        if old == state:
            return
        self._leave(node)
        self._state[node] = state
        self._enter(node)
        merged_delta = (state == "merged") - (old == "merged")
        dead_delta = (state in DEAD_STATES) - (old in DEAD_STATES)
        if not merged_delta and not dead_delta:
            return
        unmerged, dead, current = self._unmerged, self._dead, self._state
        followers = self.index.followers[node]
        if not dead_delta and not dead:  # a merge or an un-merge, nothing doomed: the usual
            ready, rank_of = self._ready, self.index.rank_of
            for follower in followers:
                left = unmerged[follower] - merged_delta
                unmerged[follower] = left
                if current[follower] in WAITING_STATES:
                    if not left:
                        bisect.insort(ready, rank_of[follower])
                    elif left == 1 and merged_delta < 0:
                        del ready[bisect.bisect_left(ready, rank_of[follower])]
            return
        for follower in followers:
            waiting = current[follower] in WAITING_STATES
            if waiting:
                self._leave(follower)
            unmerged[follower] -= merged_delta
            if dead_delta:
                _bump(dead, follower, dead_delta)
            if waiting:
                self._enter(follower)

    def _enter(self, node: int) -> None:
        state = self._state[node]
        if state in ACTIVE_TASK_STATES:
            self._active[node] = None
            paths = self.index.paths[node]
            if paths is not None:
                self.locks.add(paths, self.index.ancestors[node])
        elif state in WAITING_STATES:
            if node in self._dead:
                self._doomed[node] = None
            elif not self._unmerged[node]:
                bisect.insort(self._ready, self.index.rank_of[node])

    def _leave(self, node: int) -> None:
        state = self._state[node]
        if state in ACTIVE_TASK_STATES:
            del self._active[node]
            paths = self.index.paths[node]
            if paths is not None:
                self.locks.add(paths, self.index.ancestors[node], -1)
        elif state in WAITING_STATES:
            if node in self._dead:
                del self._doomed[node]
            elif not self._unmerged[node]:
                ready = self._ready
                del ready[bisect.bisect_left(ready, self.index.rank_of[node])]


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
    doomed = view.doomed_nodes()
    if not doomed:
        return ()
    index = view.index
    ids, state = index.ids, view.state_of
    closure = set(doomed)
    stack = list(doomed)
    while stack:
        for follower in index.followers[stack.pop()]:
            if follower not in closure and state(follower) in WAITING_STATES:
                closure.add(follower)
                stack.append(follower)
    skips: list[tuple[str, str]] = []
    for node in sorted(closure, key=index.topo_rank.__getitem__):
        for dep in index.deps_of(node):
            if state(dep) in DEAD_STATES:
                skips.append((ids[node], f"dependency {ids[dep]} {state(dep)}"))
                break
            if dep in closure:
                skips.append((ids[node], f"dependency {ids[dep]} skipped"))
                break
    return tuple(skips)


def decide(inp: SchedulerInput) -> Decision:
    """What to start and what to skip now, given the current task states."""
    view = _view(inp)
    skip = _skips(view) if view._doomed else ()
    active = len(view._active)
    if inp.paused or (inp.waves and active):
        return Decision(start=(), skip=skip, blocked_by_lock=())
    slots = inp.max_workers - active
    if slots <= 0:
        return Decision(start=(), skip=skip, blocked_by_lock=())
    index = view.index
    ids, by_rank, all_paths, all_ancestors = index.ids, index.by_rank, index.paths, index.ancestors
    held = view.locks
    chosen: _Locks | None = None  # the locks of the tasks started by this decision
    start: list[str] = []
    blocked: list[str] | None = None
    started: tuple[str, ...] = ()
    for rank in view._ready:
        node = by_rank[rank]
        paths = all_paths[node]
        if paths is not None:
            ancestors = all_ancestors[node]
            if held.conflicts(paths, ancestors) or (
                chosen is not None and chosen.conflicts(paths, ancestors)
            ):
                if blocked is None:
                    blocked = []
                blocked.append(ids[node])
                continue
            if slots > 1:  # another task may start after this one: it must see this lock
                if chosen is None:
                    chosen = _Locks()
                chosen.add(paths, ancestors)
        if slots == 1 and not start:  # the usual answer (one slot freed): no list
            started = (ids[node],)
            break
        start.append(ids[node])
        slots -= 1
        if slots == 0:
            break
    if start:
        started = tuple(start)
    if (started or blocked) and logger.isEnabledFor(logging.DEBUG):
        logger.debug("decided", extra={"start": list(started), "blocked_by_lock": blocked or []})
    return Decision(start=started, skip=skip, blocked_by_lock=tuple(blocked) if blocked else ())


def stage_ahead(inp: SchedulerInput, staged: t.Collection[str]) -> tuple[str, ...]:
    """Waiting tasks worth a checkout made before they can start (``runner.launcher``): every
    dependency merged or in a worker's hands, none dead; first in dispatch order, at most one
    per slot no active task and no staged one (``staged``, still waiting) holds, so the
    checkouts on disk never outnumber ``max_workers``. None while paused or in waves (a wave
    starts from its own base). Costs the followers of the active tasks."""
    view = _view(inp)
    if inp.paused or inp.waves:
        return ()
    free = inp.max_workers - len(view._active) - len(staged)
    if free <= 0:
        return ()
    index, state, unmerged = view.index, view._state, view._unmerged
    ids, rank_of = index.ids, index.rank_of
    found: dict[int, None] = {}
    for node in view._active:
        for follower in index.followers[node]:
            if (
                follower in found
                or state[follower] not in WAITING_STATES
                or follower in view._dead
                or ids[follower] in staged
            ):
                continue
            # its unmerged dependencies are all active (a pending one is further away)
            active = sum(1 for dep in index.deps_of(follower) if dep in view._active)
            if active == unmerged[follower]:
                found[follower] = None
    return tuple(ids[node] for node in sorted(found, key=rank_of.__getitem__)[:free])
