"""What a person does to a run from outside it: stop it, resume its dispatch, look into its
sessions (``swarm stop``, ``unpause``, ``attach``, ``logs``).

The functions here decide and act; they print nothing. The CLI (``runner.cli.stop``,
``runner.cli.sessions``) turns their results into lines and exit codes.
"""

from __future__ import annotations

import os
import pathlib
import time
import typing as t

from agentmail.fs import exclusive_lock
from protocol.messages import Envelope, GuidanceFields, MessageType, TerminateFields
from protocol.state import RunState
from runner import launch
from runner.errors import RunFailed, UsageError
from runner.paths import SwarmPaths
from runner.state import RunLog

StopOutcome = t.Literal["stopped", "asked", "ended"]
"""``stopped``: no mayor drove the run, the stop was recorded here; ``asked``: the live mayor
was mailed TERMINATE and stops the run itself; ``ended``: the run had already ended."""
STOP_REASON: t.Final = "stopped by swarm stop"


class Stop(t.NamedTuple):
    outcome: StopOutcome
    status: str
    """The run's status when ``outcome`` is ``ended`` (else ``running``)."""


def stop(repo: pathlib.Path, run_id: str, *, kill: bool = False) -> Stop:
    """Stop run ``run_id``: no new workers start; with ``kill`` running workers are killed.

    When a mayor drives the run (it holds the run's lock) it is asked by mail, so the stop is
    recorded by the one process that owns the log; otherwise the stop is recorded here, with
    the same actions the mayor would take (:func:`runner.decide.stop_actions`)."""
    from runner.actions import Kill, Record
    from runner.decide import stop_actions

    paths = SwarmPaths.for_repo(repo).run(run_id)
    with exclusive_lock(paths.lock) as no_mayor:
        if no_mayor:  # nobody drives the run: stop it ourselves
            log = RunLog.open(paths.events, paths.state)
            if log.state.status != "running":
                return Stop("ended", log.state.status)
            backend = launch.make_backend(log.state, paths.dir / "notify")
            try:
                with log.batch():
                    for action in stop_actions(log.state, reason=STOP_REASON, kill=kill):
                        if isinstance(action, Record):
                            log.record(action.ev.kind, action.ev.task_id, **action.ev.data)
                        elif isinstance(action, Kill):
                            backend.kill(action.session)
            finally:
                backend.close()
            return Stop("stopped", "stopped")
    mail_mayor(repo, run_id, MessageType.TERMINATE, TerminateFields(text=STOP_REASON, kill=kill))
    return Stop("asked", "running")


def unpause(repo: pathlib.Path, run_id: str) -> None:
    """Ask the mayor to resume dispatch after a critical scope escape paused it."""
    if not launch.read_state(repo, run_id).paused:
        raise RunFailed(f"run {run_id} is not paused")
    signal = GuidanceFields(text="resume dispatch", signal="resume-dispatch")
    mail_mayor(repo, run_id, MessageType.GUIDANCE, signal)


RetryOutcome = t.Literal["asked", "reopened"]
"""``asked``: the live mayor was mailed and retries the tasks itself; ``reopened``: no mayor
drove the run, the retries were recorded here (and the run reopened): start a mayor."""


class Retry(t.NamedTuple):
    outcome: RetryOutcome
    tasks: tuple[str, ...]
    """The tasks that run again: those named, then the skipped tasks that wait on them."""


def retry(repo: pathlib.Path, run_id: str, task_ids: t.Sequence[str]) -> Retry:
    """Run tasks that ended without merging again, with a fresh attempt budget; their skipped
    dependents come back too. A live mayor is asked by mail; otherwise the retries are recorded
    here, and an ended run is reopened for ``swarm resume``. Raises UsageError (nothing
    recorded) for a task that is unknown or not retryable."""
    from protocol.plangraph import build_graph
    from runner.decide import retry_set

    paths = SwarmPaths.for_repo(repo).run(run_id)
    with exclusive_lock(paths.lock) as no_mayor:
        log = RunLog.open(paths.events, paths.state)
        state = log.state
        dependents = build_graph(launch.verified_plan(repo, state).tasks).dependents
        states = {tid: record.state for tid, record in state.tasks.items()}
        try:
            again = retry_set(states, state.task_order, dependents, task_ids)
        except ValueError as exc:
            raise UsageError(f"swarm retry: {exc} (see `swarm status {run_id}`)") from None
        if no_mayor:
            with log.batch():
                for tid in again:
                    log.record("task_retried", tid)
                if state.status != "running":
                    log.record("run_resumed", pid=os.getpid(), reason="swarm retry")
            return Retry("reopened", again)
    fields = GuidanceFields(text=f"retry {', '.join(task_ids)}", signal="retry", tasks=again)
    mail_mayor(repo, run_id, MessageType.GUIDANCE, fields)
    return Retry("asked", again)


def mail_mayor(
    repo: pathlib.Path, run_id: str, mtype: MessageType, fields: GuidanceFields | TerminateFields
) -> Envelope:
    """Mail the run's mayor as ``human``, with typed control fields."""
    from agentmail.store import MailStore

    return MailStore(SwarmPaths.for_repo(repo).mail).send(
        Envelope.model_validate(
            {
                "from": "human",
                "to": ["mayor"],
                "type": mtype,
                "run_id": run_id,
                "subject": mtype.value,
                "fields": fields,
            }
        )
    )


class Session(t.NamedTuple):
    name: str
    """``mayor`` or the task id."""
    state: str
    session: str


def sessions(state: RunState) -> list[Session]:
    """The run's tmux sessions: the mayor's, then each task's that has one, in plan order
    (RunFailed for a run in local mode: it has none)."""
    _socket(state)
    found = [Session("mayor", state.status, launch.mayor_session(state))]
    for record in (state.tasks[tid] for tid in state.task_order):
        if record.session:
            found.append(Session(record.id, record.state, record.session))
    return found


def _socket(state: RunState) -> str:
    if state.tmux_socket is None:
        raise RunFailed(
            f"run {state.run_id} runs in local mode: there are no tmux sessions; "
            f"use `swarm logs TASK -f`"
        )
    return state.tmux_socket


def attach_argv(state: RunState, task: str | None = None, *, rw: bool = False) -> list[str]:
    """The ``tmux attach-session`` argv for the session of ``task`` (the mayor's without one),
    read-only unless ``rw``."""
    socket = _socket(state)
    if task is None:
        session = launch.mayor_session(state)
    else:
        record = state.tasks.get(task)
        if record is None or not record.session:
            raise UsageError(
                f"task {task!r} has no session in run {state.run_id}; "
                "`swarm attach --list` lists them"
            )
        session = record.session
        host = next((h for h in state.hosts if h.name == record.host and h.remote), None)
        if host is not None:  # its pane is in that host's private tmux server
            from runner.hosts.layout import Layout
            from runner.hosts.ssh import Ssh

            assert host.root is not None
            remote = ["tmux", "-L", Layout.of(host.root).socket, "attach-session"]
            remote += [*([] if rw else ["-r"]), "-t", f"={session}"]
            return Ssh.of(host).argv(*remote, tty=True)
    argv = ["tmux", "-L", socket, "attach-session", "-t", f"={session}"]
    if not rw:
        argv.insert(4, "-r")
    return argv


def pane_log(repo: pathlib.Path, run_id: str, task: str) -> pathlib.Path:
    """The pane output of ``task``; UsageError when it has none yet."""
    path = SwarmPaths.for_repo(repo).run(run_id).pane_log(task)
    if not path.exists():
        raise UsageError(f"no output for task {task!r} in run {run_id} ({path})")
    return path


def read_log(
    path: pathlib.Path, lines: int, *, follow: bool = False, poll: float = 0.2
) -> t.Iterator[str]:
    """The last ``lines`` lines of ``path``, then with ``follow`` what is appended, chunk by
    chunk as it comes (forever: the caller stops by interrupt). Each piece keeps its newline.
    With ``lines=0`` nothing is read first, so ``follow`` starts from the beginning."""
    with path.open("rb") as fh:
        if lines:
            for line in fh.read().decode(errors="replace").splitlines()[-lines:]:
                yield line + "\n"
        while follow:
            chunk = fh.read()
            if chunk:
                yield chunk.decode(errors="replace")
            else:
                time.sleep(poll)
