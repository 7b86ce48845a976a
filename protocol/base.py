"""Shared pydantic base and the id type used by every file and wire format."""

from __future__ import annotations

import typing as t

from pydantic import AfterValidator, BaseModel, ConfigDict

from protocol.ids import ID_PATTERN as ID_PATTERN  # re-exported: the formats' one id rule
from protocol.ids import check_id as check_id

SCHEMA_VERSION: t.Final = 1


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
