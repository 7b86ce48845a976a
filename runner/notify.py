"""Tell the human when they are needed: a help request, a task failed for good, the run ended.

Three channels, all fire and forget: a desktop notification (``notify-send``, when it is on PATH
and ``DISPLAY`` or ``WAYLAND_DISPLAY`` is set), a bell and a ``display-message`` on every client
attached to the run's private tmux server, and the user's hook (``notify = "cmd {event} {task}"``
in the config or the plan), run by ``sh -c`` with each placeholder shell-quoted.

The mayor never waits for any of them: :class:`Notifier` (a listener on the run log, attached by
:func:`attach`) starts one detached ``python -m runner.notify`` per notification and returns.
That child delivers on every channel, kills a hook that runs longer than :data:`HOOK_TIMEOUT`,
and appends what it did and every failure to ``runs/<id>/notifications.log``; none of it is
fatal. The child of the run's end first writes ``runs/<id>/report.html``. The hook runs in the
repository.

This module is also that child, so it imports only the standard library at module level.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time
import typing as t
from datetime import UTC, datetime

if t.TYPE_CHECKING:
    from protocol.plan import Plan
    from protocol.state import Event, RunState
    from runner.paths import RunPaths
    from runner.state import RunLog

logger = logging.getLogger(__name__)

HOOK_TIMEOUT: t.Final = 30.0
"""Seconds a hook may run before it is killed (the failure is logged)."""
CHANNEL_TIMEOUT: t.Final = 10.0
LOG_NAME: t.Final = "notifications.log"
NoteEvent = t.Literal["help", "failed", "finished"]
BLOCKING_SCREENS: t.Final = frozenset({"permission", "dialog"})
"""Pane states (``runner.agents.panes``) the mayor reports to the human: an agent waiting."""


MESSAGE_LIMIT: t.Final = 2000
"""Characters of a message passed on (a help request can quote a whole pane)."""


class Note(t.NamedTuple):
    event: NoteEvent
    task: str
    """The task it is about ("" for the run's end)."""
    run: str
    status: str
    """The run's status when it ends, else the task's state."""
    message: str


def note_for(event: Event, state: RunState) -> Note | None:
    """See :func:`_note_for`; the message is cut at :data:`MESSAGE_LIMIT` characters."""
    note = _note_for(event, state)
    if note is None or len(note.message) <= MESSAGE_LIMIT:
        return note
    return note._replace(message=note.message[: MESSAGE_LIMIT - 1] + "\u2026")


def _note_for(event: Event, state: RunState) -> Note | None:
    """The notification an event calls for, or None: a worker's help request, a stall or an
    agent waiting at a permission prompt or dialog (``help``: what the mayor asks the human
    about), a task failed or blocked for good (``failed``), the run's end (``finished``)."""
    data, task = event.data, event.task_id or ""
    record = state.tasks.get(task)
    task_state = record.state if record else ""
    if event.kind == "help_requested":
        text = str(data.get("text", ""))
        return Note("help", task, state.run_id, task_state, f"{task} asks for help: {text}")
    if event.kind == "task_nudged" and data.get("stalled"):
        what = str(data.get("text", "stalled"))
        return Note("help", task, state.run_id, task_state, f"{task} is {what}")
    if event.kind == "task_nudged" and data.get("pane") in BLOCKING_SCREENS:
        what = str(data.get("text", data["pane"]))
        message = f"{task} waits at {what}: swarm attach {task} --rw"
        return Note("help", task, state.run_id, task_state, message)
    if event.kind in ("task_failed", "task_blocked"):
        why = str(data.get("reason", ""))
        return Note("failed", task, state.run_id, task_state, f"{task} {task_state}: {why}")
    if event.kind == "run_finished":
        why = str(data.get("reason", ""))
        message = f"run {state.run_id} {state.status}" + (f": {why}" if why else "")
        return Note("finished", "", state.run_id, state.status, message)
    return None


def hook_command(template: str, note: Note) -> str:
    """``template`` with each ``{placeholder}`` replaced by its shell-quoted value (the
    template was checked when the config or plan was loaded: ``protocol.plan.check_notify``)."""
    values = {name: shlex.quote(str(value)) for name, value in note._asdict().items()}
    return template.format_map(values)


class Notifier:
    """The run log listener that starts one detached delivery per notification."""

    def __init__(
        self,
        *,
        repo: pathlib.Path,
        run: RunPaths,
        hook: str | None,
        tmux_socket: str | None,
        python: str = sys.executable,
    ) -> None:
        self.repo = repo
        self.run = run
        self.hook = hook
        self.tmux_socket = tmux_socket
        self.python = python
        self._children: list[subprocess.Popen[bytes]] = []

    def __call__(self, event: Event, state: RunState) -> None:
        note = note_for(event, state)
        if note is not None:
            self.send(note, report=event.kind == "run_finished")

    def send(self, note: Note, *, report: bool = False) -> None:
        """Start the delivery of ``note`` (after writing ``report.html``, with ``report``) and
        return at once; a failure to start is logged."""
        self._children = [child for child in self._children if child.poll() is None]  # reap
        payload = {
            "note": note._asdict(),
            "hook": hook_command(self.hook, note) if self.hook else None,
            "tmux_socket": self.tmux_socket,
            "log": str(self.run.dir / LOG_NAME),
            "repo": str(self.repo),
            "report": report,
        }
        try:
            child = subprocess.Popen(
                [self.python, "-m", "runner.notify", json.dumps(payload)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C or a killed mayor does not stop it
                close_fds=True,
            )
        except OSError as exc:
            logger.warning("could not start the notification %s: %s", note.event, exc)
            return
        self._children.append(child)


def attach(
    log: RunLog, repo: pathlib.Path, run: RunPaths, plan: Plan, python: str = sys.executable
) -> Notifier:
    """Add a :class:`Notifier` to ``log``'s listeners (the plan's hook wins over the config's)."""
    from runner.config import load_config

    hook = plan.notify or load_config(repo).notify
    state = log.state
    notifier = Notifier(
        repo=repo,
        run=run,
        hook=hook,
        tmux_socket=state.tmux_socket if state.mode == "distributed" else None,
        python=python,
    )
    previous = log.listener

    def listener(event: Event, state: RunState) -> None:
        if previous is not None:
            previous(event, state)
        notifier(event, state)

    log.listener = listener
    return notifier


# -- the detached child -----------------------------------------------------------------------


def _log(path: pathlib.Path, line: str) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with path.open("a", encoding="utf-8") as fh:  # one short line per write: appends interleave
        fh.write(f"{stamp} {line}\n")


def _write_report(repo: pathlib.Path, run_id: str) -> str:
    """Write the run's ``report.html`` (here, not in the mayor: a page takes a moment)."""
    try:
        from runner.report_html import write_report

        return f"written: {write_report(repo, run_id)}"
    except Exception as exc:  # a picture must never break the end of a run
        return f"failed: {exc!r}"


def _run(argv: t.Sequence[str], timeout: float, cwd: pathlib.Path | None = None) -> str | None:
    """Run ``argv``; None on success, else why it failed (one line)."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return f"could not start: {exc}"
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with_group = _kill_group(proc)
        return f"killed after {timeout:g}s{with_group}"
    if proc.returncode != 0:
        last = out.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"exited {proc.returncode}" + (f": {last[0][:200]}" if last[0] else "")
    return None


def _kill_group(proc: subprocess.Popen[bytes]) -> str:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    return " (its process group was killed)"


def _desktop(note: Note) -> str | None:
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "skipped: no DISPLAY or WAYLAND_DISPLAY"
    program = shutil.which("notify-send")
    if program is None:
        return "skipped: notify-send is not on PATH"
    urgency = "normal" if note.event == "finished" else "critical"
    return _run([program, "-u", urgency, f"swarm: {note.event}", note.message], CHANNEL_TIMEOUT)


def _tmux(socket: str, note: Note) -> str | None:
    """A bell and a status-line message on every client attached to the private server."""
    tmux = shutil.which("tmux")
    if tmux is None:
        return "skipped: tmux is not on PATH"
    try:
        listing = subprocess.run(
            [tmux, "-L", socket, "list-clients", "-F", "#{client_name}\t#{client_tty}"],
            capture_output=True,
            text=True,
            timeout=CHANNEL_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"list-clients failed: {exc}"
    clients = [line.split("\t", 1) for line in listing.stdout.splitlines() if "\t" in line]
    if not clients:
        return "skipped: no client attached"
    text = f"swarm: {note.message}"[:200].replace("#", "##")  # no tmux format expansion
    problems = []
    for name, tty in clients:
        failure = _run([tmux, "-L", socket, "display-message", "-c", name, text], CHANNEL_TIMEOUT)
        if failure:
            problems.append(f"display-message on {name}: {failure}")
        try:
            with open(tty, "wb", buffering=0) as fh:  # the bell, to the client's terminal
                fh.write(b"\a")
        except OSError as exc:
            problems.append(f"bell on {tty}: {exc.strerror or exc}")
    return "; ".join(problems) or None


def deliver(payload: t.Mapping[str, t.Any]) -> None:
    """Deliver one notification on every channel, logging each outcome (the child's work)."""
    note = Note(**payload["note"])
    log = pathlib.Path(payload["log"])
    repo = pathlib.Path(payload.get("repo") or ".")
    if payload.get("report"):
        _log(log, f"report {_write_report(repo, note.run)}")
    _log(log, f"{note.event} task={note.task or '-'} {note.message}")
    outcomes = {"desktop": _desktop(note)}
    if payload.get("tmux_socket"):
        outcomes["tmux"] = _tmux(payload["tmux_socket"], note)
    if payload.get("hook"):
        started = time.monotonic()
        timeout = float(payload.get("timeout", HOOK_TIMEOUT))
        failure = _run(["/bin/sh", "-c", payload["hook"]], timeout, cwd=repo)
        took = time.monotonic() - started
        outcomes["hook"] = f"`{payload['hook']}` {failure}" if failure else None
        if failure is None:
            _log(log, f"  hook ok ({took:.1f}s)")
    for channel, outcome in outcomes.items():
        if outcome:
            _log(log, f"  {channel}: {outcome}")


def main(argv: t.Sequence[str]) -> int:
    try:
        deliver(json.loads(argv[0]))
    except Exception as exc:  # nobody reads this process's output: say it in the log if we can
        try:
            _log(pathlib.Path(json.loads(argv[0])["log"]), f"  notification failed: {exc!r}")
        except Exception:
            return 1
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
