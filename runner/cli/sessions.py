"""``swarm attach`` and ``swarm logs``: look into a run's sessions (:mod:`runner.control`)."""

from __future__ import annotations

import os
import pathlib
import typing as t

import click

from runner import control, launch, why
from runner.cli.common import find_repo, handle_errors, repo_option, run_option
from runner.errors import UsageError
from runner.paths import SwarmPaths


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
@click.option(
    "--validation",
    "which",
    flag_value="validation",
    help="The output of the task's last failed validation (validation.log).",
)
@click.option(
    "--gate",
    "which",
    flag_value="gate",
    help="The output of the gate that last refused the task's merge (gate.log).",
)
@repo_option
@handle_errors
def logs_command(
    task: str,
    run_id: str | None,
    follow: bool,
    lines: int,
    which: str | None,
    repo: pathlib.Path | None,
) -> None:
    """Print the last lines of a worker's pane output (pane.log), or with --validation or
    --gate the output of the check that refused its work.

    \b
    Examples:
      swarm logs T03
      swarm logs T03 -f -n 200
      swarm logs T03 --validation
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    if which is None:
        path = control.pane_log(top, rid, task)
    else:
        path = why.log_path(SwarmPaths.for_repo(top).run(rid), task, which)
        if not path.exists():
            raise UsageError(
                f"no {which} output for task {task!r} in run {rid} ({path}): none of its "
                f"{which} checks failed; `swarm status {rid}` says why it stopped"
            )
    for text in control.read_log(path, lines, follow=follow):
        click.echo(text, nl=False)


commands: t.Final = (attach_command, logs_command)
