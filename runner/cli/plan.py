"""`swarm plan`: validate, simulate and graph a plan file."""

from __future__ import annotations

import pathlib
import typing as t

import click

from runner.cli.common import EXIT_USAGE, echo_json, handle_errors, json_option
from runner.plan.load import PlanError, check_plan, read_plan_file
from runner.plan.summary import PlanSummary, format_minutes, summarize

plan_argument = click.argument(
    "plan_path", metavar="PLAN", type=click.Path(dir_okay=True, path_type=pathlib.Path)
)


@click.group(name="plan")
def command() -> None:
    """Check a plan, simulate its schedule, draw its graph."""


def _load(plan_path: pathlib.Path) -> tuple[t.Any, list[str]]:
    try:
        raw = read_plan_file(plan_path)
    except PlanError as exc:
        return None, exc.problems
    return check_plan(raw, str(plan_path))


def _fail_problems(problems: list[str]) -> t.NoReturn:
    for problem in problems:
        click.echo(problem, err=True)
    raise SystemExit(EXIT_USAGE)


@command.command(name="validate")
@plan_argument
@json_option
@handle_errors
def validate(plan_path: pathlib.Path, as_json: bool) -> None:
    """Check PLAN and summarize it; exit 2 with one line per problem.

    \b
    Examples:
      swarm plan validate plan.yaml
      swarm plan validate plan.json --json
    """
    plan, problems = _load(plan_path)
    summary = summarize(plan) if plan is not None else None
    if as_json:
        echo_json(
            "plan-validate",
            {
                "ok": not problems,
                "problems": problems,
                "summary": summary.as_json() if summary is not None else None,
            },
        )
        if problems:
            raise SystemExit(EXIT_USAGE)
        return
    if problems or summary is None:
        _fail_problems(problems)
    _echo_summary(plan_path, summary)


def _echo_summary(plan_path: pathlib.Path, summary: PlanSummary) -> None:
    name = f" {summary.name!r}" if summary.name else ""
    click.echo(f"{plan_path}: valid plan{name}")
    click.echo(f"  tasks            {summary.tasks} ({summary.done} done, {summary.todo} to do)")
    if summary.critical_ids:
        path = _chain(summary.critical_ids)
        click.echo(f"  critical path    {format_minutes(summary.critical_minutes)}: {path}")
    else:
        click.echo("  critical path    none (nothing left to do)")
    click.echo(f"  max parallelism  {summary.max_parallelism}")
    click.echo(f"  gates            {', '.join(summary.gates) or 'none'}")


def _chain(ids: t.Sequence[str], keep: int = 5) -> str:
    """``A -> B -> C``, elided in the middle for long chains."""
    if len(ids) <= 2 * keep + 1:
        return " -> ".join(ids)
    hidden = len(ids) - 2 * keep
    return " -> ".join([*ids[:keep], f"... ({hidden} more)", *ids[-keep:]])
