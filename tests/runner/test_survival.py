"""Survive everything: SIGKILLed mayors, a hung-up follower, killed worker panes, a killed tmux
server, stalls. Real processes, real signals; every trial must end with every task merged
exactly once, no unprocessed mail, no duplicate worker and state.json equal to its rebuild."""

from __future__ import annotations

import json
import pathlib
import random
import signal
import subprocess
import sys

import pytest
from libtmux.server import Server

from agentmail.store import MailStore
from protocol.messages import MessageType
from runner.paths import SwarmPaths
from tests.runner import faults


def _plan(tmp_path: pathlib.Path, seed: int) -> pathlib.Path:
    return faults.write_plan(tmp_path, faults.twenty_task_plan(random.Random(seed)))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mayor_sigkilled_at_random_points_and_resumed(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path, seed: int
) -> None:
    """Four SIGKILLs per run, three runs: twelve kill-and-resume trials."""
    rng = random.Random(seed)
    faults.run_trial(git_repo, _plan(tmp_path, seed), str(server.socket_name), "r1", rng, kills=4)


def test_tmux_server_killed_mid_run_then_resumed(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    rng = random.Random(7)
    faults.run_trial(
        git_repo, _plan(tmp_path, 7), str(server.socket_name), "r1", rng, kills=1, kill_server=True
    )
    resumed = [e for e in faults.events(git_repo, "r1") if e.data.get("resumed")]
    assert resumed, "no running task was restarted in its worktree after the server died"


def test_sighup_to_the_follower_stops_only_the_following(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    plan = _plan(tmp_path, 11)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            *faults.run_args(git_repo, plan, str(server.socket_name), "r1"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        faults.wait_until(
            lambda: any(e.kind == "task_dispatched" for e in faults.events(git_repo, "r1")),
            30,
            "the first dispatch",
        )
        follower.send_signal(signal.SIGHUP)
        assert follower.wait(timeout=10) != 0
    finally:
        follower.kill()
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 120, "the run to end")
    faults.check_invariants(git_repo, "r1")


def test_killed_worker_panes_are_retried(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    socket = str(server.socket_name)
    faults.start(git_repo, _plan(tmp_path, 5), socket, "r1")
    killed: set[str] = set()

    def kill_a_worker() -> bool:
        for session in server.sessions:
            name = str(session.name)
            if name.startswith("swarm-r1-T") and name not in killed and session.panes:
                pane = session.panes[0]
                if pane.pane_dead != "1":
                    pane.cmd("kill-pane")
                    killed.add(name)
                    return len(killed) >= 3
        return False

    faults.wait_until(kill_a_worker, 60, "three live workers to kill")
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 120, "the run to end")
    faults.check_invariants(git_repo, "r1")
    state = json.loads(SwarmPaths.for_repo(git_repo).run("r1").state.read_text())
    assert any(rec["attempt"] >= 2 for rec in state["tasks"].values())


def test_second_resume_of_a_live_run_exits_1(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    plan = faults.write_plan(
        tmp_path,
        {
            "tasks": [
                {
                    "id": "A",
                    "files": ["a.txt"],
                    "script": [{"sleep": 3}, {"write": {"path": "a.txt", "content": "a\n"}}],
                }
            ]
        },
    )
    faults.start(git_repo, plan, str(server.socket_name), "r1")
    faults.wait_until(lambda: faults.mayor_pid(git_repo, "r1") is not None, 30, "the mayor")
    second = faults.swarm("resume", "r1", "--repo", str(git_repo), check=False)
    assert second.returncode == 1, second.stderr
    assert "already has a live mayor" in second.stderr
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 60, "the run to end")
    rebuilt = faults.swarm("status", "r1", "--repo", str(git_repo), "--rebuild", "--json")
    saved = faults.swarm("status", "r1", "--repo", str(git_repo), "--json")
    assert json.loads(rebuilt.stdout) == json.loads(saved.stdout)


def test_stalled_worker_is_nudged_then_reported_and_restarted(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    plan = faults.write_plan(
        tmp_path,
        {
            "tasks": [
                {
                    "id": "A",
                    "files": ["a.txt"],
                    "script": [
                        {"hang": True, "attempt": 1},
                        {"write": {"path": "a.txt", "content": "a\n"}},
                    ],
                }
            ]
        },
    )
    faults.start(git_repo, plan, str(server.socket_name), "r1", "--stall-after", "1s")
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 60, "the run to end")
    kinds = [e.kind for e in faults.events(git_repo, "r1")]
    assert kinds.count("task_nudged") >= 2
    store = MailStore(SwarmPaths.for_repo(git_repo).mail)
    assert MessageType.NUDGE in [m.envelope.type for m in store.list("A").messages]
    assert MessageType.HELP_REQUEST in [m.envelope.type for m in store.list("human").messages]
    state = json.loads(SwarmPaths.for_repo(git_repo).run("r1").state.read_text())
    # attempt 1 hung and was restarted; on a loaded machine a slow start of attempt 2 may be
    # taken for a stall too (1 s), so only "restarted at least once, then done" is certain
    assert state["status"] == "done" and state["tasks"]["A"]["attempt"] >= 2
