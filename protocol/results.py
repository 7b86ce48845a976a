"""Worker results (agentops worker-result schema) and scope-escape records (JSONL lines)."""

from __future__ import annotations

import typing as t
from datetime import datetime

from pydantic import Field, model_validator

from protocol.base import Id, Model
from protocol.messages import utcnow
from protocol.plan import Severity


class Check(Model):
    name: str
    verdict: t.Literal["PASS", "FAIL", "SKIP"]
    detail: str = ""


class Evidence(Model):
    required_checks: tuple[t.Literal["red_green", "full_suite"], ...] = ()
    checks: tuple[Check, ...] = ()


class WorkerResult(Model):
    """``results/<task-id>.json``: what a worker says it did (agentops schema, no extra keys)."""

    type: t.Literal["completion", "blocked"]
    issue_id: Id
    status: t.Literal["done", "blocked"]
    detail: str = Field(min_length=1, max_length=400)
    artifacts: tuple[str, ...] | None = None
    worktree_path: str | None = None
    evidence: Evidence | None = None

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
