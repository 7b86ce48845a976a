"""Shared pieces of the importers: problem collection, JSON reading, default manifests."""

from __future__ import annotations

import json
import re
import typing as t

import yaml

from protocol.base import check_id
from protocol.manifest import normalize
from runner.errors import UsageError
from runner.plan.load import PlanError, load_yaml
from runner.plan.summary import UNKNOWN_SCOPE

# UNKNOWN_SCOPE is the manifest of a task whose source declares no files: the whole repository,
# exclusively (``concurrency: write-shared``), so a task of unknown scope never runs beside
# another writer. The plan summary names such tasks, so it owns the constant.


class PlanImportError(PlanError):
    """The input could not be turned into a valid plan; ``problems`` holds one line per problem.

    The message lists them all, one per line; when there are several, the first line says how
    many more follow (a one-line error display shows only that line).
    """

    def __init__(self, problems: t.Sequence[str], source: str = "") -> None:
        self.problems = list(problems) or [f"{source}: nothing to import"]
        self.source = source
        more = len(self.problems) - 1
        first = self.problems[0]
        if more:
            first += f" (and {more} more; 'swarm plan import {source}' lists them)"
        UsageError.__init__(self, "\n".join([first, *self.problems[1:]]))


class Problems:
    """Problem lines, each ``<source>: <where>: <text>``, in the order they were found."""

    def __init__(self, source: str) -> None:
        self.source = source or "<input>"
        self.lines: list[str] = []

    def add(self, where: str, text: str) -> None:
        prefix = f"{self.source}: {where}: " if where else f"{self.source}: "
        self.lines.append(prefix + text)

    def raise_if_any(self) -> None:
        if self.lines:
            raise PlanImportError(self.lines, self.source)

    def fail(self, text: str, where: str = "") -> t.NoReturn:
        self.add(where, text)
        raise PlanImportError(self.lines, self.source)


def parse_json(text: str, problems: Problems, what: str) -> object:
    """The JSON value in ``text``, or a problem naming the line and column."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problems.fail(f"line {exc.lineno}, column {exc.colno}: invalid JSON ({what}): {exc.msg}")


def task_id(value: object, problems: Problems, where: str) -> str | None:
    """``value`` as a task id (numbers become strings), or None after recording a problem."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        problems.add(where, f"id: {value!r} is not a string; give every task an id")
        return None
    text = str(value)
    try:
        return check_id(text)
    except ValueError as exc:
        problems.add(where, f"id: {exc}")
        return None


def manifest(files: object, problems: Problems, where: str, field: str) -> list[str] | None:
    """A list of normalized manifest paths, or None when the source gives none.

    An explicitly empty list is a problem: agentops reads an empty manifest as "plan more".
    """
    if files is None:
        return None
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list | tuple):
        problems.add(where, f"{field}: {files!r} is not a list of paths")
        return []
    if not files:
        problems.add(
            where,
            f"{field}: empty; an empty manifest means the task needs more planning: list the "
            "files or folders it changes, or leave the key out for a repository-wide task",
        )
        return []
    out: list[str] = []
    for entry in files:
        try:
            out.append(normalize(entry))
        except ValueError as exc:
            problems.add(where, f"{field}: {exc}")
    return list(dict.fromkeys(out))


def scope(files: list[str] | None) -> dict[str, t.Any]:
    """The ``files`` and ``concurrency`` keys for a task with (or without) a manifest."""
    if files is None:
        return {"files": list(UNKNOWN_SCOPE), "concurrency": "write-shared"}
    return {"files": files}


def id_list(value: object, problems: Problems, where: str, field: str) -> list[str]:
    """A list of id strings (a single string is one id)."""
    if value is None:
        return []
    if isinstance(value, str | int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list | tuple):
        problems.add(where, f"{field}: {value!r} is not a list of ids")
        return []
    out: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            problems.add(where, f"{field}: {item!r} is not an id")
            continue
        out.append(str(item))
    return list(dict.fromkeys(out))


def priority(value: object, problems: Problems, where: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        problems.add(where, f"{field}: {value!r} is not a number")
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().upper().removeprefix("P")
        if text.lstrip("-").isdigit():
            return int(text)
    problems.add(where, f"{field}: {value!r} is not a whole number (lower is more urgent)")
    return None


def text(value: object) -> str:
    """A string field: None is empty, anything else as written."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


_FENCE_RE: t.Final = re.compile(
    r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*validation[ \t]*\r?\n"
    r"(?P<body>.*?)^[ \t]*(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
CARRIED_VALIDATION_KEYS: t.Final = ("test_levels",)
"""``metadata.validation`` keys agentops carries for the worker, not checks the mayor runs:
kept in the task's ``metadata`` (the brief shows them)."""


def validation_block(description: str, problems: Problems, where: str) -> dict[str, t.Any]:
    """The first fenced ``validation`` block of a description (YAML or JSON), as agentops'
    ``/plan`` writes it and ``/crank`` extracts it; empty when there is none."""
    match = _FENCE_RE.search(description)
    if match is None:
        return {}
    try:
        doc = load_yaml(match["body"])
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        problems.add(where, f"description: the ```validation block is not YAML or JSON: {first}")
        return {}
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        problems.add(where, "description: the ```validation block is not a mapping of checks")
        return {}
    return doc


def validation(
    given: object, description: str, problems: Problems, where: str, field: str = "validation"
) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
    """The task's ``validation`` and the keys it carries into ``metadata``.

    ``given`` (``metadata.validation``) wins key by key over a ```validation block in the
    description; ``test_levels`` moves to metadata; ``cross_cutting`` is refused (checks for
    every task are plan ``gates`` here). Unknown check names are left for the plan check.
    """
    checks = dict(validation_block(description, problems, where))
    if given is not None:
        if isinstance(given, dict):
            checks.update(given)
        else:
            problems.add(where, f"{field}: not an object of checks")
    carried = {key: checks.pop(key) for key in CARRIED_VALIDATION_KEYS if key in checks}
    if "cross_cutting" in checks:
        checks.pop("cross_cutting")
        problems.add(
            where,
            f"{field}.cross_cutting: checks for every task are plan gates here; move them to "
            "the plan's 'gates' list",
        )
    return checks, carried
