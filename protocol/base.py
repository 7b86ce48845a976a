"""Shared pydantic base and the id type used by every file and wire format."""

from __future__ import annotations

import re
import typing as t

from pydantic import AfterValidator, BaseModel, ConfigDict

SCHEMA_VERSION: t.Final = 1

ID_PATTERN: t.Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_ID_RE: t.Final = re.compile(ID_PATTERN)


class Model(BaseModel):
    """Base of every protocol model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        populate_by_name=True,
        serialize_by_alias=True,
        validate_by_alias=True,
        validate_by_name=True,
    )


def check_id(value: str) -> str:
    """Return ``value`` if it is a safe id (task, agent, run, thread), else raise ValueError.

    Ids become file names, branch components (``swarm/<run-id>/<task-id>``) and tmux session
    names, so anything that could traverse (``/``, ``..``), split (whitespace) or reach a shell
    (metacharacters) is refused, and so is every name ``git check-ref-format`` refuses as a
    branch component: one ending in ``.`` or ``.lock`` (the others are already outside the
    alphabet, or start with ``.``, which the alphabet does not allow either).
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid id {value!r}: use 1-64 of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'"
        )
    if value.endswith("."):
        raise ValueError(f"invalid id {value!r}: git refuses names ending in '.'; drop the dot")
    if value.lower().endswith(".lock"):
        raise ValueError(
            f"invalid id {value!r}: git refuses names ending in '.lock'; rename it (e.g. "
            f"{value[:-5] + '-lock'!r})"
        )
    return value


RESERVED_TASK_IDS: t.Final = frozenset({"mayor", "human", "integration"})
"""Names a task cannot take: the mayor's and the human's mail identities (a task's id is its
worker's identity), and the integration branch and worktree (``swarm/<run-id>/integration``).
Compared case-insensitively, since mail folders may live on a case-insensitive file system."""


def check_task_id(value: str) -> str:
    """Return ``value`` if it can name a task: a safe id (:func:`check_id`) that is not reserved."""
    check_id(value)
    if value.casefold() in RESERVED_TASK_IDS:
        reserved = ", ".join(sorted(RESERVED_TASK_IDS))
        raise ValueError(
            f"invalid task id {value!r}: reserved ({reserved} name the run's own parts); rename it"
        )
    return value


Id = t.Annotated[str, AfterValidator(check_id)]
"""A validated id: task ids, agent names, run ids, thread ids."""

TaskId = t.Annotated[str, AfterValidator(check_task_id)]
"""A validated task id: an :data:`Id` that is not one of :data:`RESERVED_TASK_IDS`."""
