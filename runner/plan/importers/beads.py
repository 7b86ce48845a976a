"""Import beads issues: a ``bd ready --json`` document or a ``.beads/issues.jsonl`` export.

The ``bd ready --json`` document is a bare array or an ``{"issues": [...]}`` /
``{"beads": [...]}`` envelope (agentops' Go adapter accepts all three). Open, unblocked issues
become tasks; ``--bead-ids a,b`` picks exactly those issues instead (agentops: the list replaces
``bd ready``), keeping the dependencies among them as ``blocked_by``.
"""

from __future__ import annotations

import json
import logging
import typing as t

from runner.plan.importers.common import (
    Problems,
    manifest,
    parse_json,
    priority,
    scope,
    task_id,
    text,
)

logger = logging.getLogger(__name__)

BLOCKING: t.Final = frozenset({"blocks", "conditional-blocks", "waits-for"})
"""Dependency types that keep an issue out of ``bd ready`` (``parent-child`` is containment)."""
NOT_WORK: t.Final = frozenset({"epic", "message", "gate", "event", "molecule", "merge-request"})
DONE: t.Final = frozenset({"closed", "tombstone"})
_SEVERITY: t.Final = {0: "critical", 1: "high", 2: "medium"}


class _Issue(t.NamedTuple):
    id: str
    where: str
    raw: dict[str, t.Any]

    @property
    def status(self) -> str:
        status = self.raw.get("status")
        return status if isinstance(status, str) and status else "open"

    @property
    def kind(self) -> str:
        kind = self.raw.get("issue_type") or self.raw.get("type")
        return kind if isinstance(kind, str) and kind else "task"


class _Dep(t.NamedTuple):
    target: str
    type: str
    status: str | None
    """The target's status when the dependency carries it (``bd show --json``)."""


def looks_like_beads(doc: object) -> bool:
    """A bare array of issues (``title`` without ``subject``) or an issues/beads envelope."""
    if isinstance(doc, dict):
        envelope = any(isinstance(doc.get(key), list) for key in ("issues", "beads"))
        return envelope and "tasks" not in doc
    if isinstance(doc, list) and doc and all(isinstance(item, dict) for item in doc):
        return all("title" in item and "subject" not in item for item in doc) and not any(
            "files" in item for item in doc
        )
    return False


def read_issues(raw: str, problems: Problems) -> tuple[list[dict[str, t.Any]], bool]:
    """The issue objects and whether the input is a full ``issues.jsonl`` export."""
    stripped = raw.strip()
    if not stripped:
        problems.fail("empty; give a 'bd ready --json' document or .beads/issues.jsonl")
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError:
        if not stripped.startswith("{"):
            parse_json(stripped, problems, "beads")  # records the position and raises
    else:
        if isinstance(doc, dict):
            key = next((k for k in ("issues", "beads") if isinstance(doc.get(k), list)), None)
            if key is None and "id" in doc:
                return [doc], True  # an issues.jsonl with one line
            if key is None:
                problems.fail("expected an array of issues or an {issues: [...]} envelope")
            doc = doc[key]
        if not isinstance(doc, list) or not all(isinstance(item, dict) for item in doc):
            problems.fail("expected an array of issue objects (as 'bd ready --json' prints)")
        return list(doc), False
    issues: list[dict[str, t.Any]] = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(f"line {number}", f"invalid JSON: {exc.msg}")
            continue
        if not isinstance(item, dict):
            problems.add(f"line {number}", "not an issue object")
            continue
        issues.append(item)
    problems.raise_if_any()
    return issues, True


def import_beads(raw: str, problems: Problems, bead_ids: t.Sequence[str] = ()) -> dict[str, t.Any]:
    docs, full_export = read_issues(raw, problems)
    issues: dict[str, _Issue] = {}
    for index, item in enumerate(docs):
        where = f"issue[{index}]"
        bead = task_id(item.get("id"), problems, where)
        if bead is None:
            continue
        if bead in issues:
            problems.add(f"{where} ({bead})", f"id: duplicate of {issues[bead].where}")
            continue
        issues[bead] = _Issue(bead, where, item)
    problems.raise_if_any()

    if bead_ids:
        chosen = _requested(issues, bead_ids, full_export, problems)
    else:
        chosen = _ready(issues, full_export, problems)
    problems.raise_if_any()
    if not chosen:
        problems.fail("no open, unblocked issues: nothing to run (bd ready would be empty)")
    selected = {issue.id for issue in chosen}
    tasks = [_task(issue, selected, issues, full_export, problems) for issue in chosen]
    problems.raise_if_any()
    return {"tasks": tasks}


def _deps(issue: _Issue, problems: Problems) -> list[_Dep]:
    value = issue.raw.get("dependencies") or []
    if not isinstance(value, list):
        problems.add(f"bead {issue.id}", "dependencies: not a list")
        return []
    deps: list[_Dep] = []
    for item in value:
        if isinstance(item, str):
            deps.append(_Dep(item, "blocks", None))
            continue
        if not isinstance(item, dict):
            problems.add(f"bead {issue.id}", f"dependencies: {item!r} is not an object")
            continue
        owner = item.get("issue_id")
        if owner not in (None, issue.id):
            continue
        target = item.get("depends_on_id", item.get("id"))
        kind = item.get("type") or item.get("dependency_type") or "blocks"
        if not isinstance(target, str) or not isinstance(kind, str):
            problems.add(f"bead {issue.id}", f"dependencies: {item!r} names no issue")
            continue
        status = item.get("status") if "depends_on_id" not in item else None
        deps.append(_Dep(target, kind, status if isinstance(status, str) else None))
    return deps


def _blockers(
    issue: _Issue, issues: dict[str, _Issue], full_export: bool, problems: Problems
) -> list[tuple[str, str]]:
    """The (id, status) of every open blocker. An unknown target in a full export is a problem;
    in a ``bd ready`` document it is trusted as closed (bd listed the issue as ready)."""
    out: list[tuple[str, str]] = []
    for dep in _deps(issue, problems):
        if dep.type not in BLOCKING:
            continue
        status = dep.status
        if dep.target in issues:
            status = issues[dep.target].status
        if status is None:
            if full_export:
                problems.add(
                    f"bead {issue.id}",
                    f"dependencies: unknown issue {dep.target!r}; the export is incomplete",
                )
            continue
        if status not in DONE:
            out.append((dep.target, status))
    return out


def _ready(issues: dict[str, _Issue], full_export: bool, problems: Problems) -> list[_Issue]:
    ready: list[_Issue] = []
    for issue in issues.values():
        if issue.status != "open" or issue.kind in NOT_WORK:
            continue
        blockers = _blockers(issue, issues, full_export, problems)
        if blockers:
            logger.debug("skipped blocked bead", extra={"bead_id": issue.id})
            continue
        ready.append(issue)
    return ready


def _requested(
    issues: dict[str, _Issue],
    bead_ids: t.Sequence[str],
    full_export: bool,
    problems: Problems,
) -> list[_Issue]:
    chosen: list[_Issue] = []
    wanted = list(dict.fromkeys(bead_ids))
    for bead in wanted:
        issue = issues.get(bead)
        if issue is None:
            problems.add(f"--bead-ids {bead}", "not in the input; check the id or re-export")
        elif issue.status != "open":
            problems.add(f"bead {bead}", f"status is {issue.status!r}; only open beads can run")
        elif issue.kind in NOT_WORK:
            problems.add(
                f"bead {bead}", f"is a {issue.kind}, not work; list its child issues instead"
            )
        else:
            for target, status in _blockers(issue, issues, full_export, problems):
                if target not in wanted:
                    problems.add(
                        f"bead {bead}",
                        f"blocked by {target} ({status}); add {target} to --bead-ids or "
                        "finish it first",
                    )
            chosen.append(issue)
    return chosen


def _task(
    issue: _Issue,
    selected: set[str],
    issues: dict[str, _Issue],
    full_export: bool,
    problems: Problems,
) -> dict[str, t.Any]:
    raw = issue.raw
    where = f"bead {issue.id}"
    meta = raw.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            meta = None
    meta = meta if isinstance(meta, dict) else {}
    task: dict[str, t.Any] = {"id": issue.id, "subject": text(raw.get("title"))}
    parts = [text(raw.get("description")).strip()]
    for key, label in (("design", "Design"), ("notes", "Notes")):
        if text(raw.get(key)).strip():
            parts.append(f"{label}:\n{text(raw.get(key)).strip()}")
    description = "\n\n".join(part for part in parts if part)
    if description:
        task["description"] = description
    task.update(scope(manifest(meta.get("files"), problems, where, "metadata.files")))
    deps = [
        target
        for target, _status in _blockers(issue, issues, full_export, Problems(""))
        if target in selected
    ]
    if deps:
        task["blocked_by"] = deps
    task["issue_type"] = issue.kind
    prio = priority(raw.get("priority"), problems, where, "priority")
    if prio is not None:
        task["priority"] = prio
        task["severity"] = _SEVERITY.get(prio, "low") if prio >= 0 else "critical"
    minutes = raw.get("estimated_minutes")
    if isinstance(minutes, int) and not isinstance(minutes, bool) and minutes > 0:
        task["effort"] = f"{minutes}min"
    criteria = text(raw.get("acceptance_criteria"))
    items = [line.strip().lstrip("-*").strip() for line in criteria.splitlines()]
    if any(items):
        task["acceptance"] = [item for item in items if item]
    if isinstance(meta.get("validation"), dict):
        task["validation"] = meta["validation"]
    task["metadata"] = {"bead_id": issue.id}
    return task
