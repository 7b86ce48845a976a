"""The plan: tasks, manifests, validation checks, gates and budgets (DESIGN.md "Plan").

Graph checks (cycles, unknown dependencies) live in :mod:`protocol.plangraph`; manifest
normalization and the lock-overlap predicate in :mod:`protocol.manifest`.
"""

from __future__ import annotations

import difflib
import re
import string
import typing as t

from pydantic import Field, field_validator

from protocol.base import Id, Model, TaskId

Concurrency = t.Literal["read-only", "write-local", "write-shared"]
Severity = t.Literal["low", "medium", "high", "critical"]
GateFamily = t.Literal["I", "O", "S", "M"]
Isolation = t.Literal["worktree", "clone", "sandbox"]
"""How a worker's checkout is kept apart (docs/isolation.md): a ``git worktree`` of the
repository, its own ``git clone --shared``, or that clone inside a bubblewrap sandbox."""

DEFAULT_EFFORT_MINUTES: t.Final = 120
_EFFORT_SIZES: t.Final = {"S": 30, "M": 150, "L": 480, "XL": 720}
_EFFORT_RE: t.Final = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*(h|hr|hours?|m|min|mins|minutes?)\s*$")


def effort_minutes(effort: str | None) -> float:
    """Minutes for an effort string: ``S``/``M``/``L``/``XL``, ``2h``, ``30min``, ``30m``."""
    if effort is None:
        return DEFAULT_EFFORT_MINUTES
    size = _EFFORT_SIZES.get(effort.strip().upper())
    if size is not None:
        return size
    match = _EFFORT_RE.match(effort)
    if not match:
        raise ValueError(f"bad effort {effort!r}: use S, M, L, XL, Nh or Nmin (e.g. 2h, 30min)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return number * 60 if unit.startswith("h") else number


_DURATION_RE: t.Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """Seconds for ``90s``, ``30m``, ``2h`` or plain seconds."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"bad duration {value!r}: use 90s, 30m, 2h or plain seconds")
    if isinstance(value, int | float):
        if value <= 0:
            raise ValueError(f"bad duration {value!r}: must be positive")
        return float(value)
    match = _DURATION_RE.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"bad duration {value!r}: use 90s, 30m, 2h or plain seconds")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


class ContentCheck(Model):
    file: str
    pattern: str


class CustomCheck(Model):
    name: str
    command: str


class Validation(Model):
    """agentops ``metadata.validation``; checks run in this field order."""

    files_exist: tuple[str, ...] = ()
    content_check: tuple[ContentCheck, ...] = ()
    lint: str | None = None
    tests: str | None = None
    command: str | None = None
    custom: tuple[CustomCheck, ...] = ()

    @field_validator("content_check", "custom", mode="before")
    @classmethod
    def _one_or_many(cls, value: t.Any) -> t.Any:
        return [value] if isinstance(value, dict) else value

    @property
    def empty(self) -> bool:
        return self == Validation()


ScriptStep = dict[str, t.Any]
"""One scripted-agent step: a one-key mapping, optionally with ``attempt: N``."""


class Task(Model):
    id: TaskId
    subject: str = ""
    description: str = ""
    files: tuple[str, ...] = ()
    concurrency: Concurrency = "write-local"
    blocked_by: tuple[str, ...] = ()
    issue_type: str = "task"
    priority: int = 0
    severity: Severity = "medium"
    effort: str | None = None
    acceptance: tuple[str, ...] = ()
    needs_user_input: bool = False
    allow_empty: bool = False
    """An offer that changes nothing is accepted (merged with no changes) instead of refused."""
    status: t.Literal["todo", "done"] = "todo"
    validation: Validation = Field(default_factory=Validation)
    agent: str | None = None
    timeout: float | None = None
    script: tuple[ScriptStep, ...] | None = None
    metadata: dict[str, t.Any] = Field(default_factory=dict)

    @field_validator("acceptance", mode="before")
    @classmethod
    def _acceptance_list(cls, value: t.Any) -> t.Any:
        return [value] if isinstance(value, str) else value

    @field_validator("effort")
    @classmethod
    def _effort(cls, value: str | None) -> str | None:
        effort_minutes(value)
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: t.Any) -> t.Any:
        return None if value is None else parse_duration(value)

    @property
    def title(self) -> str:
        return self.subject or self.id

    @property
    def minutes(self) -> float:
        return effort_minutes(self.effort)

    @property
    def writes(self) -> bool:
        return self.concurrency != "read-only"


class Threshold(Model):
    """A number the gate command prints: ``pattern`` captures it (first group), then bounds."""

    pattern: str
    min: float | None = None
    max: float | None = None


class Gate(Model):
    name: Id
    command: str
    family: GateFamily = "I"
    fast: bool = True
    """Run after every merge as well as at the end (slow gates only at the end)."""
    threshold: Threshold | None = None
    timeout: float | None = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: t.Any) -> t.Any:
        return None if value is None else parse_duration(value)


def _default_family_budgets() -> dict[GateFamily, int]:
    return {"I": 5, "O": 8, "M": 4, "S": 3}


class Budgets(Model):
    spawns: int = Field(default=20, ge=0)
    family: dict[GateFamily, int] = Field(default_factory=_default_family_budgets)
    iterations: int = Field(default=50, ge=1)
    max_attempts: int = Field(default=3, ge=1)
    max_fixups: int = Field(default=3, ge=0)


NOTIFY_PLACEHOLDERS: t.Final = ("event", "task", "run", "status", "message")
"""What a ``notify`` hook template may name (``runner.notify.Note``)."""


def check_notify(template: str | None) -> str | None:
    """``template`` if every ``{placeholder}`` in it is known; ValueError naming the bad one,
    with the near match, else."""
    if template is None:
        return None
    try:
        fields = [
            (name, spec, conversion)
            for _, name, spec, conversion in string.Formatter().parse(template)
            if name is not None
        ]
    except ValueError as exc:
        raise ValueError(
            f"bad template {template!r}: {exc}; write {{{{ and }}}} for braces"
        ) from None
    known = ", ".join(f"{{{name}}}" for name in NOTIFY_PLACEHOLDERS)
    for name, spec, conversion in fields:
        if name not in NOTIFY_PLACEHOLDERS:
            near = difflib.get_close_matches(name, NOTIFY_PLACEHOLDERS, n=1)
            hint = f"did you mean {{{near[0]}}}? " if near else ""
            raise ValueError(f"unknown placeholder {{{name}}} in {template!r}: {hint}use {known}")
        if spec or conversion:  # either would change the shell-quoted value
            raise ValueError(f"write {{{name}}} alone in {template!r}: no ':' or '!' after it")
    if not template.strip():
        raise ValueError("an empty notify command: give a command, e.g. 'notify-me {event} {task}'")
    return template


class Plan(Model):
    version: t.Literal[1] = 1
    name: str = ""
    base: str | None = None
    target: str | None = None
    max_workers: int | None = Field(default=None, ge=1)
    agent: str | None = None
    isolation: Isolation | None = None
    """Each worker's checkout: ``worktree`` (default), ``clone`` or ``sandbox``."""
    gates: tuple[Gate, ...] = ()
    setup: tuple[str, ...] = ()
    """Shell commands run in each new worktree before its agent starts (install dependencies,
    copy an env file); a failing one fails the start, with its output in ``setup.log``."""
    budgets: Budgets = Field(default_factory=Budgets)
    notify: str | None = None
    """A shell command run (fire and forget) when a help request arrives, a task fails for
    good or the run ends; placeholders as in :data:`NOTIFY_PLACEHOLDERS`, shell-quoted."""
    tasks: tuple[Task, ...]

    @field_validator("notify")
    @classmethod
    def _notify(cls, value: str | None) -> str | None:
        return check_notify(value)

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)
