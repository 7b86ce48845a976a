"""The id check, without pydantic: what :mod:`protocol.base` builds its ``Id`` type on, and what
the fast send path of ``swarm worker`` (no pydantic import) validates names with."""

from __future__ import annotations

import re
import typing as t

ID_PATTERN: t.Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_ID_RE: t.Final = re.compile(ID_PATTERN)


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
