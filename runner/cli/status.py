"""``swarm status`` and ``swarm report``: a run's tasks now, and its results report."""

from __future__ import annotations

import pathlib
import sys
import typing as t

import click

from agentmail.fs import write_text_atomic
from protocol.state import RunState
from runner import launch, status_view, why
from runner.cli import fast
from runner.cli.common import echo_json, find_repo, handle_errors, json_option, repo_option
from runner.errors import UsageError
from runner.paths import RunPaths, SwarmPaths
from runner.report import StateDoc, as_doc, status_document

if t.TYPE_CHECKING:
    from datetime import datetime

    from rich.console import Console


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
    rid = launch.resolve_run(top, run_id)
    doc = as_doc(launch.read_state(top, rid, from_events=rebuild_events))
    run = SwarmPaths.for_repo(top).run(rid)
    if as_json:
        echo_json("status", status_view.json_document(run, doc, status_view.whys(run, doc)))
    elif not fast.print_status(run, doc):
        from rich.console import Console

        rich_status(run, doc, Console(width=status_view.terminal_width(sys.stdout)))


def rich_status(
    run: RunPaths, doc: StateDoc, console: Console, *, at: datetime | None = None
) -> None:
    """What :func:`runner.cli.fast.print_status` does not lay out itself, printed by rich (a
    terminal too narrow for the columns, characters of other widths): the same lines (``at``:
    the time elapsed values are shown at, default now)."""
    from runner.dashboard import status_table

    state = RunState.model_validate(doc)
    missing = status_view.mayor_missing(run, state.run_id, state.status)
    found = status_view.whys(run, doc)
    console.print(status_table(state, width=console.width, at=at))
    for line in status_view.notes(doc, missing):
        console.print(line, markup=False, emoji=False)
    for found_why in found:
        hint = why.logs_hint(found_why, state.run_id)
        for line in why.text_lines(found_why, hint=hint):
            console.print(
                line, markup=False, emoji=False, highlight=False, crop=False, overflow="ignore"
            )


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
