"""``swarm land [RUN]``: fast-forward the run's target branch to its integration head."""

from __future__ import annotations

import pathlib
import sys

import click

from runner import launch
from runner.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    echo_json,
    find_repo,
    handle_errors,
    json_option,
    repo_option,
)
from runner.land import land


@click.command(name="land")
@click.argument("run_id", metavar="[RUN]", required=False)
@repo_option
@json_option
@handle_errors
def command(run_id: str | None, repo: pathlib.Path | None, as_json: bool) -> None:
    """Fast-forward the target branch to the run's integration branch, if that is safe.

    Only a finished (done) run lands, only as a fast-forward, and only into a clean checkout;
    otherwise nothing changes and the git commands to do it by hand are printed (exit 1).

    \b
    Examples:
      swarm land
      swarm land 20261121-051500-3f2a --json
    """
    top = find_repo(repo)
    state = launch.read_state(top, launch.resolve_run(top, run_id))
    result = land(top, state)
    if result.landed:
        launch.record_landed(top, state.run_id, result)
    if as_json:
        echo_json("land", {"run_id": state.run_id, **result._asdict()})
    elif result.landed:
        click.echo(f"landed {result.target}: {result.old[:12]}..{result.new[:12]}")
    if not result.landed:
        click.echo(f"swarm: not landed: {result.reason}", err=True)
        if result.commands:
            click.echo("swarm: to land by hand:", err=True)
            for cmd in result.commands:
                click.echo(f"  {cmd}", err=True)
    sys.exit(EXIT_OK if result.landed else EXIT_FAILED)
