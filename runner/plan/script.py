"""Shapes of the scripted agent's steps (a task's ``script`` key), checked when a plan loads.

Each step is a one-key mapping, optionally with ``attempt: N`` (the step runs only on that
attempt). The scripted agent interprets them; this module only says whether they are well formed.
"""

from __future__ import annotations

import typing as t

from protocol.manifest import normalize
from protocol.plan import Severity

STEP_KINDS: t.Final[tuple[str, ...]] = (
    "write",
    "append",
    "delete",
    "patch",
    "run",
    "sleep",
    "progress",
    "commit",
    "escape",
    "help",
    "offer",
    "fail",
    "crash",
    "hang",
)
_SEVERITIES: t.Final = t.get_args(Severity)


def step_kind(step: t.Mapping[str, t.Any]) -> str:
    """The kind of a well-formed step (its one key other than ``attempt``)."""
    (kind,) = (key for key in step if key != "attempt")
    return kind


def check_steps(script: object) -> list[str]:
    """Problems in a ``script`` value, each ``script[<i>]: <what is wrong and the fix>``."""
    if script is None:
        return []
    if not isinstance(script, list | tuple):
        return ["script: must be a list of steps, e.g. [{write: {path: a.txt, content: hi}}]"]
    problems: list[str] = []
    for number, step in enumerate(script):
        problems.extend(f"script[{number}]: {problem}" for problem in check_step(step))
    return problems


def check_step(step: object) -> list[str]:
    """Problems in one step (empty when it is well formed)."""
    if not isinstance(step, dict):
        return [f"{step!r} is not a mapping; write one step as e.g. {{run: 'make test'}}"]
    problems: list[str] = []
    if "attempt" in step:
        attempt = step["attempt"]
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
            problems.append(f"attempt: {attempt!r} is not a positive whole number")
    kinds = [key for key in step if key != "attempt"]
    if len(kinds) != 1:
        found = ", ".join(str(kind) for kind in kinds) or "none"
        problems.append(
            f"needs exactly one step kind (found: {found}); use one of {', '.join(STEP_KINDS)}"
        )
        return problems
    kind = kinds[0]
    if kind not in STEP_KINDS:
        return [*problems, f"unknown step {kind!r}; use one of {', '.join(STEP_KINDS)}"]
    problems.extend(f"{kind}: {problem}" for problem in _check_value(kind, step[kind]))
    return problems


def _check_value(kind: str, value: object) -> list[str]:
    if kind in ("write", "append"):
        return _check_mapping(value, required={"path": _path, "content": _text}, optional={})
    if kind == "delete":
        return _path(value)
    if kind == "run":
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return []
        return _text(value, nonempty=True)
    if kind == "sleep":
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            return [f"{value!r} is not a number of seconds (e.g. 0.5)"]
        return []
    if kind == "offer" and isinstance(value, dict):  # commit: false offers what is committed
        return _check_mapping(value, required={}, optional={"summary": _text, "commit": _flag})
    if kind in ("patch", "progress", "commit", "help", "offer"):
        return _text(value, nonempty=True)
    if kind == "escape":
        return _check_mapping(
            value,
            required={"finding": _nonempty_text},
            optional={"files": _paths, "intent": _text, "severity": _severity},
        )
    if kind == "fail":
        return _check_mapping(value, required={"reason": _text}, optional={"type": _text})
    if kind == "crash":
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
            return [f"{value!r} is not an exit code (0-255)"]
        return []
    if value is not True:  # hang
        return [f"{value!r}: write 'hang: true'"]
    return []


Checker = t.Callable[[object], list[str]]


def _flag(value: object) -> list[str]:
    return [] if isinstance(value, bool) else [f"{value!r} is not true or false"]


def _check_mapping(
    value: object, *, required: dict[str, Checker], optional: dict[str, Checker]
) -> list[str]:
    keys = ", ".join([*required, *optional])
    if not isinstance(value, dict):
        return [f"{value!r} is not a mapping; give the keys {keys}"]
    problems: list[str] = []
    for key in value:
        if key not in required and key not in optional:
            problems.append(f"unknown key {key!r}; use {keys}")
    for key, check in required.items():
        if key not in value:
            problems.append(f"missing key {key!r}")
        else:
            problems.extend(f"{key}: {problem}" for problem in check(value[key]))
    for key, check in optional.items():
        if key in value:
            problems.extend(f"{key}: {problem}" for problem in check(value[key]))
    return problems


def _text(value: object, *, nonempty: bool = False) -> list[str]:
    if not isinstance(value, str):
        return [f"{value!r} is not a string"]
    if nonempty and not value.strip():
        return ["is empty"]
    return []


def _nonempty_text(value: object) -> list[str]:
    return _text(value, nonempty=True)


def _path(value: object) -> list[str]:
    if not isinstance(value, str):
        return [f"{value!r} is not a path string"]
    try:
        normalize(value)
    except ValueError as exc:
        return [str(exc)]
    return []


def _paths(value: object) -> list[str]:
    if not isinstance(value, list | tuple):
        return [f"{value!r} is not a list of paths"]
    return [problem for item in value for problem in _path(item)]


def _severity(value: object) -> list[str]:
    if value not in _SEVERITIES:
        return [f"{value!r} is not one of {', '.join(_SEVERITIES)}"]
    return []
