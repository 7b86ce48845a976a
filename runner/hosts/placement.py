"""Which host a task's worker starts on: a pure function of the run state (no clock, no I/O),
shared by the live mayor and ``swarm plan simulate``.

A task stays on its host while that host is up and has room (its clone there holds its
work); otherwise it goes to the up host with the most free slots, ties to the host listed
first. The scheduler already caps the run at the sum of the slots (``max_workers``), so some
host has room whenever a task is started, unless hosts are down: then the busiest up host
takes it (a host's ``slots`` is a target, not a lock).
"""

from __future__ import annotations

import collections
import typing as t

from protocol.hosts import LOCAL, HostSpec
from protocol.state import ACTIVE_TASK_STATES, RunState


def busy(state: RunState, *, besides: str | None = None) -> collections.Counter[str]:
    """Workers holding a slot on each host (a task's host ``""`` is ``local``)."""
    return collections.Counter(
        rec.host or LOCAL
        for rec in state.tasks.values()
        if rec.state in ACTIVE_TASK_STATES and rec.id != besides and rec.attempt > 0
    )


def choose(
    hosts: t.Sequence[HostSpec],
    used: t.Mapping[str, int],
    *,
    current: str = "",
    down: t.Collection[str] = (),
) -> str:
    """The host to start on, given the slots ``used`` per host (see the module docstring)."""
    up = [h for h in hosts if h.name not in down] or list(hosts)
    for host in up:
        if host.name == current and used.get(host.name, 0) < host.slots:
            return current
    order = {h.name: i for i, h in enumerate(up)}
    best = max(up, key=lambda h: (h.slots - used.get(h.name, 0), -order[h.name]))
    return best.name


def place(state: RunState, task_id: str, *, down: t.Collection[str] = ()) -> str:
    """The host task ``task_id`` starts on now; ``""`` when the run has no hosts."""
    if not state.hosts:
        return ""
    current = state.tasks[task_id].host
    return choose(state.hosts, busy(state, besides=task_id), current=current, down=down)
