"""Fault injection shared by the survival tests and ``scripts/bench/chaos.py``: a 20-task
scripted plan with sleeps, ways to kill things for real, and the invariants every trial must
keep (every task merged exactly once, no unprocessed mail, no duplicate worker, state.json equal
to its rebuild from events)."""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import typing as t

import yaml

from agentmail.store import MailStore
from protocol.state import Event
from runner.events import read_events
from runner.paths import SwarmPaths
from runner.state import rebuild


def twenty_task_plan(rng: random.Random) -> dict[str, t.Any]:
    """Four layers of five tasks; each task sleeps a little and writes its own file; every
    task after the first layer depends on one or two tasks of the layer before."""
    tasks = []
    for layer in range(4):
        for slot in range(5):
            tid = f"T{layer}{slot}"
            deps = (
                sorted({f"T{layer - 1}{rng.randrange(5)}" for _ in range(rng.randint(1, 2))})
                if layer
                else []
            )
            tasks.append(
                {
                    "id": tid,
                    "subject": f"task {tid}",
                    "files": [f"out/{tid}.txt"],
                    "blocked_by": deps,
                    "script": [
                        {"progress": f"{tid} working"},
                        {"sleep": round(rng.uniform(0.1, 0.6), 2)},
                        {"write": {"path": f"out/{tid}.txt", "content": f"{tid}\n"}},
                    ],
                }
            )
    return {"name": "chaos", "max_workers": 5, "tasks": tasks}


def write_plan(where: pathlib.Path, plan: dict[str, t.Any]) -> pathlib.Path:
    path = where / "plan.yaml"
    path.write_text(yaml.safe_dump(plan))
    return path


def swarm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The real CLI in a real process (so signals reach real processes)."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args], capture_output=True, text=True, check=check
    )


def run_paths(repo: pathlib.Path, run_id: str) -> tuple[pathlib.Path, pathlib.Path]:
    run = SwarmPaths.for_repo(repo).run(run_id)
    return run.events, run.state


def events(repo: pathlib.Path, run_id: str) -> list[Event]:
    return read_events(run_paths(repo, run_id)[0])


def status(repo: pathlib.Path, run_id: str) -> str:
    try:
        return str(json.loads(run_paths(repo, run_id)[1].read_text())["status"])
    except (FileNotFoundError, json.JSONDecodeError):
        return "running"


def wait_until(predicate: t.Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def mayor_pid(repo: pathlib.Path, run_id: str) -> int | None:
    for event in reversed(events(repo, run_id)):
        if event.kind == "mayor_started":
            return int(event.data["pid"])
    return None


def kill_mayor(repo: pathlib.Path, run_id: str) -> bool:
    """SIGKILL the live mayor (if any) and wait until it is gone; True if one was killed."""
    pid = mayor_pid(repo, run_id)
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    wait_until(lambda: not _alive(pid), 10, f"mayor {pid} to die")
    return True


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone while its /proc entry was read
        return False


def run_args(
    repo: pathlib.Path, plan: pathlib.Path, socket: str, run_id: str, *extra: str
) -> list[str]:
    """``swarm run`` arguments for a trial: private socket, worktrees beside the repo."""
    return [
        "run", str(plan), "--repo", str(repo), "--run-id", run_id, "--tmux-socket", socket,
        "--worktree-root", str(repo.parent / "wt"), *extra,
    ]  # fmt: skip


def start(repo: pathlib.Path, plan: pathlib.Path, socket: str, run_id: str, *extra: str) -> None:
    """Start a run with its mayor in tmux and return at once (``--detach``)."""
    swarm(*run_args(repo, plan, socket, run_id, "--detach", *extra))


def resume(repo: pathlib.Path, run_id: str) -> float:
    """``swarm resume --detach``; returns when it was issued (monotonic)."""
    issued = time.monotonic()
    swarm("resume", run_id, "--repo", str(repo), "--detach")
    return issued


def git(repo: pathlib.Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


def check_invariants(repo: pathlib.Path, run_id: str) -> None:
    """What every trial must end with (raises AssertionError naming what broke)."""
    evs = events(repo, run_id)
    state = rebuild(evs)
    saved = json.loads(run_paths(repo, run_id)[1].read_text())
    assert saved == state.model_dump(mode="json"), "state.json differs from its rebuild"
    assert state.status == "done", f"run ended {state.status}: {state.stop_reason}"
    not_merged = [tid for tid, rec in state.tasks.items() if rec.state != "merged"]
    assert not not_merged, f"not merged: {not_merged}"
    subjects = git(repo, "log", "--merges", "--format=%s", state.integration_branch).splitlines()
    expected = sorted(f"swarm({tid}): task {tid}" for tid in state.tasks)
    assert sorted(subjects) == expected, f"merge commits: {sorted(subjects)}"
    unread = MailStore(SwarmPaths.for_repo(repo).mail).list("mayor", unread=True).messages
    assert not unread, f"{len(unread)} unprocessed messages"
    staged = SwarmPaths.for_repo(repo).run(run_id).staged_dir
    assert not (staged.is_dir() and any(staged.iterdir())), "a staged worktree was never taken"
    worktrees = git(repo, "worktree", "list", "--porcelain")
    assert "\ndetached" not in worktrees, f"a staged worktree was left:\n{worktrees}"
    offered: dict[str, int] = {}
    for event in evs:
        if event.kind == "task_offered" and event.task_id:
            offered[event.task_id] = offered.get(event.task_id, 0) + 1
    live: dict[str, int] = {}
    for event in evs:  # a task is dispatched again only once its previous worker is gone
        tid = event.task_id
        if tid is None:
            continue
        if event.kind == "task_dispatched":
            assert event.data.get("resumed") or live.get(tid, 0) == 0, f"two workers for {tid}"
            live[tid] = 1
        elif event.kind in ("task_offered", "task_crashed", "task_merged", "task_failed"):
            live[tid] = 0


def run_trial(
    repo: pathlib.Path,
    plan: pathlib.Path,
    socket: str,
    run_id: str,
    rng: random.Random,
    *,
    kills: int,
    kill_server: bool = False,
    extra: tuple[str, ...] = (),
) -> list[float]:
    """Start a run, SIGKILL its mayor ``kills`` times at random moments (or kill the whole tmux
    server once) and resume it each time; wait for the end and check the invariants. Returns
    the resume -> next dispatch delays seen."""
    start(repo, plan, socket, run_id, *extra)
    delays: list[float] = []
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 2.0))
        if status(repo, run_id) != "running":
            break
        if kill_server:  # with a worker at work (a loaded machine may not have one yet)
            wait_until(lambda: _running(repo, run_id), 30, "a running task")
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
            wait_until(lambda: not _alive(mayor_pid(repo, run_id) or 0), 10, "mayor to die")
        elif not kill_mayor(repo, run_id):
            continue
        seen = len(events(repo, run_id))
        issued = resume(repo, run_id)
        delays.extend(_next_dispatch(repo, run_id, seen, issued))
    try:
        wait_until(lambda: status(repo, run_id) != "running", 180, f"run {run_id} to end")
    except AssertionError:
        state = rebuild(events(repo, run_id))
        stuck = {tid: rec.state for tid, rec in state.tasks.items() if rec.state != "merged"}
        raise AssertionError(f"run {run_id} did not end; unmerged tasks: {stuck}") from None
    check_invariants(repo, run_id)
    return delays


def _running(repo: pathlib.Path, run_id: str) -> bool:
    state = rebuild(events(repo, run_id))
    return any(rec.state == "running" for rec in state.tasks.values())


def _next_dispatch(repo: pathlib.Path, run_id: str, seen: int, issued: float) -> list[float]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = events(repo, run_id)[seen:]
        if any(e.kind == "task_dispatched" for e in new):
            return [time.monotonic() - issued]
        if status(repo, run_id) != "running":
            return []
        time.sleep(0.01)
    return []
