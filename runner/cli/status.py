"""``swarm status`` and ``swarm report``: a run's tasks now, and its results report."""

from __future__ import annotations

import pathlib
import shutil
import typing as t

import click

from agentmail.fs import write_text_atomic
from protocol.state import RunState
from runner import launch, why
from runner.cli.common import echo_json, find_repo, handle_errors, json_option, repo_option
from runner.errors import UsageError
from runner.events import read_events
from runner.paths import SwarmPaths
from runner.report import status_document


@click.command(name="status")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--rebuild", "rebuild_events", is_flag=True, help="Rebuild the state from events.jsonl alone."
)
@repo_option
@json_option
@handle_errors
def status_command(
    run_id: str | None, rebuild_events: bool, repo: pathlib.Path | None, as_json: bool
) -> None:
    """Show a run's tasks: state, attempt, session, elapsed, last message.

    \b
    Examples:
      swarm status
      swarm status --json | jq '.tasks[] | select(.state == "failed")'
    """
    top = find_repo(repo)
    state = launch.read_state(top, launch.resolve_run(top, run_id), from_events=rebuild_events)
    missing = launch.mayor_missing(top, state)
    whys = _whys(top, state)
    if as_json:
        alive = launch.mayor_running(top, state.run_id)
        shown = [{**w._asdict(), "log": str(w.log) if w.log else None} for w in whys]
        echo_json("status", {**status_document(state), "mayor_alive": alive, "why": shown})
        return
    from rich.console import Console

    from runner.dashboard import status_table

    console = Console(width=min(shutil.get_terminal_size().columns, 120))
    console.print(status_table(state, width=console.width))
    if missing is not None:
        console.print(missing)
    if state.stop_reason:
        console.print(f"{state.status}: {state.stop_reason}")
    if state.paused:
        console.print("dispatch is PAUSED (a critical scope escape): `swarm unpause` resumes it")
    for escape in state.escapes:
        decision = f"spawned {escape.spawned}" if escape.spawned else f"rejected: {escape.reason}"
        console.print(f"escape from {escape.source or '?'} [{escape.key}]: {decision}")
    for found in whys:
        hint = why.logs_hint(found, state.run_id)
        for line in why.text_lines(found, hint=hint):
            console.print(line, markup=False, highlight=False, crop=False, overflow="ignore")


def _whys(top: pathlib.Path, state: RunState) -> list[why.Why]:
    """Each refused task's why, and a failed final gate's."""
    run = SwarmPaths.for_repo(top).run(state.run_id)
    found = why.of_run(run, state)
    if state.status == "failed":
        final = why.final_gate(read_events(run.events))
        if final is not None:
            found.append(final)
    return found


@click.command(name="report")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--html",
    "as_html",
    is_flag=True,
    help="Write the HTML report (Gantt chart, attempts, merge queue, checks, escapes) to "
    "runs/<run>/report.html and print its path.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="With --html: write the page here instead ('-' for stdout).",
)
@repo_option
@json_option
@handle_errors
def report_command(
    run_id: str | None,
    as_html: bool,
    output: pathlib.Path | None,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Print the agentops-style results report of a run (--html: the page with the charts).

    \b
    Examples:
      swarm report
      swarm report 20261121-051500-3f2a --json
      swarm report --html && xdg-open .agents/swarm/runs/<run>/report.html
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    if output is not None and not as_html:
        raise UsageError("--output goes with --html: swarm report --html -o report.html")
    if as_html:
        _html_report(top, rid, output, as_json)
        return
    state = launch.read_state(top, rid)
    if as_json:
        echo_json("report", status_document(state))
    else:
        click.echo(launch.report_text(top, state))
        missing = launch.mayor_missing(top, state)
        if missing is not None:  # a report of a run nobody drives is not of a live run
            click.echo(f"swarm: {missing}", err=True)


def _html_report(top: pathlib.Path, rid: str, output: pathlib.Path | None, as_json: bool) -> None:
    from runner import report_html, timeline

    if output is None:
        path = report_html.write_report(top, rid)
    else:
        page = report_html.render(timeline.build(timeline.load(top, rid)))
        if str(output) == "-":
            click.echo(page, nl=False)
            return
        write_text_atomic(output, page)
        path = output
    if as_json:
        echo_json("report-html", {"run_id": rid, "path": str(path)})
    else:
        click.echo(str(path))


commands: t.Final = (status_command, report_command)
