"""`swarm plan`: validate, simulate and graph a plan file."""

from __future__ import annotations

import pathlib
import typing as t

import click

from protocol.hosts import HostSpec
from protocol.plan import Plan
from runner.cli.common import EXIT_USAGE, echo_json, handle_errors, json_option
from runner.plan.load import PlanError, check_plan, read_plan_file
from runner.plan.summary import PlanSummary, format_minutes, summarize
from runner.simulate import as_json as sim_json
from runner.simulate import gantt, mermaid, simulate, speedup

DEFAULT_WORKERS: t.Final = 5

plan_argument = click.argument(
    "plan_path", metavar="PLAN", type=click.Path(dir_okay=True, path_type=pathlib.Path)
)


@click.group(name="plan")
def command() -> None:
    """Check a plan, simulate its schedule, draw its graph, import one from another tool.

    \b
    Examples:
      swarm plan validate plan.yaml
      swarm plan simulate plan.yaml --workers 4
      swarm plan import plan.md -o plan.yaml
    """


def _load(plan_path: pathlib.Path) -> tuple[Plan | None, list[str]]:
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
    for note in summary.notes:
        click.echo(f"  note             {note}")


def _chain(ids: t.Sequence[str], keep: int = 5) -> str:
    """``A -> B -> C``, elided in the middle for long chains."""
    if len(ids) <= 2 * keep + 1:
        return " -> ".join(ids)
    hidden = len(ids) - 2 * keep
    return " -> ".join([*ids[:keep], f"... ({hidden} more)", *ids[-keep:]])


def _load_or_fail(plan_path: pathlib.Path, kind: str, as_json: bool) -> Plan:
    plan, problems = _load(plan_path)
    if plan is not None:
        return plan
    if as_json:
        echo_json(kind, {"ok": False, "problems": problems})
        raise SystemExit(EXIT_USAGE)
    _fail_problems(problems)


@command.command(name="simulate")
@plan_argument
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Virtual workers (default: the plan's max_workers, else 5).",
)
@click.option("--waves", is_flag=True, help="Simulate wave barriers only (agentops waves).")
@click.option(
    "--hosts",
    default=None,
    metavar="A,B",
    help="Place tasks on these hosts of the repository's config, as `swarm run --hosts` "
    "does (docs/hosts.md); the workers are their slots.",
)
@json_option
@handle_errors
def simulate_command(
    plan_path: pathlib.Path, workers: int | None, waves: bool, hosts: str | None, as_json: bool
) -> None:
    """Simulate PLAN on a virtual clock (efforts as durations) and draw a Gantt chart.

    Without --waves, continuous dispatch is compared with waves side by side.

    \b
    Examples:
      swarm plan simulate plan.yaml --workers 3
      swarm plan simulate plan.yaml --waves --json
    """
    plan = _load_or_fail(plan_path, "plan-simulate", as_json)
    count = workers or plan.max_workers or DEFAULT_WORKERS
    placed = _hosts(plan_path, hosts, count)
    if placed:
        count = workers or sum(host.slots for host in placed)
    sim = simulate(plan, workers=count, waves=waves, hosts=placed)
    other = None if waves else simulate(plan, workers=count, waves=True, hosts=placed)
    if as_json:
        comparison = None
        if other is not None:
            comparison = {
                "continuous": sim.makespan,
                "waves": other.makespan,
                "speedup": round(speedup(sim, other), 4),
            }
        echo_json("plan-simulate", {"ok": True, **sim_json(sim), "comparison": comparison})
        return
    mode = "waves" if waves else "continuous dispatch"
    click.echo(f"{plan_path}: {len(sim.tasks)} tasks on {count} workers ({mode})")
    click.echo(gantt(sim))
    minutes, path = sim.critical_path
    click.echo(f"makespan         {format_minutes(sim.makespan)}")
    if path:
        click.echo(f"critical path    {format_minutes(minutes)}: {_chain(path)}")
    if other is not None:
        click.echo(f"continuous       {format_minutes(sim.makespan)}")
        click.echo(f"waves            {format_minutes(other.makespan)}")
        click.echo(f"speed-up         {speedup(sim, other):.2f}x (continuous vs waves)")


def _hosts(plan_path: pathlib.Path, names: str | None, slots: int) -> tuple[HostSpec, ...]:
    """The hosts ``--hosts`` names, from the config of the repository holding the plan."""
    if names is None:
        return ()
    from runner.config import load_config
    from runner.launch import select_hosts

    folder = plan_path.resolve().parent
    top = next((p for p in (folder, *folder.parents) if (p / ".git").exists()), folder)
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    return select_hosts(load_config(top).hosts, wanted, local_slots=slots)


@command.command(name="graph")
@plan_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "svg", "html"]),
    default="mermaid",
    show_default=True,
    help="Mermaid text, an SVG picture, or a self-contained HTML page around the SVG.",
)
@json_option
@handle_errors
def graph_command(plan_path: pathlib.Path, fmt: str, as_json: bool) -> None:
    """Print PLAN's dependency graph: Mermaid (graph TD), or laid out in layers as SVG or HTML
    with the critical path in red.

    \b
    Examples:
      swarm plan graph plan.yaml > plan.mmd
      swarm plan graph plan.yaml --format html > plan.html
      swarm plan graph plan.yaml --json
    """
    plan = _load_or_fail(plan_path, "plan-graph", as_json)
    if as_json:
        from runner.graph import layout

        lay = layout(plan)
        edges = [[dep, task.id] for task in plan.tasks for dep in task.blocked_by]
        layers = {node.id: node.layer for node in lay.nodes}
        critical = list(lay.critical_path)
        echo_json(
            "plan-graph",
            {"mermaid": mermaid(plan), "edges": edges, "layers": layers, "critical_path": critical},
        )
        return
    if fmt == "mermaid":
        click.echo(mermaid(plan), nl=False)
        return
    from runner import graph

    click.echo((graph.svg if fmt == "svg" else graph.html)(plan), nl=False)
