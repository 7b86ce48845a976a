"""``swarm plan import``: turn a swarm-iosm plan.md, an OL wave, beads or agentops TaskCreate
JSON into a plan file in our own format, then validate it."""

from __future__ import annotations

import pathlib
import typing as t

import click
import yaml

from agentmail.fs import PRIVATE, write_text_atomic
from protocol.plan import Task
from runner.cli.common import EXIT_USAGE, echo_json, handle_errors, json_option
from runner.errors import UsageError
from runner.plan.importers import FORMATS, Format, detect_format, import_plan, read_text
from runner.plan.load import PlanError, check_plan

_TASK_ORDER: t.Final = {name: index for index, name in enumerate(Task.model_fields)}


class _Dumper(yaml.SafeDumper):
    """Block style, and multi-line strings as literal blocks (descriptions stay readable)."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def render_yaml(plan: dict[str, t.Any], header: str = "") -> str:
    """The plan as YAML: plan keys first, task keys in the documented order."""
    tasks = plan.get("tasks")
    out = {key: value for key, value in plan.items() if key != "tasks"}
    if isinstance(tasks, list):
        out["tasks"] = [_ordered(task) for task in tasks]
    body = yaml.dump(out, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2)
    return header + body


def _ordered(task: object) -> object:
    if not isinstance(task, dict):
        return task
    return dict(sorted(task.items(), key=lambda kv: _TASK_ORDER.get(kv[0], len(_TASK_ORDER))))


def write_atomic(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` all at once (:func:`agentmail.fs.write_text_atomic`): on any
    error ``path`` is left as it was. Private to the owner, as before."""
    write_text_atomic(path, text, mode=PRIVATE)


def _split_ids(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _fail(problems: list[str], as_json: bool, doc: dict[str, t.Any]) -> t.NoReturn:
    if as_json:
        echo_json("plan-import", {**doc, "ok": False, "problems": problems})
    else:
        for problem in problems:
            click.echo(problem, err=True)
    raise SystemExit(EXIT_USAGE)


@click.command(name="import")
@click.argument(
    "input_path", metavar="FILE", type=click.Path(dir_okay=False, path_type=pathlib.Path)
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="Input format (default: detected from the file name and content).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="Write the plan here (atomically); default: print it on stdout.",
)
@click.option(
    "--bead-ids",
    default=None,
    metavar="A,B",
    help="beads only: import exactly these issues (replaces the open, unblocked ones).",
)
@json_option
@handle_errors
def command(
    input_path: pathlib.Path,
    fmt: Format | None,
    output: pathlib.Path | None,
    bead_ids: str | None,
    as_json: bool,
) -> None:
    """Convert FILE into a swarm plan, write it as YAML, then validate it.

    FILE is a swarm-iosm plan.md, an OL wave JSON (ol hero hunt), a beads 'bd ready --json'
    document or .beads/issues.jsonl, or agentops TaskCreate JSON. Exit 2 with one line per
    problem when FILE cannot be imported (nothing is written) or the plan written is invalid.

    \b
    Examples:
      swarm plan import plan.md -o plan.yaml
      swarm plan import wave.json --format ol-wave -o plan.yaml
      swarm plan import .beads/issues.jsonl --bead-ids bd-a1,bd-b2 -o plan.yaml
      swarm plan import tasks.json --json
    """
    source = str(input_path)
    doc: dict[str, t.Any] = {
        "source": source,
        "format": fmt,
        "output": str(output) if output else None,
    }
    if output is not None:
        if output.resolve() == input_path.resolve():
            raise UsageError(f"{output}: -o would overwrite the input; write the plan elsewhere")
        if not output.parent.is_dir():
            raise UsageError(f"{output}: folder {output.parent} does not exist; create it first")
    try:
        text = read_text(input_path)
        fmt = fmt or detect_format(text, input_path.name)
        doc["format"] = fmt
        raw = import_plan(text, fmt=fmt, source=source, bead_ids=_split_ids(bead_ids))
    except PlanError as exc:
        _fail(exc.problems, as_json, doc)

    header = (
        f"# Imported by 'swarm plan import' from {input_path.name} ({fmt}).\n"
        f"# Check it with: swarm plan validate {output.name if output else 'PLAN'}\n"
    )
    rendered = render_yaml(raw, header)
    if output is not None:
        write_atomic(output, rendered)
    elif not as_json:
        click.echo(rendered, nl=False)

    written = yaml.safe_load(rendered)
    plan, problems = check_plan(written, str(output or input_path))
    doc["tasks"] = len(raw.get("tasks") or [])
    if output is None and as_json:
        doc["plan"] = written
    if plan is None:
        _fail(problems, as_json, doc)
    if as_json:
        echo_json("plan-import", {**doc, "ok": True, "problems": []})
        return
    done = sum(1 for task in plan.tasks if task.status == "done")
    where = f" -> {output}" if output else ""
    click.echo(
        f"swarm: imported {len(plan.tasks)} tasks ({done} done) from {source} ({fmt}){where}",
        err=True,
    )
