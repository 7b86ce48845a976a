"""Scope escapes, spawn budgets, pauses, final gates, fix-ups, squash, landing and cleanup, on
real runs (tmux-hosted mayor, scripted agents, real git)."""

from __future__ import annotations

import os
import pathlib
import signal
import typing as t

from libtmux.server import Server

from agentmail.store import MailStore
from protocol.messages import MessageType
from runner.paths import SwarmPaths
from tests.conftest import git
from tests.runner.runs import (
    events,
    state_doc,
    swarm,
    swarm_run,
    task,
    wait_for,
    write,
    write_plan,
)


def escape(finding: str, files: list[str], intent: str, severity: str) -> dict[str, t.Any]:
    return {"escape": {"finding": finding, "files": files, "intent": intent, "severity": severity}}


def decided(repo: pathlib.Path) -> list[dict[str, t.Any]]:
    return [e.data for e in events(repo) if e.kind == "escape_decided"]


def mayor_pid(repo: pathlib.Path) -> int:
    return int(next(e.data["pid"] for e in reversed(events(repo)) if e.kind == "mayor_started"))


def human_inbox(repo: pathlib.Path) -> list[MessageType]:
    store = MailStore(SwarmPaths.for_repo(repo).mail)
    return [m.envelope.type for m in store.list("human").messages]


def test_same_escape_twice_spawns_one_follow_up_across_a_mayor_restart(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    go = tmp_path / "go"
    same = escape("docs need a usage section", ["docs/usage.md"], "usage-docs", "low")
    tasks = [
        task("A", ["a.txt"], [same, write("a.txt", "a\n")]),
        task(
            "B",
            ["b.txt"],
            [{"run": f"while [ ! -e {go} ]; do sleep 0.05; done"}, same, write("b.txt", "b\n")],
        ),
    ]
    plan = write_plan(tmp_path, tasks)
    started = swarm_run(git_repo, plan, server, "--auto-spawn", "all", "--detach")
    assert started.exit_code == 0, started.output
    wait_for(lambda: len(decided(git_repo)) == 1)
    pid = mayor_pid(git_repo)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pathlib.Path(f"/proc/{pid}").exists())
    resumed = swarm("resume", "--repo", str(git_repo), "--detach")
    assert resumed.exit_code == 0, resumed.output
    go.touch()
    wait_for(lambda: state_doc(git_repo)["status"] != "running", timeout=90)
    decisions = decided(git_repo)
    assert [d["spawn"] for d in decisions] == [True, False]
    assert decisions[0]["task"] == "T-AUTO-01"
    assert "duplicate" in decisions[1]["reason"]
    added = [e for e in events(git_repo) if e.data.get("task_def")]
    assert [e.data["task_def"]["id"] for e in added] == ["T-AUTO-01"]
    state = state_doc(git_repo)
    assert state["status"] == "done", state["stop_reason"]
    assert state["tasks"]["T-AUTO-01"]["state"] == "merged"
    assert [e["spawned"] for e in state["escapes"]] == ["T-AUTO-01", None]


def test_spawn_budget_exhausted_stops_the_run(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [
        task(
            "A",
            ["a.txt"],
            [
                escape("first", ["x.md"], "one", "medium"),
                escape("second", ["y.md"], "two", "medium"),
                write("a.txt", "a\n"),
                {"sleep": 1},
            ],
        )
    ]
    plan = write_plan(tmp_path, tasks, budgets={"spawns": 1})
    result = swarm_run(git_repo, plan, server, "--auto-spawn", "all")
    assert result.exit_code == 1, result.output
    state = state_doc(git_repo)
    assert state["status"] == "stopped"
    assert state["stop_reason"].startswith("spawn budget exhausted")
    assert [d["spawn"] for d in decided(git_repo)] == [True, False]


def test_critical_escape_pauses_dispatch_until_unpaused(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [
        task(
            "A",
            ["a.txt"],
            [escape("secrets in logs", ["log.py"], "redact", "critical"), write("a.txt", "a\n")],
        ),
        task("B", ["b.txt"], [write("b.txt", "b\n")], blocked_by=["A"]),
    ]
    plan = write_plan(tmp_path, tasks)
    assert swarm_run(git_repo, plan, server, "--detach").exit_code == 0
    wait_for(
        lambda: (
            state_doc(git_repo)["paused"] and state_doc(git_repo)["tasks"]["A"]["state"] == "merged"
        )
    )
    state = state_doc(git_repo)
    assert state["tasks"]["B"]["state"] == "pending"  # ready, but dispatch is paused
    assert MessageType.HELP_REQUEST in human_inbox(git_repo)
    unpaused = swarm("unpause", "--repo", str(git_repo))
    assert unpaused.exit_code == 0, unpaused.output
    wait_for(lambda: state_doc(git_repo)["status"] != "running", timeout=90)
    state = state_doc(git_repo)
    assert state["status"] == "done", state["stop_reason"]
    assert {tid: rec["state"] for tid, rec in state["tasks"].items()} == {
        "A": "merged",
        "B": "merged",
        "T-AUTO-01": "merged",
    }


def test_failing_final_gate_fails_the_run_after_one_remediation(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [task("A", ["bad.txt"], [write("bad.txt", "breaks the final gate\n")])]
    gates = [{"name": "final", "command": "test ! -e bad.txt", "fast": False, "family": "O"}]
    result = swarm_run(git_repo, write_plan(tmp_path, tasks, gates=gates), server)
    assert result.exit_code == 1, result.output
    state = state_doc(git_repo)
    assert state["status"] == "failed"
    assert state["stop_reason"].startswith("final gate final exited 1")
    remediations = [d for d in decided(git_repo) if d["spawn"]]
    assert [d["task"] for d in remediations] == ["T-AUTO-01"]
    last_merge = state["tasks"]["T-AUTO-01"]["merge_sha"]  # the remediation's (stand-in) work
    assert git(git_repo, "rev-parse", "swarm/r1/integration") == last_merge


def test_scope_violation_is_blocked_after_three_fix_ups(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [task("sneaky", ["mine.txt"], [write("mine.txt", "1\n"), write("README.md", "x\n")])]
    result = swarm_run(git_repo, write_plan(tmp_path, tasks), server)
    assert result.exit_code == 1, result.output
    record = state_doc(git_repo)["tasks"]["sneaky"]
    assert (record["state"], record["fixups"], record["files"]) == ("blocked", 3, ["README.md"])
    assert MessageType.HELP_REQUEST in human_inbox(git_repo)
    assert git(git_repo, "rev-parse", "swarm/r1/integration") == git(git_repo, "rev-parse", "main")


def test_squash_gives_one_commit_per_task(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "1\n"), {"commit": "one"}, write("a.txt", "2\n")]),
        task("B", ["b.txt"], [write("b.txt", "b\n")], blocked_by=["A"]),
    ]
    result = swarm_run(git_repo, write_plan(tmp_path, tasks), server, "--squash")
    assert result.exit_code == 0, result.output
    log = git(git_repo, "log", "--format=%s %p", "main..swarm/r1/integration").splitlines()
    assert [line.split()[0] for line in log] == ["swarm(B):", "swarm(A):"]
    assert all(len(line.split()) == 4 for line in log)  # "swarm(X): task X <one parent>"


def test_per_task_commits_use_the_agentops_message(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    result = swarm_run(git_repo, write_plan(tmp_path, tasks), server, "--per-task-commits")
    assert result.exit_code == 0, result.output
    log = git(git_repo, "log", "--format=%s", "main..swarm/r1/integration").splitlines()
    assert log == ["chore(A): task A"]


def test_waves_commit_once_per_wave(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "a\n")]),
        task("B", ["b.txt"], [write("b.txt", "b\n")]),
        task("C", ["c.txt"], [write("c.txt", "c\n")], blocked_by=["A"]),
    ]
    result = swarm_run(git_repo, write_plan(tmp_path, tasks), server, "--waves")
    assert result.exit_code == 0, result.output
    log = git(git_repo, "log", "--format=%s%n%b", "main..swarm/r1/integration")
    assert log.split("\n\n")[0].splitlines() == ["chore(wave-2): close C", "- C: task C"]
    assert "chore(wave-1): close A, B\n- A: task A\n- B: task B" in log
    assert git(git_repo, "rev-list", "--count", "main..swarm/r1/integration") == "2"
    tree = git(git_repo, "ls-tree", "--name-only", "swarm/r1/integration").splitlines()
    assert {"a.txt", "b.txt", "c.txt"} <= set(tree)
    assert git(git_repo, "merge-base", "--is-ancestor", "main", "swarm/r1/integration") == ""


def test_land_never_overwrites_the_users_files(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    plan = write_plan(tmp_path, tasks)
    (git_repo / "a.txt").write_text("the user's own a.txt\n")  # where the run writes
    (git_repo / "README.md").write_text("a local edit\n")  # untouched by the run: no matter
    before = git(git_repo, "rev-parse", "main")
    assert swarm_run(git_repo, plan, server, "--land").exit_code == 0
    assert git(git_repo, "rev-parse", "main") == before  # would overwrite a.txt: nothing changed
    assert (git_repo / "a.txt").read_text() == "the user's own a.txt\n"
    refused = [e for e in events(git_repo) if e.kind == "land_refused"]
    assert refused and refused[0].data["commands"]
    (git_repo / "a.txt").unlink()
    landed = swarm("land", "--repo", str(git_repo))
    assert landed.exit_code == 0, landed.output
    assert git(git_repo, "rev-parse", "main") == git(git_repo, "rev-parse", "swarm/r1/integration")
    assert (git_repo / "a.txt").read_text() == "a\n"
    assert (git_repo / "README.md").read_text() == "a local edit\n"


def test_clean_force_after_a_failed_run_keeps_every_commit_reachable(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    tasks = [
        task("good", ["g.txt"], [write("g.txt", "g\n")]),
        task(
            "bad", ["b.txt"], [write("b.txt", "b\n"), {"commit": "work in progress"}, {"crash": 2}]
        ),
    ]
    assert swarm_run(git_repo, write_plan(tmp_path, tasks), server).exit_code == 1
    heads = {tid: git(git_repo, "rev-parse", f"swarm/r1/{tid}") for tid in ("good", "bad")}
    cleaned = swarm("clean", "--repo", str(git_repo), "--force")
    assert cleaned.exit_code == 0, cleaned.output
    unreachable = git(git_repo, "fsck", "--unreachable", "--no-reflogs")
    assert not any(sha in unreachable for sha in heads.values())
    assert git(git_repo, "rev-parse", "refs/swarm/archive/r1/bad") == heads["bad"]
    listed = git(git_repo, "worktree", "list")
    assert str(git_repo.parent / "wt") not in listed
    again = swarm("clean", "--repo", str(git_repo), "--force")
    assert again.exit_code == 0, again.output
