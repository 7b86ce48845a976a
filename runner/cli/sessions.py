"""``swarm attach`` and ``swarm logs``: look into a run's sessions (:mod:`runner.control`)."""

from __future__ import annotations

import os
import pathlib
import typing as t

import click

from runner import control, launch
from runner.cli.common import find_repo, handle_errors, repo_option, run_option


@click.command(name="attach")
@click.argument("task", required=False)
@run_option
@click.option("--rw", is_flag=True, help="Attach read-write (default: read-only).")
@click.option("--list", "list_only", is_flag=True, help="List the run's sessions.")
@repo_option
@handle_errors
def attach_command(
    task: str | None, run_id: str | None, rw: bool, list_only: bool, repo: pathlib.Path | None
) -> None:
    """Attach to a worker's tmux session (read-only unless --rw); without TASK, to the mayor's.

    \b
    Examples:
      swarm attach              # the mayor of the latest run
      swarm attach T03          # a worker, read-only
      swarm attach T03 --rw     # type into the worker's session
      swarm attach --list
    """
    top = find_repo(repo)
    state = launch.read_state(top, launch.resolve_run(top, run_id))
    if list_only:
        for row in control.sessions(state):
            click.echo(f"{row.name:20} {row.state:10} {row.session}")
        return
    argv = control.attach_argv(state, task, rw=rw)
    os.execvp(argv[0], argv)


@click.command(name="logs")
@click.argument("task")
@run_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True)
@repo_option
@handle_errors
def logs_command(
    task: str, run_id: str | None, follow: bool, lines: int, repo: pathlib.Path | None
) -> None:
    """Print the last lines of a worker's pane output (pane.log).

    \b
    Examples:
      swarm logs T03
      swarm logs T03 -f -n 200
    """
    top = find_repo(repo)
    path = control.pane_log(top, launch.resolve_run(top, run_id), task)
    for text in control.read_log(path, lines, follow=follow):
        click.echo(text, nl=False)


commands: t.Final = (attach_command, logs_command)
