"""The plan's dependency graph: cycles, topological order, critical path, parallelism.

Edges follow ``blocked_by``: a task depends on each id it lists. Ids that name no task in the
sequence are ignored here (the plan loader reports them). Every algorithm is iterative (a
10,000-task chain must not reach the recursion limit) and deterministic: ties are broken by id,
never by set or hash order.
"""

from __future__ import annotations

import heapq
import typing as t


class GraphTask(t.Protocol):
    """What the graph needs of a task (``protocol.plan.Task`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def blocked_by(self) -> t.Sequence[str]: ...

    @property
    def minutes(self) -> float: ...


class Graph(t.NamedTuple):
    """Adjacency of a task sequence: ids in first-seen order, known dependencies, dependents."""

    ids: tuple[str, ...]
    deps: dict[str, tuple[str, ...]]
    dependents: dict[str, tuple[str, ...]]
    minutes: dict[str, float]


def build_graph(tasks: t.Sequence[GraphTask]) -> Graph:
    """The graph of ``tasks``; the first task wins when an id repeats, unknown deps are dropped."""
    by_id: dict[str, GraphTask] = {}
    for task in tasks:
        by_id.setdefault(task.id, task)
    deps: dict[str, tuple[str, ...]] = {}
    dependents: dict[str, list[str]] = {task_id: [] for task_id in by_id}
    for task_id, task in by_id.items():
        known = tuple(dict.fromkeys(dep for dep in task.blocked_by if dep in by_id))
        deps[task_id] = known
        for dep in known:
            dependents[dep].append(task_id)
    return Graph(
        ids=tuple(by_id),
        deps=deps,
        dependents={key: tuple(sorted(value)) for key, value in dependents.items()},
        minutes={task_id: task.minutes for task_id, task in by_id.items()},
    )


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm without recursion; components with a cycle only."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.ids):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, position = work.pop()
            if position == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            deps = sorted(graph.deps[node])
            if position < len(deps):
                work.append((node, position + 1))
                nxt = deps[position]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.deps[node]:
                    found.append(sorted(component))
    return found


def _cycle_in(component: list[str], graph: Graph) -> list[str]:
    """The shortest cycle through the smallest id of a strongly connected component."""
    start = component[0]
    members = set(component)
    parent: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for dep in sorted(graph.deps[node]):
            if dep == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if dep in members and dep not in parent and dep != start:
                parent[dep] = node
                queue.append(dep)
    raise AssertionError(f"component {component} has no cycle")  # pragma: no cover


def find_cycles(tasks: t.Sequence[GraphTask]) -> list[list[str]]:
    """One cycle per strongly connected component, e.g. ``[["T07", "T08", "T07"]]``."""
    graph = build_graph(tasks)
    cycles = [_cycle_in(component, graph) for component in _strongly_connected(graph)]
    return sorted(cycles)


def find_cycle(tasks: t.Sequence[GraphTask]) -> list[str] | None:
    """A dependency cycle (``["T07", "T08", "T07"]``: T07 waits on T08 which waits on T07)."""
    cycles = find_cycles(tasks)
    return cycles[0] if cycles else None


def _topo(graph: Graph) -> list[str]:
    waiting = {task_id: len(deps) for task_id, deps in graph.deps.items()}
    heap = [task_id for task_id, count in waiting.items() if count == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        node = heapq.heappop(heap)
        order.append(node)
        for dependent in graph.dependents[node]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(heap, dependent)
    if len(order) != len(graph.ids):
        cycle = find_cycle_in_graph(graph)
        raise ValueError(f"the plan has a cycle: {' -> '.join(cycle)}")
    return order


def find_cycle_in_graph(graph: Graph) -> list[str]:
    components = _strongly_connected(graph)
    return min(_cycle_in(component, graph) for component in components)


def topo_order(tasks: t.Sequence[GraphTask]) -> list[str]:
    """Ids with every task after its dependencies; ties by id. ValueError on a cycle."""
    return _topo(build_graph(tasks))


def _remaining(graph: Graph, order: t.Sequence[str] | None = None) -> dict[str, float]:
    result: dict[str, float] = {}
    for node in reversed(_topo(graph) if order is None else order):
        tail = max((result[dependent] for dependent in graph.dependents[node]), default=0.0)
        result[node] = graph.minutes[node] + tail
    return result


def remaining_critical_path(tasks: t.Sequence[GraphTask]) -> dict[str, float]:
    """Per task: minutes of the longest effort path from it to a sink, itself included."""
    graph = build_graph(tasks)
    remaining = _remaining(graph)
    return {task_id: remaining[task_id] for task_id in graph.ids}


def critical_path(tasks: t.Sequence[GraphTask]) -> tuple[float, list[str]]:
    """The longest chain by effort: its minutes and its ids in execution order."""
    return critical_path_of(build_graph(tasks))


class Analysis(t.NamedTuple):
    """What a scheduler derives from one graph, computed in one pass of each kind."""

    topo: list[str]
    remaining: dict[str, float]
    """Per task: minutes of the longest effort path from it to a sink, itself included."""


def analyse(graph: Graph) -> Analysis:
    """Topological order and remaining critical path of ``graph``; ValueError on a cycle."""
    order = _topo(graph)
    return Analysis(order, _remaining(graph, order))


def critical_path_of(
    graph: Graph, remaining: t.Mapping[str, float] | None = None
) -> tuple[float, list[str]]:
    """:func:`critical_path` of a built graph (``remaining``: its :func:`analyse` result)."""
    if not graph.ids:
        return 0.0, []
    if remaining is None:
        remaining = _remaining(graph)
    node = min(graph.ids, key=lambda task_id: (-remaining[task_id], task_id))
    total = remaining[node]
    path = [node]
    while graph.dependents[node]:
        node = min(graph.dependents[node], key=lambda task_id: (-remaining[task_id], task_id))
        path.append(node)
    return total, path


def levels(tasks: t.Sequence[GraphTask]) -> dict[str, int]:
    """Per task: 0 without dependencies, else one more than its deepest dependency."""
    graph = build_graph(tasks)
    level: dict[str, int] = {}
    for node in _topo(graph):
        level[node] = 1 + max((level[dep] for dep in graph.deps[node]), default=-1)
    return {task_id: level[task_id] for task_id in graph.ids}


def max_parallelism(tasks: t.Sequence[GraphTask]) -> int:
    """The number of tasks in the widest level of the DAG (0 for no tasks)."""
    counts: dict[int, int] = {}
    for level in levels(tasks).values():
        counts[level] = counts.get(level, 0) + 1
    return max(counts.values(), default=0)
