"""``swarm stop`` and ``swarm unpause``: control a running run from outside
(:mod:`runner.control`)."""

from __future__ import annotations

import pathlib
import typing as t

import click

from runner import control, launch
from runner.cli.common import find_repo, handle_errors, repo_option


@click.command(name="stop")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--kill", is_flag=True, help="Also kill the running workers' sessions.")
@repo_option
@handle_errors
def stop_command(run_id: str | None, kill: bool, repo: pathlib.Path | None) -> None:
    """Stop a run: no new workers start; with --kill, running workers are killed too.

    \b
    Examples:
      swarm stop
      swarm stop 20261121-051500-3f2a --kill
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    done = control.stop(top, rid, kill=kill)
    if done.outcome == "ended":
        click.echo(f"swarm: run {rid} is already {done.status}", err=True)
    elif done.outcome == "stopped":
        click.echo(f"swarm: run {rid} stopped", err=True)
    else:
        click.echo(f"swarm: asked the mayor of run {rid} to stop", err=True)


@click.command(name="unpause")
@click.argument("run_id", metavar="[RUN]", required=False)
@repo_option
@handle_errors
def unpause_command(run_id: str | None, repo: pathlib.Path | None) -> None:
    """Resume dispatch after a critical scope escape paused it.

    \b
    Examples:
      swarm unpause
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    control.unpause(top, rid)
    click.echo(f"swarm: asked the mayor of run {rid} to resume dispatch", err=True)


commands: t.Final = (stop_command, unpause_command)
