"""Worker results (agentops ``swarm-worker-result`` schema) and scope-escape records (JSONL lines).

:class:`WorkerResult` is agentops' ``docs/contracts/swarm-worker-result.schema.json`` (schema
version 1) as a model: whatever it accepts and writes validates against that schema (the test
suite checks every result it writes with ``jsonschema``). ``artifacts`` are de-duplicated here,
so a worker that names a file twice still writes a valid result.
"""

from __future__ import annotations

import typing as t
from datetime import datetime

from pydantic import Field, field_validator, model_validator

from protocol.base import SCHEMA_VERSION, Id, Model
from protocol.messages import utcnow
from protocol.plan import Severity

RequiredCheck = t.Literal["red_green", "full_suite"]


def _unique_paths(value: t.Any) -> t.Any:
    """Paths in first-seen order, each once, blank entries dropped (the schema's ``uniqueItems``
    and ``minLength: 1``); anything that is not a list is left for pydantic to refuse."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return value
    out: dict[str, None] = {}
    for item in value:
        if isinstance(item, str):
            if item.strip():
                out.setdefault(item, None)
        else:
            return value  # not a string: let the type check name it
    return tuple(out)


class EvidenceCheck(Model):
    """One entry of ``evidence.checks`` (schema ``$defs.evidence_check``)."""

    verdict: t.Literal["PASS", "FAIL", "SKIP"]
    command: str | None = None
    exit_code: int | None = None
    summary: str | None = None
    run_at: datetime | None = None
    artifacts: tuple[str, ...] | None = None

    @field_validator("artifacts", mode="before")
    @classmethod
    def _unique(cls, value: t.Any) -> t.Any:
        return _unique_paths(value)


class Evidence(Model):
    """Validation evidence for fail-closed wave acceptance (schema ``$defs.evidence``): the
    checks the task requires, and the results keyed by check name."""

    required_checks: tuple[RequiredCheck, ...] = Field(min_length=1)
    checks: dict[str, EvidenceCheck] = Field(min_length=1)

    @field_validator("required_checks", mode="before")
    @classmethod
    def _once_each(cls, value: t.Any) -> t.Any:
        if isinstance(value, list | tuple):
            return tuple(dict.fromkeys(value))
        return value

    @model_validator(mode="after")
    def _required_present(self) -> Evidence:
        missing = [name for name in self.required_checks if name not in self.checks]
        if missing:
            raise ValueError(f"required checks without evidence: {', '.join(missing)}")
        return self


class WorkerResult(Model):
    """``results/<task-id>.json``: what a worker says it did (agentops schema, no extra keys)."""

    schema_version: t.Literal[1] = SCHEMA_VERSION
    type: t.Literal["completion", "blocked"]
    issue_id: Id
    status: t.Literal["done", "blocked"]
    detail: str = Field(min_length=1, max_length=400)
    artifacts: tuple[str, ...] | None = None
    worktree_path: str | None = Field(default=None, min_length=1)
    evidence: Evidence | None = None

    @field_validator("artifacts", mode="before")
    @classmethod
    def _unique(cls, value: t.Any) -> t.Any:
        return _unique_paths(value)

    @model_validator(mode="after")
    def _consistent(self) -> WorkerResult:
        if (self.type == "completion") != (self.status == "done"):
            raise ValueError("type 'completion' goes with status 'done', 'blocked' with 'blocked'")
        if self.type == "completion" and self.artifacts is None:
            raise ValueError("a completion result needs 'artifacts'")
        return self


class ScopeEscape(Model):
    """One line of ``scope-escapes.jsonl``: agentops fields plus task, run, intent, severity."""

    worker: str
    finding: str = Field(min_length=1)
    suggested_files: tuple[str, ...] = ()
    timestamp: datetime = Field(default_factory=utcnow)
    task_id: Id | None = None
    run_id: Id | None = None
    intent: str = ""
    severity: Severity = "medium"
