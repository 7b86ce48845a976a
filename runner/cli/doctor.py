"""``swarm doctor``: render the checks of :mod:`runner.doctor`, a fix line per problem."""

from __future__ import annotations

import pathlib
import sys
import typing as t

import click

from runner.cli.common import EXIT_FAILED, echo_json, handle_errors, json_option, repo_option
from runner.doctor import Check, diagnose


def _print(checks: t.Sequence[Check]) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for check in checks:
        line = Text("  ok  " if check.ok else "FAIL  ", style="green" if check.ok else "bold red")
        line.append(f"{check.name:16} ", style="bold")
        line.append(check.detail)
        console.print(line)
        if check.fix:
            console.print(Text(f"      fix: {check.fix}", style="yellow"))


@click.command(name="doctor")
@repo_option
@click.option(
    "--plan",
    "plan",
    type=click.Path(path_type=pathlib.Path, dir_okay=False),
    default=None,
    help="The plan about to run: what it asks for is checked too (bubblewrap for sandbox).",
)
@json_option
@handle_errors
def command(repo: pathlib.Path | None, plan: pathlib.Path | None, as_json: bool) -> None:
    """Check tmux, git, Python, inotify limits, the repository, the config file, the worktree
    root, agent binaries, bubblewrap (required when the config or --plan asks for
    --isolation sandbox), and leftovers of old runs (sessions, worktrees, runs without a
    mayor).

    Exits 0 when everything is fine, 1 with a fix line for each problem.

    \b
    Examples:
      swarm doctor
      swarm doctor --repo ~/src/app --plan plan.yaml
      swarm doctor --json | jq '.checks[] | select(.ok | not)'
    """
    start = (repo or pathlib.Path.cwd()).resolve()
    checks = diagnose(start, plan)
    problems = [check for check in checks if not check.ok]
    if as_json:
        echo_json(
            "doctor",
            {"ok": not problems, "repo": str(start), "checks": [c._asdict() for c in checks]},
        )
    else:
        _print(checks)
    if problems:
        click.echo(f"swarm: {len(problems)} problem(s); fix them as shown", err=True)
        sys.exit(EXIT_FAILED)
