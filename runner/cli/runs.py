"""``swarm runs``: every run of the repository, newest last, with what became of it."""

from __future__ import annotations

import pathlib
import typing as t
from datetime import UTC, datetime

import click

from runner import git, launch
from runner.cli.common import echo_json, find_repo, handle_errors, json_option, repo_option
from runner.errors import RunnerError
from runner.report import format_seconds

if t.TYPE_CHECKING:
    from protocol.state import RunState

FAILED_STATES: t.Final = frozenset({"failed", "blocked"})
LANDED: t.Final = {True: "yes", False: "no", None: "-"}


def _age(created: datetime | None, now: datetime) -> str:
    return "-" if created is None else format_seconds((now - created).total_seconds())


def run_row(top: pathlib.Path, run_id: str, now: datetime) -> dict[str, t.Any]:
    """One run as ``swarm runs`` shows it; a run whose state cannot be read says why."""
    try:
        state = launch.read_state(top, run_id)
    except (RunnerError, OSError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return {"run_id": run_id, "status": "unreadable", "reason": text}
    tasks = state.tasks.values()
    alive = launch.mayor_running(top, run_id)
    branch = state.integration_branch
    kept = bool(branch) and git.branch_exists(top, branch)
    kept = kept or pathlib.Path(state.integration_worktree or "/nonexistent").exists()
    return {
        "run_id": run_id,
        "status": state.status,
        "reason": state.stop_reason,
        "plan": state.plan_name,
        "tasks": len(state.tasks),
        "merged": sum(1 for r in tasks if r.state == "merged"),
        "failed": sum(1 for r in tasks if r.state in FAILED_STATES),
        "created": state.created.isoformat() if state.created else None,
        "age": _age(state.created, now),
        "mayor_alive": alive,
        "landed": _landed(top, state),
        "cleaned": not kept,
    }


def _landed(top: pathlib.Path, state: RunState) -> bool | None:
    """Whether the run's result is on its target branch (recorded by ``--land``, or found in
    git after ``swarm land``); None when it merged nothing."""
    if state.landed:
        return True
    head, target = state.integration_head, state.target_branch
    if not head or head == state.base_sha:
        return None
    tip = git.resolve(top, f"refs/heads/{target}") if target else None
    return tip is not None and git.is_ancestor(top, head, tip)


def _status_word(row: t.Mapping[str, t.Any]) -> str:
    if row["status"] == "running" and not row.get("mayor_alive"):
        return "running (no mayor)"
    return str(row["status"])


@click.command(name="runs")
@repo_option
@json_option
@handle_errors
def command(repo: pathlib.Path | None, as_json: bool) -> None:
    """List the repository's runs: state, tasks merged and failed, age, live mayor, landed
    (`-`: nothing to land), cleaned (no integration worktree or branch left).

    A run that says `running` with no live mayor was killed: `swarm resume RUN` goes on with
    it, `swarm stop RUN` ends it. Every command that reads a run takes its id (status, report,
    watch, logs --run, attach --run, land, stop, clean).

    \b
    Examples:
      swarm runs
      swarm runs --json | jq -r '.runs[] | select(.landed | not) | .run_id'
    """
    top = find_repo(repo)
    now = datetime.now(UTC)
    rows = [run_row(top, run_id, now) for run_id in launch.list_runs(top)]
    if as_json:
        echo_json("runs", {"runs": rows})
        return
    if not rows:
        click.echo(f"no runs in {top}; start one with `swarm run PLAN`")
        return
    width = max(len("run"), *(len(row["run_id"]) for row in rows))
    click.echo(
        f"{'run':<{width}}  {'state':<18}  {'merged':>9}  {'failed':>6}  {'age':>6}  "
        "mayor  landed  cleaned"
    )
    for row in rows:
        if row["status"] == "unreadable":
            click.echo(f"{row['run_id']:<{width}}  unreadable: {row['reason']}")
            continue
        merged = f"{row['merged']}/{row['tasks']}"
        click.echo(
            f"{row['run_id']:<{width}}  {_status_word(row):<18}  {merged:>9}  {row['failed']:>6}  "
            f"{row['age']:>6}  {'alive' if row['mayor_alive'] else '-':<5}  "
            f"{LANDED[row['landed']]:<6}  {'yes' if row['cleaned'] else 'no'}"
        )
