"""``swarm watch [RUN]``: a live dashboard of a run, redrawn when ``events.jsonl`` changes.

In a terminal it is interactive (:mod:`runner.cli.watch_app`); piped, with ``--plain``,
``--once`` or ``--json`` it draws (or prints) the plain view of :func:`runner.dashboard.render`.
"""

from __future__ import annotations

import contextlib
import pathlib
import queue
import sys
import typing as t

import click
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from agentmail.watch import start_observer
from protocol.plan import Plan
from protocol.state import RunState
from runner import launch, why
from runner.cli.common import (
    echo_json,
    fail,
    find_repo,
    handle_errors,
    json_option,
    repo_option,
    run_exit_code,
)
from runner.dashboard import EventTail, render
from runner.paths import RunPaths, SwarmPaths
from runner.report import status_document

EVENTS_FILE: t.Final = "events.jsonl"
CHANGES: t.Final = frozenset({"created", "modified", "moved", "deleted", "closed"})
"""The watchdog event types that can mean new events (not ``opened``, ``closed_no_write``)."""


class _Wake(FileSystemEventHandler):
    """Calls ``wake`` when the events file changes (a wake-up only: the tail rescans)."""

    def __init__(self, wake: t.Callable[[], object]) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in CHANGES:
            return  # our own reads open and close the file: a wake-up for them would spin
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path and pathlib.Path(str(path)).name == EVENTS_FILE:
                self.wake()
                return


def watching_observer(directory: pathlib.Path, wake: t.Callable[[], object]) -> t.Any:
    """A started watchdog observer that calls ``wake`` when ``directory``'s events file
    changes; the caller stops and joins it."""
    return start_observer(_Wake(wake), directory)


@contextlib.contextmanager
def _watching(directory: pathlib.Path) -> t.Iterator[queue.Queue[None]]:
    wake: queue.Queue[None] = queue.Queue()
    observer = watching_observer(directory, lambda: wake.put(None))
    try:
        yield wake
    finally:
        observer.stop()
        observer.join()


def _wait(wake: queue.Queue[None], timeout: float) -> None:
    """Until the events file changed or ``timeout`` passed; coalesce a burst of wake-ups."""
    try:
        wake.get(timeout=timeout)
    except queue.Empty:
        return
    with contextlib.suppress(queue.Empty):
        while True:
            wake.get_nowait()


def _plan(repo: pathlib.Path, run_id: str) -> Plan | None:
    try:
        return launch.load_run_plan(repo, run_id)
    except (OSError, ValueError):
        return None  # efforts then default: the dashboard still works


def _interactive(plain: bool, once: bool, as_json: bool) -> bool:
    # Textual draws on stderr's terminal: all three must be one
    ttys = (sys.stdin, sys.stdout, sys.stderr)
    return not (plain or once or as_json) and all(stream.isatty() for stream in ttys)


@click.command(name="watch")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between redraws of elapsed times when nothing happens.",
)
@click.option("--plain", is_flag=True, help="The non-interactive live view (as when piped).")
@click.option("--once", is_flag=True, help="Print the dashboard once and exit.")
@repo_option
@json_option
@handle_errors
def command(
    run_id: str | None,
    refresh: float,
    plain: bool,
    once: bool,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Follow a run live: progress and ETA, merge queue, escapes, help requests, why tasks
    were refused, tasks.

    In a terminal the dashboard is interactive: up/down (j/k) move through the tasks, the
    selected one shows its pane, its branch against the integration branch and why it was
    refused; Enter attaches read-only, w read-write; n nudges, a answers its help request,
    r restarts its worker, s stops the run; i shows the help and escape inbox; q quits.

    Redraws when the run's events.jsonl changes and every --refresh seconds for the elapsed
    times. The plain view (piped, --plain) exits when the run ends, with the run's exit code
    (0 done, 1 failed or stopped, 4 timeout); Ctrl-C stops watching (exit 130), never the
    run. With --json, prints nothing until the run ends, then its status document.

    \b
    Examples:
      swarm watch
      swarm watch 20261121-051500-3f2a --repo ~/src/app
      swarm watch --once | less
      swarm watch --json > final-status.json
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    run = SwarmPaths.for_repo(top).run(rid)
    plan = _plan(top, rid)
    tail = EventTail(run.events)
    tail.poll()
    if tail.state is None:
        fail(f"run {rid} has no run_created event in {run.events}")
    if _interactive(plain, once, as_json):
        from runner.cli.watch_app import run_app

        sys.exit(run_app(top, rid, plan, refresh=refresh))
    _plain(top, run, plan, tail, refresh=refresh, once=once, as_json=as_json)


def _plain(
    top: pathlib.Path,
    run: RunPaths,
    plan: Plan | None,
    tail: EventTail,
    *,
    refresh: float,
    once: bool,
    as_json: bool,
) -> t.NoReturn:
    def current() -> RunState:
        assert tail.state is not None
        return tail.state

    with _watching(run.dir) as wake:
        if as_json:
            while current().status == "running":
                _wait(wake, refresh)
                tail.poll()
            echo_json("status", status_document(current()))
            sys.exit(run_exit_code(current()))
        from rich.console import Console
        from rich.live import Live

        console = Console()

        def frame() -> t.Any:
            state = current()
            mayor = launch.mayor_missing(top, state)
            whys = why.of_run(run, state)
            return render(state, plan, tail.events, width=console.width, mayor=mayor, whys=whys)

        if once:
            console.print(frame())
            sys.exit(run_exit_code(current()) if current().status != "running" else 0)
        with Live(console=console, auto_refresh=False, vertical_overflow="crop") as live:
            while True:
                live.update(frame(), refresh=True)
                if current().status != "running":
                    break
                _wait(wake, refresh)
                tail.poll()  # also on a timeout: a missed inotify event costs one second
    sys.exit(run_exit_code(current()))
