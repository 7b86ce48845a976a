"""Notifications: a hook that records what it got in a real run, the tmux client that sees the
message and the bell, a desktop notifier on PATH, and hooks that fail, hang or get hostile text."""

from __future__ import annotations

import functools
import os
import pathlib
import shutil
import signal
import subprocess
import typing as t

import pytest
from click.testing import CliRunner
from libtmux.server import Server

from protocol.state import Event, RunState, TaskRecord
from runner import notify
from runner.cli.main import cli
from runner.paths import SwarmPaths
from tests.runner.runs import swarm, swarm_run, task, wait_for, write, write_plan

HOSTILE: t.Final = 'it\'s $(touch pwned) `touch pwned2`; "quoted" & done'


def _recorder(tmp_path: pathlib.Path) -> tuple[str, pathlib.Path]:
    """A hook that writes each argument it got on a line of its own, then a separator."""
    log = tmp_path / "hook.log"
    script = tmp_path / "record-hook"
    script.write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done >> {log}\necho --- >> {log}\n'
    )
    script.chmod(0o755)
    return f"{script} {{event}} {{task}} {{status}} {{message}}", log


def _calls(log: pathlib.Path) -> list[list[str]]:
    text = log.read_text() if log.exists() else ""
    return [block.strip("\n").split("\n") for block in text.split("---\n") if block.strip()]


def _attached_client(
    server: Server, tmp_path: pathlib.Path
) -> tuple[subprocess.Popen[bytes], pathlib.Path]:
    """A real tmux client attached to the run's private server (through ``script``'s pty)."""
    if shutil.which("script") is None:
        pytest.skip("script (util-linux) is not installed: no pty for a tmux client")
    server.new_session(session_name="watcher", detach=True)
    out = tmp_path / "client.out"
    command = f"tmux -L {server.socket_name} attach -t watcher"
    with out.open("wb") as fh:
        client = subprocess.Popen(
            ["script", "-qfc", command, "/dev/null"],
            stdin=subprocess.PIPE,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for(lambda: bool(server.cmd("list-clients").stdout))
    return client, out


def test_a_real_run_calls_the_hook_and_tells_the_tmux_client(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    hook, log = _recorder(tmp_path)
    (git_repo / ".swarm.toml").write_text(f"notify = {hook!r}\n")
    tasks = [
        task("asks", ["a.txt"], [{"help": HOSTILE}, write("a.txt", "a\n")]),
        task("doomed", ["d.txt"], [{"crash": 5}]),
    ]
    plan = write_plan(git_repo.parent, tasks, budgets={"max_attempts": 2})
    client, out = _attached_client(server, tmp_path)
    try:
        result = swarm_run(git_repo, plan, server)
        assert result.exit_code == 1, result.output
        wait_for(lambda: any(call[0] == "finished" for call in _calls(log)))
        wait_for(lambda: b"\a" in out.read_bytes() and b"swarm: run r1 failed" in out.read_bytes())
    finally:
        os.killpg(client.pid, signal.SIGTERM)
        client.wait()
    calls = _calls(log)
    events = [call[0] for call in calls]
    assert sorted(events) == ["failed", "finished", "help"]  # each once, nothing else
    by_event = {call[0]: call for call in calls}
    assert by_event["help"][1] == "asks"
    assert HOSTILE in "\n".join(by_event["help"][3:])  # one argument, exactly as written
    assert by_event["failed"][1:3] == ["doomed", "failed"]
    assert by_event["finished"][1:3] == ["", "failed"]
    assert not (git_repo / "pwned").exists() and not (tmp_path / "pwned").exists()
    assert not list(git_repo.parent.rglob("pwned*"))
    notes = (SwarmPaths.for_repo(git_repo).run("r1").dir / notify.LOG_NAME).read_text()
    assert "help task=asks" in notes and "hook ok" in notes


def test_a_failing_hook_is_logged_and_the_run_goes_on(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    plan = write_plan(git_repo.parent, tasks, notify="echo broken hook >&2; exit 3")
    result = swarm_run(git_repo, plan, None)
    assert result.exit_code == 0, result.output
    notes = SwarmPaths.for_repo(git_repo).run("r1").dir / notify.LOG_NAME
    wait_for(lambda: "exited 3: broken hook" in notes.read_text())
    assert "finished task=- run r1 done" in notes.read_text()


def _note() -> notify.Note:
    return notify.Note("failed", "T1", "r1", "failed", HOSTILE)


def test_a_hanging_hook_is_killed_with_its_children(tmp_path: pathlib.Path) -> None:
    pids = tmp_path / "pids"
    hook = f"sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    log = tmp_path / notify.LOG_NAME
    notify.deliver(
        {
            "note": _note()._asdict(),
            "hook": hook,
            "tmux_socket": None,
            "log": str(log),
            "timeout": 1,
        }
    )
    assert "killed after 1s (its process group was killed)" in log.read_text()
    for pid in map(int, pids.read_text().split()):
        wait_for(functools.partial(_dead, pid))


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever inherited it to reap it."""
    try:
        status = pathlib.Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_the_mayor_never_waits_for_a_hook(tmp_path: pathlib.Path) -> None:
    """The hook blocks on a FIFO nobody writes until send() has returned."""
    fifo, done = tmp_path / "gate", tmp_path / "done"
    os.mkfifo(fifo)
    run = SwarmPaths(tmp_path / "home").run("r1")
    run.dir.mkdir(parents=True)
    notifier = notify.Notifier(
        repo=tmp_path, run=run, hook=f"cat {fifo} > {done}", tmux_socket=None
    )
    notifier.send(_note())  # returns while the hook waits on the FIFO
    with fifo.open("w") as fh:
        fh.write("released\n")
    wait_for(lambda: done.read_text() == "released\n")


def test_a_desktop_notification_only_where_there_is_a_desktop(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    got = tmp_path / "notify-send.args"
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {got}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    log = tmp_path / notify.LOG_NAME
    payload = {"note": _note()._asdict(), "hook": None, "tmux_socket": None, "log": str(log)}
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    notify.deliver(payload)
    assert not got.exists() and "no DISPLAY or WAYLAND_DISPLAY" in log.read_text()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    notify.deliver(payload)
    assert got.read_text().splitlines() == ["-u", "critical", "swarm: failed", HOSTILE]


def test_placeholders_are_shell_quoted(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "out"
    command = notify.hook_command(f"printf '%s\\n' {{message}} {{task}} > {out}", _note())
    subprocess.run(["/bin/sh", "-c", command], cwd=tmp_path, check=True)
    assert out.read_text().splitlines() == [HOSTILE, "T1"]
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


class BadTemplate(t.NamedTuple):
    test_id: str
    template: str
    message: str


BAD: t.Final = [
    BadTemplate("typo", "notify-me {evnt}", "unknown placeholder {evnt}"),
    BadTemplate("near", "notify-me {tsk}", "did you mean {task}?"),
    BadTemplate("unbalanced", "notify-me {event", "write {{ and }} for braces"),
    BadTemplate("attribute", "notify-me {event.__class__}", "unknown placeholder"),
    BadTemplate("empty", "  ", "an empty notify command"),
    BadTemplate("conversion", "notify-me {message!r}", "write {message} alone"),
    BadTemplate("format spec", "notify-me {task:>99}", "write {task} alone"),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.test_id)
def test_a_bad_template_in_the_config_is_a_usage_error(
    git_repo: pathlib.Path, case: BadTemplate
) -> None:
    (git_repo / ".swarm.toml").write_text(f"notify = {case.template!r}\n")
    plan = write_plan(git_repo.parent, [task("A", ["a.txt"], [write("a.txt", "a\n")])])
    result = swarm_run(git_repo, plan, None)
    assert result.exit_code == 2, result.output
    assert ".swarm.toml: notify:" in result.output and case.message in result.output
    assert not SwarmPaths.for_repo(git_repo).runs.exists()  # nothing created


@pytest.mark.parametrize("case", BAD[:2], ids=lambda c: c.test_id)
def test_a_bad_template_in_the_plan_is_a_validation_error(
    tmp_path: pathlib.Path, case: BadTemplate
) -> None:
    plan = write_plan(tmp_path, [task("A", ["a.txt"], [])], notify=case.template)
    result = CliRunner().invoke(cli, ["plan", "validate", str(plan)])
    assert result.exit_code == 2, result.output
    assert "notify" in result.output and case.message in result.output
    assert (
        swarm("plan", "validate", str(write_plan(tmp_path, [task("A", ["a"], [])]))).exit_code == 0
    )


def _event(kind: str, task_id: str | None, **data: t.Any) -> tuple[Event, RunState]:
    state = RunState(
        run_id="r1", status="failed", tasks={"T1": TaskRecord(id="T1", state="running")}
    )
    return Event(seq=2, run_id="r1", kind=kind, task_id=task_id, data=data), state


@pytest.mark.parametrize(
    ("kind", "task_id", "data", "event"),
    [
        ("help_requested", "T1", {"text": "which loader?"}, "help"),
        ("task_nudged", "T1", {"idle": 700.0}, None),  # a NUDGE to the worker, not to you
        (
            "task_nudged",
            "T1",
            {"idle": 1300.0, "stalled": True, "text": "stalled for 1300s"},
            "help",
        ),
        ("task_nudged", "T1", {"pane": "permission", "text": "a permission prompt"}, "help"),
        ("task_nudged", "T1", {"pane": "idle", "text": "idle at its prompt"}, None),
        ("task_failed", "T1", {"reason": "crashed (after 3 attempts)"}, "failed"),
        ("task_blocked", "T1", {"reason": "merge conflict"}, "failed"),
        ("task_crashed", "T1", {"reason": "exit 1"}, None),  # retried: not for good
        ("run_finished", None, {"status": "failed", "reason": "1 task(s) not merged"}, "finished"),
        ("task_merged", "T1", {}, None),
    ],
)
def test_what_calls_for_a_notification(
    kind: str, task_id: str | None, data: dict[str, t.Any], event: str | None
) -> None:
    note = notify.note_for(*_event(kind, task_id, **data))
    assert (note.event if note else None) == event


def test_a_long_message_is_cut() -> None:
    note = notify.note_for(*_event("help_requested", "T1", text="x" * 100_000))
    assert note is not None and len(note.message) == notify.MESSAGE_LIMIT
