"""``swarm clean [RUN] [--force]``: remove a finished run's worktrees, branches and sessions."""

from __future__ import annotations

import pathlib
import shutil

import click

from runner import launch
from runner.clean import clean, tmux_session_killer
from runner.cli.common import echo_json, find_repo, handle_errors, json_option, repo_option
from runner.paths import SwarmPaths


@click.command(name="clean")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option(
    "--force",
    is_flag=True,
    help="Also remove unmerged tasks (their heads are archived under refs/swarm/archive/) "
    "and the integration worktree (its branch is kept).",
)
@repo_option
@json_option
@handle_errors
def command(run_id: str | None, force: bool, repo: pathlib.Path | None, as_json: bool) -> None:
    """Remove the worktrees, branches and closed sessions of a run's merged tasks.

    A task is removed when its commits are reachable from the integration or target branch;
    others are kept and listed, unless --force, which archives their heads first so no commit
    becomes unreachable. Refused while the run's mayor is alive (exit 1). Safe to repeat.

    \b
    Examples:
      swarm clean
      swarm clean 20261121-051500-3f2a --force
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    state = launch.read_state(top, rid)
    socket = state.tmux_socket if shutil.which("tmux") else None
    notify = SwarmPaths.for_repo(top).run(rid).dir / "notify"
    report = clean(top, state, force=force, kill_session=tmux_session_killer(socket, notify))
    if as_json:
        echo_json(
            "clean",
            {
                "run_id": rid,
                "removed": list(report.removed),
                "kept": [{"task": task, "reason": reason} for task, reason in report.kept],
                "archived": list(report.archived),
            },
        )
        return
    for task in report.removed:
        click.echo(f"removed  {task}")
    for ref in report.archived:
        click.echo(f"archived {ref}")
    for task, reason in report.kept:
        click.echo(f"kept     {task}: {reason}")
    if not (report.removed or report.kept or report.archived):
        click.echo(f"nothing to clean in run {rid}")
