"""``swarm watch [RUN]``: a live dashboard of a run, redrawn when ``events.jsonl`` changes."""

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
from runner import launch
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
from runner.paths import SwarmPaths
from runner.report import status_document

EVENTS_FILE: t.Final = "events.jsonl"


class _Wake(FileSystemEventHandler):
    """Puts a token on ``wake`` when the events file changes (a wake-up only: the tail rescans)."""

    def __init__(self, wake: queue.Queue[None]) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path and pathlib.Path(str(path)).name == EVENTS_FILE:
                self.wake.put(None)
                return


@contextlib.contextmanager
def _watching(directory: pathlib.Path) -> t.Iterator[queue.Queue[None]]:
    wake: queue.Queue[None] = queue.Queue()
    observer = start_observer(_Wake(wake), directory)
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


@click.command(name="watch")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.1),
    default=1.0,
    show_default=True,
    help="Seconds between redraws of elapsed times when nothing happens.",
)
@repo_option
@json_option
@handle_errors
def command(run_id: str | None, refresh: float, repo: pathlib.Path | None, as_json: bool) -> None:
    """Follow a run live: progress and ETA, merge queue, escapes, help requests, tasks.

    Redraws when the run's events.jsonl changes and every --refresh seconds for the elapsed
    times. Exits when the run ends, with the run's exit code (0 done, 1 failed or stopped,
    4 timeout); Ctrl-C stops watching (exit 130), never the run. With --json, prints nothing
    until the run ends, then its status document.

    \b
    Examples:
      swarm watch
      swarm watch 20261121-051500-3f2a --repo ~/src/app
      swarm watch --json > final-status.json
    """
    from rich.console import Console
    from rich.live import Live

    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    run = SwarmPaths.for_repo(top).run(rid)
    plan = _plan(top, rid)
    tail = EventTail(run.events)
    tail.poll()

    def current() -> RunState:
        if tail.state is None:
            fail(f"run {rid} has no run_created event in {run.events}")
        return tail.state

    with _watching(run.dir) as wake:
        if as_json:
            while current().status == "running":
                _wait(wake, refresh)
                tail.poll()
            echo_json("status", status_document(current()))
            sys.exit(run_exit_code(current()))
        console = Console()
        with Live(console=console, auto_refresh=False, vertical_overflow="crop") as live:
            while True:
                state = current()
                live.update(render(state, plan, tail.events, width=console.width), refresh=True)
                if state.status != "running":
                    break
                _wait(wake, refresh)
                tail.poll()  # also on a timeout: a missed inotify event costs one second
    sys.exit(run_exit_code(current()))
