"""Runs across hosts: a 12-task plan on ``local`` plus two ssh hosts on 127.0.0.1, every task
merged once; the faults (a killed connection, a host gone for good, a killed remote tmux
server, a SIGKILLed mayor) each end with every task merged once too."""

from __future__ import annotations

import collections
import functools
import pathlib
import subprocess
import typing as t

from libtmux.server import Server

from runner.hosts.layout import Layout
from runner.paths import SwarmPaths
from tests.conftest import git
from tests.hosts.sshd import SshHosts
from tests.runner import faults
from tests.runner.runs import events, state_doc, swarm, swarm_run, task, write, write_plan


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
    """The hosts in the repository's ``.swarm.toml``."""
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
    _configure(git_repo, ssh_hosts, agents={"hostB": "marked"})
    with (git_repo / ".swarm.toml").open("a") as toml:  # hostB's own preset: marks its HOME
        toml.write(
            '\n[presets.marked]\nargv = ["sh", "-c", '
            '\'echo "$SWARM_TASK" >> "$HOME/marks"; exec "$0" -m runner.agents.scripted\', '
            '"{python}"]\n'
        )
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
    on_b = {tid for tid, host in placed.items() if host == "hostB"}
    assert set((ssh_hosts.home("hostB") / "marks").read_text().split()) == on_b
    assert not (ssh_hosts.home("hostA") / "marks").exists()


# -- faults ---------------------------------------------------------------------------------


def _slow(tid: str, seconds: float, *, commit_first: bool = False) -> dict[str, t.Any]:
    """A task whose first attempt takes ``seconds`` (after committing, with ``commit_first``);
    a later attempt offers at once what the branch holds."""
    steps: list[dict[str, t.Any]] = [write(f"f/{tid}.txt", f"{tid} attempt 1\n")]
    if commit_first:
        steps.append({"commit": f"{tid} first", "attempt": 1})
    steps.append({"sleep": seconds, "attempt": 1})
    return task(tid, [f"f/{tid}.txt"], steps)


def _start(repo: pathlib.Path, server: Server, tasks: list[dict[str, t.Any]], hosts: str) -> None:
    plan = write_plan(repo.parent, tasks)
    assert server.socket_name
    faults.start(repo, plan, server.socket_name, "r1", "--hosts", hosts, "--timeout", "120s")


def _dispatched(repo: pathlib.Path, host: str) -> list[str]:
    return [
        e.task_id or ""
        for e in faults.events(repo, "r1")
        if e.kind == "task_dispatched" and e.data.get("host") == host
    ]


def _at(checkout: pathlib.Path, subject: str) -> bool:
    """Is ``checkout``'s last commit ``subject``?"""
    return (checkout / ".git").exists() and git(checkout, "log", "-1", "--format=%s") == subject


def _finish(repo: pathlib.Path, ids: t.Iterable[str]) -> dict[str, str]:
    faults.wait_until(lambda: faults.status(repo, "r1") != "running", 90, "the run's end")
    faults.check_invariants(repo, "r1")
    return assert_merged_once(repo, ids)


def test_a_killed_ssh_connection_is_reconnected_and_nothing_is_lost_or_doubled(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    _configure(git_repo, ssh_hosts, local_slots=1)
    tasks = [_slow(f"T{i}", 3.0) for i in range(1, 6)]
    _start(git_repo, server, tasks, "local,hostA,hostB")
    faults.wait_until(
        lambda: bool(ssh_hosts.sessions("hostA") and ssh_hosts.sessions("hostB")), 30, "work"
    )
    assert len(set(ssh_hosts.kill_masters())) == 2  # every channel to both hosts dies mid-work
    _finish(git_repo, [t["id"] for t in tasks])
    crashed = [e for e in faults.events(git_repo, "r1") if e.kind == "task_crashed"]
    assert crashed == [], crashed  # the workers went on over there; their reports came back
    log = (SwarmPaths.for_repo(git_repo).run("r1").dir / "mayor.log").read_text()
    for name in ("hostA", "hostB"):  # connected, then connected again
        assert log.count(f"connected to host {name}") >= 2, log


def test_a_host_gone_for_good_has_its_tasks_re_placed_with_their_pushed_work(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    _configure(git_repo, ssh_hosts, local_slots=1, grace=2.0)
    home = ssh_hosts.home("hostA")
    tasks = [  # each commits, then waits only on hostA (for the host to go)
        task(
            tid,
            [f"f/{tid}.txt"],
            [
                write(f"f/{tid}.txt", f"{tid} attempt 1\n"),
                {"commit": f"{tid} first", "attempt": 1},
                {"run": f'if [ "$HOME" = "{home}" ]; then sleep 60; fi', "attempt": 1},
            ],
        )
        for tid in ("T1", "T2", "T3")
    ]
    _start(git_repo, server, tasks, "local,hostA")
    faults.wait_until(lambda: len(_dispatched(git_repo, "hostA")) == 2, 30, "two on hostA")
    remote = _dispatched(git_repo, "hostA")
    for tid in remote:  # the first commit is mirrored here, then the host goes
        mirror = git_repo.parent / "wt" / "r1" / tid
        faults.wait_until(functools.partial(_at, mirror, f"{tid} first"), 30, f"{tid} mirrored")
    ssh_hosts.stop()
    placed = _finish(git_repo, [t["id"] for t in tasks])
    evs = faults.events(git_repo, "r1")
    for tid in remote:
        crash = [e for e in evs if e.kind == "task_crashed" and e.task_id == tid]
        assert crash and "host hostA unreachable" in crash[0].data["reason"], crash
        assert placed[tid] == "local"
        # the work pushed before the host went is what merged (the retry changed nothing)
        shown = git(git_repo, "show", f"swarm/r1/integration:f/{tid}.txt")
        assert shown == f"{tid} attempt 1"


def test_a_killed_remote_tmux_server_is_a_dead_session_and_the_task_runs_again(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    _configure(git_repo, ssh_hosts, local_slots=1)
    tasks = [_slow(f"T{i}", 60.0 if i != 2 else 1.0) for i in range(1, 4)]
    _start(git_repo, server, tasks, "local,hostA")
    faults.wait_until(lambda: len(_dispatched(git_repo, "hostA")) == 2, 30, "two on hostA")
    socket = Layout.of(ssh_hosts.root("hostA")).socket
    faults.wait_until(lambda: len(ssh_hosts.sessions("hostA")) == 2, 30, "two sessions there")
    subprocess.run(["tmux", "-L", socket, "kill-server"], check=True)
    placed = _finish(git_repo, [t["id"] for t in tasks])
    evs = faults.events(git_repo, "r1")
    crashed = {e.task_id for e in evs if e.kind == "task_crashed"}
    assert crashed == {tid for tid, host in placed.items() if host == "hostA"}


def test_a_mayor_killed_while_remote_workers_run_is_resumed_and_adopts_them(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    _configure(git_repo, ssh_hosts, local_slots=1)
    tasks = [_slow(f"T{i}", 4.0) for i in range(1, 5)]
    _start(git_repo, server, tasks, "local,hostA,hostB")
    faults.wait_until(
        lambda: len(ssh_hosts.sessions("hostA")) + len(ssh_hosts.sessions("hostB")) == 3,
        30,
        "three remote workers",
    )
    assert faults.kill_mayor(git_repo, "r1")
    faults.resume(git_repo, "r1")
    _finish(git_repo, [t["id"] for t in tasks])
    evs = faults.events(git_repo, "r1")
    assert [e for e in evs if e.kind == "task_crashed"] == []
    dispatches = collections.Counter(e.task_id for e in evs if e.kind == "task_dispatched")
    assert dispatches == {t["id"]: 1 for t in tasks}  # adopted where they ran, not restarted


def test_clean_saves_what_a_remote_clone_holds_then_removes_it_there(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    _configure(git_repo, ssh_hosts)
    plan = write_plan(git_repo.parent, [task("T1", ["f/T1.txt"], [write("f/T1.txt", "1\n")])])
    result = swarm_run(git_repo, plan, server, "--hosts", "hostA", "--timeout", "60s")
    assert result.exit_code == 0, result.output
    clone = ssh_hosts.root("hostA") / "work" / "r1" / "T1"
    (clone / "late.txt").write_text("made over there after the run\n")
    git(clone, "add", "late.txt")
    git(clone, "commit", "-q", "-m", "late")
    late = git(clone, "rev-parse", "HEAD")
    kept = swarm("clean", "r1", "--repo", str(git_repo))
    assert kept.exit_code == 0, kept.output
    assert "T1" in kept.output and "archives them" in kept.output, kept.output
    assert clone.is_dir()  # nothing removed there while its commit is not saved
    forced = swarm("clean", "r1", "--repo", str(git_repo), "--force")
    assert forced.exit_code == 0, forced.output
    assert git(git_repo, "for-each-ref", "--contains", late, "refs/swarm/archive/")
    assert not clone.exists() and not (ssh_hosts.root("hostA") / "boxes" / "r1" / "T1").exists()


def test_the_mayors_mail_reaches_a_remote_workers_inbox_signed_for_it(
    git_repo: pathlib.Path, server: Server, ssh_hosts: SshHosts
) -> None:
    """The ASSIGN the mayor sends is relayed into the inbox over there, where the worker's
    own ``swarm mail inbox`` verifies it (with the box's relay key) and lists it."""
    _configure(git_repo, ssh_hosts)
    wait_for_assign = (
        "for i in $(seq 200); do "
        '"$SWARM_BIN" mail inbox --json > "$HOME/inbox.json" 2>&1; '
        "if grep -q 'ASSIGN' \"$HOME/inbox.json\"; then "
        "mkdir -p f; grep -o '\\[T1\\] ASSIGN' \"$HOME/inbox.json\" | head -1 > f/T1.txt; "
        "exit 0; fi; "
        "sleep 0.1; done; exit 1"
    )
    steps = [{"run": wait_for_assign}]
    plan = write_plan(
        git_repo.parent, [task("T1", ["f/T1.txt"], steps)], budgets={"max_attempts": 1}
    )
    result = swarm_run(git_repo, plan, server, "--hosts", "hostA", "--timeout", "60s")
    assert result.exit_code == 0, result.output
    assert git(git_repo, "show", "swarm/r1/integration:f/T1.txt") == "[T1] ASSIGN"
    quarantine = ssh_hosts.root("hostA") / "boxes" / "r1" / "T1" / "swarm" / "mail" / "T1"
    assert list((quarantine / "quarantine").iterdir()) == []
