"""``swarm clean [RUN | --all] [--force]``: remove what finished runs left behind."""

from __future__ import annotations

import pathlib
import shutil
import typing as t

import click

from runner import launch
from runner.clean import CleanReport, clean, tmux_session_killer
from runner.cli.common import echo_json, find_repo, handle_errors, json_option, repo_option
from runner.errors import UsageError
from runner.paths import SwarmPaths


def _clean_one(top: pathlib.Path, rid: str, force: bool) -> CleanReport:
    state = launch.read_state(top, rid)
    socket = state.tmux_socket if shutil.which("tmux") else None
    notify = SwarmPaths.for_repo(top).run(rid).dir / "notify"
    if not any(host.remote for host in state.hosts):
        return clean(top, state, force=force, kill_session=tmux_session_killer(socket, notify))
    from runner.hosts.cleanup import RemoteCleanup  # workers on other hosts (docs/hosts.md)

    remote = RemoteCleanup(state)
    try:
        unfetched = remote.fetch_all()
        kept = state.model_copy(  # a mirror whose host could not be read stays as it is
            update={
                "tasks": {k: v for k, v in state.tasks.items() if k not in unfetched},
                "task_order": tuple(k for k in state.task_order if k not in unfetched),
            }
        )
        report = clean(top, kept, force=force, kill_session=tmux_session_killer(socket, notify))
        remote.remove(report.removed)
    finally:
        remote.close()
    return report._replace(kept=(*report.kept, *remote.unreachable.items()))


def _doc(rid: str, report: CleanReport) -> dict[str, t.Any]:
    return {
        "run_id": rid,
        "removed": list(report.removed),
        "kept": [{"task": task, "reason": reason} for task, reason in report.kept],
        "archived": list(report.archived),
    }


def _echo(rid: str, report: CleanReport, prefix: str = "") -> None:
    for task in report.removed:
        click.echo(f"{prefix}removed  {task}")
    for ref in report.archived:
        click.echo(f"{prefix}archived {ref}")
    for task, reason in report.kept:
        click.echo(f"{prefix}kept     {task}: {reason}")
    if not (report.removed or report.kept or report.archived):
        click.echo(f"{prefix}nothing to clean in run {rid}")


def _skip_reason(top: pathlib.Path, rid: str) -> str | None:
    """Why ``--all`` leaves a run alone: a live mayor, or a run that is not over."""
    if launch.mayor_running(top, rid):
        return f"its mayor is alive: swarm stop {rid}"
    status = launch.read_state(top, rid).status
    if status == "running":
        return f"it has not finished (no mayor): swarm resume {rid}, or swarm stop {rid}"
    return None


@click.command(name="clean")
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--all", "every", is_flag=True, help="Clean every finished run of the repository.")
@click.option(
    "--force",
    is_flag=True,
    help="Also remove unmerged tasks and unlanded results (their heads are archived under "
    "refs/swarm/archive/ first) and the integration worktree of a resumable run.",
)
@repo_option
@json_option
@handle_errors
def command(
    run_id: str | None, every: bool, force: bool, repo: pathlib.Path | None, as_json: bool
) -> None:
    """Remove a finished run's worktrees, branches and sessions, keeping every commit.

    A task goes when its commits are reachable from the integration or target branch; the
    integration worktree and branch go when the run is over and its result is on the target
    branch (landed, or nothing merged). What is kept is listed with the reason, unless --force,
    which archives unmerged heads first so no commit becomes unreachable. Refused while the
    run's mayor is alive (exit 1). Safe to repeat.

    \b
    Examples:
      swarm clean
      swarm clean 20261121-051500-3f2a --force
      swarm clean --all
    """
    top = find_repo(repo)
    if every and run_id:
        raise UsageError("give a RUN or --all, not both: swarm clean --all")
    if not every:
        rid = launch.resolve_run(top, run_id)
        report = _clean_one(top, rid, force)
        if as_json:
            echo_json("clean", _doc(rid, report))
        else:
            _echo(rid, report)
        return
    done: list[dict[str, t.Any]] = []
    skipped: list[dict[str, str]] = []
    for rid in launch.list_runs(top):
        reason = _skip_reason(top, rid)
        if reason is not None:
            skipped.append({"run_id": rid, "reason": reason})
            if not as_json:
                click.echo(f"{rid}: skipped: {reason}")
            continue
        report = _clean_one(top, rid, force)
        done.append(_doc(rid, report))
        if not as_json:
            _echo(rid, report, prefix=f"{rid}: ")
    if as_json:
        echo_json("clean-all", {"runs": done, "skipped": skipped})
    elif not (done or skipped):
        click.echo(f"no runs in {top}")
