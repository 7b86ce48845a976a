"""The interactive ``swarm watch``, driven in a real tmux pane (send-keys, capture-pane) over a
real run: a mayor and a scripted worker in the test's private tmux server, real worktrees.

The worker asks for help and then hangs, as a stuck agent does; the person at the dashboard
looks at its pane and branch, answers, nudges, attaches read-only (and their keys do not reach
the worker), and restarts it, after which the next attempt merges and the run ends."""

from __future__ import annotations

import pathlib
import time
import typing as t

import libtmux

from agentmail.store import MailStore
from protocol.messages import MessageType
from runner.paths import SwarmPaths
from tests.runner.runs import events, swarm, swarm_run, task, write, write_plan
from tests.runner.test_cli_watch import start_watch

WAIT: t.Final = 30.0


def _screen(pane: libtmux.Pane) -> list[str]:
    return [str(line) for line in pane.capture_pane()]


def wait_for(
    pane: libtmux.Pane, predicate: t.Callable[[list[str]], bool], what: str = ""
) -> list[str]:
    deadline = time.monotonic() + WAIT
    while True:
        lines = _screen(pane)
        if predicate(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"pane never showed {what}; it shows:\n" + "\n".join(lines))
        time.sleep(0.1)


def shows(text: str) -> t.Callable[[list[str]], bool]:
    return lambda lines: any(text in line for line in lines)


def task_row(lines: list[str], tid: str) -> str:
    return next((line for line in lines if line.strip().startswith(f"{tid} ")), "")


def _plan(where: pathlib.Path) -> pathlib.Path:
    stuck = [
        {"progress": "reading the config loaders"},
        write("a.txt", "draft\n"),
        {"commit": "draft"},
        {"help": "which config file wins?"},
        {"hang": True},
    ]
    retry = [{**write("a.txt", "final\n"), "attempt": 2}, {"offer": "done", "attempt": 2}]
    return write_plan(
        where,
        [
            task("T1", ["a.txt"], [*[dict(s, attempt=1) for s in stuck], *retry]),
            task("T2", ["b.txt"], [write("b.txt", "b\n")], blocked_by=["T1"]),
        ],
    )


def _keys(pane: libtmux.Pane, *keys: str, literal: bool = False) -> None:
    for key in keys:
        pane.cmd("send-keys", *(["-l"] if literal else []), key)


def _worker_mail(repo: pathlib.Path) -> list[tuple[MessageType, str]]:
    store = MailStore(SwarmPaths.for_repo(repo).mail)
    found = store.list("T1", sender="human").messages
    return [(m.envelope.type, str(getattr(m.envelope.fields, "text", ""))) for m in found]


def test_drive_a_stuck_worker_from_the_dashboard(
    server: libtmux.Server, git_repo: pathlib.Path
) -> None:
    result = swarm_run(git_repo, _plan(git_repo.parent), server, "--detach")
    assert result.exit_code == 0, result.output
    pane = start_watch(server, git_repo, "--refresh", "0.3")

    # the stuck worker: selected first, its state, session, branch and live pane
    lines = wait_for(pane, shows("inbox: 1 help request"), "the help request")
    assert "running" in task_row(lines, "T1") and "pending" in task_row(lines, "T2")
    assert max(len(line) for line in lines) <= 80
    lines = wait_for(pane, shows("1 ahead, 0 behind swarm/r1/integration"), "the branch")
    assert any("1 file changed" in line for line in lines)
    assert any("session swarm-r1-T1" in line for line in lines)
    lines = wait_for(pane, shows("── pane (live) ──"), "the pane preview")
    wait_for(pane, shows("[scripted T1]"), "the worker's own output in the preview")

    # the inbox, and back
    _keys(pane, "i")
    wait_for(pane, shows("help  T1: HELP_REQUEST: which config file wins?"), "the inbox")
    _keys(pane, "i")
    wait_for(pane, shows("── pane (live) ──"), "the detail again")

    # answer the help request: mail in its thread, and the answer typed into its pane
    _keys(pane, "a")
    wait_for(pane, shows("answer T1's help request"), "the answer prompt")
    _keys(pane, "use config.toml", literal=True)
    _keys(pane, "Enter")
    wait_for(pane, shows("T1: answer sent"), "the answer confirmed")
    worker = server.sessions.get(session_name="swarm-r1-T1")
    assert worker is not None
    worker_pane = worker.active_window.active_pane
    assert worker_pane is not None
    assert any("use config.toml" in line for line in worker_pane.capture_pane())
    # a nudge: the default text, sent as it is
    _keys(pane, "n")
    wait_for(pane, shows("nudge T1"), "the nudge prompt")
    _keys(pane, "Enter")
    wait_for(pane, shows("T1: nudge sent"), "the nudge confirmed")
    mail = _worker_mail(git_repo)
    assert (MessageType.HELP_RESPONSE, "use config.toml") in mail
    assert any(kind is MessageType.NUDGE for kind, _ in mail)

    # Enter attaches read-only: the worker's session, with its status bar; keys do not reach it
    _keys(pane, "Enter")
    lines = wait_for(pane, shows("[swarm r1 T1 running try 1]"), "the worker's status bar")
    _keys(pane, "zzqq", literal=True)
    _keys(pane, "Enter")
    time.sleep(0.5)  # give a leak the time to show (the check below is for an absence)
    assert not any("zzqq" in line for line in worker_pane.capture_pane())
    server.cmd("detach-client", "-s", "swarm-r1-T1")
    wait_for(pane, shows("inbox: 1 help request"), "the dashboard after detaching")

    # restart the stuck worker: the mayor records the crash and its next attempt merges
    _keys(pane, "r")
    wait_for(pane, shows("retry T1 (a running worker restarts"), "the restart prompt")
    _keys(pane, "y", literal=True)
    _keys(pane, "Enter")
    lines = wait_for(pane, lambda ls: "merged" in task_row(ls, "T2"), "the run's end")
    evs = [(e.kind, e.task_id, e.data.get("reason", "")) for e in events(git_repo)]
    assert task_row(lines, "T1").split()[1:3] == ["merged", "2"], evs
    lines = wait_for(pane, shows("the run ended (done): q quits"), "the end of the run")
    _keys(pane, "q")
    lines = wait_for(pane, shows("EXIT="), "the exit")
    assert any("EXIT=0" in line for line in lines), lines
    assert swarm("status", "--repo", str(git_repo)).exit_code == 0


def test_a_dead_mayor_and_a_refused_task_say_so(
    server: libtmux.Server, git_repo: pathlib.Path
) -> None:
    """After the mayor is killed, the dashboard says so (not `running`) with the fix; a task
    sent back by its validation shows why, with the failing check's last line."""
    check = "echo 'AssertionError: expected 3, got 4'; exit 1"
    plan = write_plan(
        git_repo.parent,
        [
            task(
                "T1",
                ["a.txt"],
                [write("a.txt", "3\n"), {"offer": "done"}],
                validation={"tests": check},
            )
        ],
        budgets={"max_attempts": 5},
    )
    assert swarm_run(git_repo, plan, server, "--detach").exit_code == 0
    pane = start_watch(server, git_repo, "--refresh", "0.3")
    wait_for(pane, shows("AssertionError: expected 3, got 4"), "why T1 was refused")
    lines = wait_for(pane, shows("swarm logs T1 --validation"), "the command for the rest")
    assert max(len(line) for line in lines) <= 80
    server.cmd("kill-session", "-t", "=swarm-r1-mayor")
    lines = wait_for(pane, shows("mayor not running (since"), "the dead mayor")
    assert any("swarm resume r1" in line for line in lines)
    _keys(pane, "q")
    wait_for(pane, shows("EXIT=0"), "the exit")


def test_the_retry_key_runs_a_failed_task_of_an_ended_run_again(
    server: libtmux.Server, git_repo: pathlib.Path
) -> None:
    """The run failed (its one task's check failed, one attempt allowed); the dashboard stays.
    `r` on the failed task reopens the run and starts a mayor; the task's next attempt merges."""
    go = git_repo.parent / "go"
    plan = write_plan(
        git_repo.parent,
        [task("T1", ["a.txt"], [write("a.txt", "1\n")], validation={"tests": f"test -e {go}"})],
        budgets={"max_attempts": 1},
    )
    assert swarm_run(git_repo, plan, server, "--detach").exit_code == 0
    pane = start_watch(server, git_repo, "--refresh", "0.3")
    wait_for(pane, shows("the run ended (failed)"), "the failed run")
    go.touch()
    _keys(pane, "r")
    wait_for(pane, shows("retry T1 (a running worker restarts"), "the retry prompt")
    _keys(pane, "y", literal=True)
    _keys(pane, "Enter")
    lines = wait_for(pane, lambda ls: "merged" in task_row(ls, "T1"), "the retried task merged")
    assert task_row(lines, "T1").split()[1:3] == ["merged", "2"]
    wait_for(pane, shows("the run ended (done)"), "the end of the run")
    _keys(pane, "q")
    wait_for(pane, shows("EXIT="), "the exit")


def test_keys_in_a_headless_app_and_no_spin(git_repo: pathlib.Path) -> None:
    """The same app on Textual's headless driver, over a run built from events: the inbox
    toggles, j/k move the selection, q exits. Before the watcher ignored its own reads (each
    open and close of events.jsonl woke it to read again), this spun and never got the keys."""
    import asyncio

    from runner.cli.watch_app import WatchApp
    from tests.runner.test_cli_watch import make_run

    log = make_run(git_repo)
    log.record("task_dispatched", "T01", attempt=1, session="swarm-r1-T01")
    log.record("help_requested", "T01", text="which config file wins?")

    async def drive() -> tuple[bool, str | None, int | None]:
        app = WatchApp(git_repo, "r1", None, refresh=0.2)
        async with app.run_test(size=(80, 30)) as pilot:
            await pilot.pause(0.5)
            await pilot.press("i")
            await pilot.pause(0.3)
            shown = app.show_inbox
            await pilot.press("i", "j")
            await pilot.pause(0.3)
            selected = app.selected
            await pilot.press("q")
        return shown, selected, app.return_code

    shown, selected, code = asyncio.run(drive())
    assert shown and selected == "T02" and code == 0
