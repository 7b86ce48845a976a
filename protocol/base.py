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

    Ids become file names, branch names and tmux session names, so anything that could
    traverse (``/``, ``..``), split (whitespace) or reach a shell (metacharacters) is refused.
    """
    if not isinstance(value, str) or not _ID_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid id {value!r}: use 1-64 of letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, and no '..'"
        )
    return value


Id = t.Annotated[str, AfterValidator(check_id)]
"""A validated id: task ids, agent names, run ids, thread ids."""
