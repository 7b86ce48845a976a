"""runner.control: stop, unpause, attach and logs as library calls, on runs made by hand."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from agentmail.fs import exclusive_lock
from agentmail.store import MailStore
from protocol.messages import MessageType, TerminateFields
from runner import control
from runner.errors import RunFailed, UsageError
from runner.paths import SwarmPaths
from runner.state import RunLog

RUN: t.Final = "r1"


def make_run(repo: pathlib.Path, *, mode: str = "local", **created: t.Any) -> RunLog:
    run = SwarmPaths.for_repo(repo).run(RUN)
    run.dir.mkdir(parents=True)
    log = RunLog(run.events, run.state)
    log.record(
        "run_created",
        run_id=RUN,
        tasks=["A", "B"],
        mode=mode,
        tmux_socket="sock" if mode == "distributed" else None,
        **created,
    )
    log.record("task_dispatched", "A", attempt=1, session=f"swarm-{RUN}-A")
    return log


def test_stop_without_a_mayor_records_the_stop(tmp_path: pathlib.Path) -> None:
    make_run(tmp_path)
    assert control.stop(tmp_path, RUN) == ("stopped", "stopped")
    run = SwarmPaths.for_repo(tmp_path).run(RUN)
    state = RunLog.open(run.events, run.state).state
    assert (state.status, state.stop_reason) == ("stopped", control.STOP_REASON)
    assert control.stop(tmp_path, RUN) == ("ended", "stopped")  # once is enough


def test_stop_with_a_live_mayor_asks_it_by_mail(tmp_path: pathlib.Path) -> None:
    make_run(tmp_path)
    store = MailStore(SwarmPaths.for_repo(tmp_path).mail)
    for agent in ("mayor", "human"):
        store.register(agent)
    with exclusive_lock(SwarmPaths.for_repo(tmp_path).run(RUN).lock) as held:
        assert held  # this process plays the mayor
        assert control.stop(tmp_path, RUN, kill=True) == ("asked", "running")
    (stored,) = store.list("mayor").messages
    assert stored.envelope.type is MessageType.TERMINATE
    assert isinstance(stored.envelope.fields, TerminateFields) and stored.envelope.fields.kill
    run = SwarmPaths.for_repo(tmp_path).run(RUN)
    assert RunLog.open(run.events, run.state).state.status == "running"  # the mayor records it


def test_unpause_refuses_a_run_that_is_not_paused(tmp_path: pathlib.Path) -> None:
    make_run(tmp_path)
    with pytest.raises(RunFailed, match="is not paused"):
        control.unpause(tmp_path, RUN)


class AttachCase(t.NamedTuple):
    test_id: str
    task: str | None
    rw: bool
    argv: list[str]


ATTACH_CASES = [
    AttachCase(
        "mayor-read-only",
        None,
        False,
        ["tmux", "-L", "sock", "attach-session", "-r", "-t", f"=swarm-{RUN}-mayor"],
    ),
    AttachCase(
        "worker-read-write",
        "A",
        True,
        ["tmux", "-L", "sock", "attach-session", "-t", "=swarm-r1-A"],
    ),
]


@pytest.mark.parametrize("case", ATTACH_CASES, ids=[c.test_id for c in ATTACH_CASES])
def test_attach_argv(tmp_path: pathlib.Path, case: AttachCase) -> None:
    state = make_run(tmp_path, mode="distributed").state
    assert control.attach_argv(state, case.task, rw=case.rw) == case.argv


def test_attach_needs_a_session(tmp_path: pathlib.Path) -> None:
    state = make_run(tmp_path, mode="distributed").state
    with pytest.raises(UsageError, match="'B' has no session"):
        control.attach_argv(state, "B")
    assert [s.name for s in control.sessions(state)] == ["mayor", "A"]


def test_a_local_run_has_no_sessions(tmp_path: pathlib.Path) -> None:
    state = make_run(tmp_path).state
    with pytest.raises(RunFailed, match="local mode"):
        control.attach_argv(state)
    with pytest.raises(RunFailed, match="local mode"):
        control.sessions(state)


def test_logs(tmp_path: pathlib.Path) -> None:
    make_run(tmp_path)
    with pytest.raises(UsageError, match="no output for task 'A'"):
        control.pane_log(tmp_path, RUN, "A")
    path = SwarmPaths.for_repo(tmp_path).run(RUN).pane_log("A")
    path.parent.mkdir(parents=True)
    path.write_text("one\ntwo\nthree\n")
    assert control.pane_log(tmp_path, RUN, "A") == path
    assert list(control.read_log(path, 2)) == ["two\n", "three\n"]
    assert list(control.read_log(path, 0)) == []
