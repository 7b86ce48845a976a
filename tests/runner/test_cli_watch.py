"""``swarm watch``: a real tmux pane running the command on a run directory built by hand with
``RunLog`` events; the pane's capture follows the events and the command exits with the run."""

from __future__ import annotations

import json
import pathlib
import shlex
import sys
import threading
import time
import typing as t

import libtmux
from click.testing import CliRunner

from runner.cli.watch import command as watch_command
from runner.paths import SwarmPaths
from runner.state import RunLog

WAIT: t.Final = 15.0
RUN: t.Final = "r1"


def make_run(
    repo: pathlib.Path, run_id: str = RUN, tasks: t.Sequence[str] = ("T01", "T02")
) -> RunLog:
    paths = SwarmPaths.for_repo(repo).run(run_id)
    paths.dir.mkdir(parents=True)
    log = RunLog(paths.events, paths.state)
    log.record("run_created", run_id=run_id, tasks=list(tasks), plan_name="demo", max_workers=2)
    return log


def watch_argv() -> list[str]:
    from runner.cli.main import cli

    if "watch" in cli.commands:
        return [sys.executable, "-m", "runner", "watch"]
    # until runner/cli/main.py registers the command: the same click command, run directly
    return [sys.executable, "-c", "from runner.cli.watch import command; command()"]


def wait_for(pane: libtmux.Pane, predicate: t.Callable[[list[str]], bool]) -> list[str]:
    deadline = time.monotonic() + WAIT
    while True:
        lines = [str(line) for line in pane.capture_pane()]
        if predicate(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError("pane never matched; it shows:\n" + "\n".join(lines))
        time.sleep(0.05)


def row(lines: list[str], task: str) -> str:
    return next((line for line in lines if line.startswith(f"{task} ")), "")


def start_watch(server: libtmux.Server, repo: pathlib.Path, *extra: str) -> libtmux.Pane:
    """``swarm watch`` in a real tmux pane (a terminal: interactive unless ``--plain``)."""
    argv = [*watch_argv(), "--repo", str(repo), RUN, *extra]
    # `trap : INT` keeps the shell alive through Ctrl-C to print the exit status (a handler,
    # unlike an ignored signal, is not inherited by python)
    script = f"trap : INT; {shlex.join(argv)}; echo EXIT=$?; sleep 600"
    session = server.new_session(
        session_name="watch",
        x=80,
        y=30,
        window_command=f"sh -c {shlex.quote(script)}",
        environment={"NO_COLOR": "1"},
    )
    pane = session.active_window.active_pane
    assert pane is not None
    return pane


def test_watch_follows_events_in_a_tmux_pane_and_exits_with_the_run(
    server: libtmux.Server, git_repo: pathlib.Path
) -> None:
    log = make_run(git_repo)
    log.record("task_dispatched", "T01", attempt=1, session=f"swarm-{RUN}-T01")
    pane = start_watch(server, git_repo, "--plain")

    lines = wait_for(pane, lambda ls: "running" in row(ls, "T01"))
    assert any("merged 0/2" in line for line in lines)
    assert "pending" in row(lines, "T02")
    assert max(len(line) for line in lines) <= 80

    log.record("task_offered", "T01", text="OFFERING_READY: parser done")
    log.record("task_merged", "T01", merge_sha="abc")
    log.record("help_requested", "T02", text="which config file wins?")
    lines = wait_for(pane, lambda ls: "merged" in row(ls, "T01") and any("1/2" in x for x in ls))
    lines = wait_for(pane, lambda ls: any("T02: which config file wins?" in x for x in ls))

    log.record("task_dispatched", "T02", attempt=1, session=f"swarm-{RUN}-T02")
    log.record("task_failed", "T02", reason="tests failed")
    log.record("run_finished", status="failed", reason="a task failed")
    lines = wait_for(pane, lambda ls: any("EXIT=" in x for x in ls))
    assert any("EXIT=1" in line for line in lines), lines
    assert any(f"run {RUN}: failed" in line for line in lines), lines
    assert "tests failed" in row(lines, "T02")


def test_ctrl_c_stops_watching_with_exit_130(
    server: libtmux.Server, git_repo: pathlib.Path
) -> None:
    make_run(git_repo)
    pane = start_watch(server, git_repo, "--plain")
    wait_for(pane, lambda ls: "pending" in row(ls, "T01"))
    pane.cmd("send-keys", "C-c")
    lines = wait_for(pane, lambda ls: any("EXIT=" in x for x in ls))
    assert any("EXIT=130" in line for line in lines), lines


def test_an_ended_run_is_printed_once(git_repo: pathlib.Path) -> None:
    log = make_run(git_repo)
    for tid, sha in (("T01", "abc"), ("T02", "def")):
        log.record("task_dispatched", tid, attempt=1, session=f"swarm-{RUN}-{tid}")
        log.record("task_offered", tid)
        log.record("task_merged", tid, merge_sha=sha)
    log.record("run_finished", status="done", reason="every task merged")
    result = CliRunner().invoke(watch_command, ["--repo", str(git_repo)])
    assert result.exit_code == 0, result.output
    assert f"run {RUN}: done" in result.output
    assert "merged 2/2" in result.output


def test_json_waits_for_the_end_and_prints_the_status_document(git_repo: pathlib.Path) -> None:
    log = make_run(git_repo)

    def finish() -> None:
        log.record("task_dispatched", "T01", attempt=1, session="s")
        log.record("task_failed", "T01", reason="boom")
        log.record("run_finished", status="stopped", reason="timeout")

    before = set(threading.enumerate())
    writer = threading.Thread(target=finish)
    writer.start()
    try:
        result = CliRunner().invoke(
            watch_command, ["--repo", str(git_repo), "--json", "--refresh", "0.2", RUN]
        )
    finally:
        writer.join()
    assert set(threading.enumerate()) <= before  # the observer was stopped and joined
    assert result.exit_code == 4, result.output  # a timed-out run: the documented exit code
    doc = json.loads(result.output)
    assert (doc["kind"], doc["status"], doc["reason"]) == ("status", "stopped", "timeout")
    assert [task["state"] for task in doc["tasks"]] == ["failed", "pending"]


def test_unknown_run_is_a_usage_error(git_repo: pathlib.Path) -> None:
    make_run(git_repo)
    result = CliRunner().invoke(watch_command, ["--repo", str(git_repo), "nope"])
    assert result.exit_code == 2, result.output
    assert "no run 'nope'" in result.output


def test_no_runs_is_a_usage_error(git_repo: pathlib.Path) -> None:
    result = CliRunner().invoke(watch_command, ["--repo", str(git_repo)])
    assert result.exit_code == 2, result.output
    assert "swarm run PLAN" in result.output
