"""Import agentops TaskCreate JSON: the task packets agentops' ``/swarm`` lead creates.

A JSON array (or ``{"tasks": [...]}``) of ``{subject, description, blockedBy, metadata: {files,
issue_type, validation, ...}}``. A fenced ```` ```validation ```` block in the description is
read as agentops' ``/crank`` reads it (``metadata.validation`` wins key by key), and
``metadata.validation.test_levels`` is carried into the task's metadata for the brief. Ids
come from ``id``/``taskId`` when present, otherwise from the position (``"1"``, ``"2"``, ... as
TaskList numbers them), and ``blockedBy`` refers to them.
"""

from __future__ import annotations

import logging
import typing as t

from runner.plan.importers.common import (
    Problems,
    id_list,
    manifest,
    parse_json,
    scope,
    task_id,
    text,
    validation,
)

logger = logging.getLogger(__name__)

_MARKERS: t.Final = frozenset({"blockedBy", "activeForm", "taskId"})
_META_MARKERS: t.Final = frozenset({"files", "issue_type", "validation"})
_STATUSES: t.Final = {"pending": "todo", "in_progress": "todo", "completed": "done"}


def _entries(doc: object) -> list[t.Any] | None:
    if isinstance(doc, dict) and set(doc) == {"tasks"}:
        doc = doc["tasks"]
    return doc if isinstance(doc, list) else None


def looks_like_taskcreate(doc: object) -> bool:
    """TaskCreate packets: every entry has a ``subject``; some carry agentops keys
    (``blockedBy``, ``activeForm``, ``metadata.files``...), and none our own ``files``/``id``
    plan keys together."""
    entries = _entries(doc)
    if not entries or not all(isinstance(e, dict) and "subject" in e for e in entries):
        return False
    if any("files" in e or "blocked_by" in e for e in entries):
        return False
    return any(
        _MARKERS & set(e)
        or (isinstance(e.get("metadata"), dict) and _META_MARKERS & set(e["metadata"]))
        or "id" not in e
        for e in entries
    )


def import_taskcreate(raw: str, problems: Problems) -> dict[str, t.Any]:
    entries = _entries(parse_json(raw, problems, "agentops TaskCreate"))
    if entries is None:
        problems.fail("expected a JSON array of TaskCreate objects (subject, description, ...)")
    if not entries:
        problems.fail("no tasks: the TaskCreate array is empty")
    rows: list[tuple[str, str, dict[str, t.Any]]] = []
    seen: dict[str, str] = {}
    for index, entry in enumerate(entries):
        where = f"tasks[{index}]"
        if not isinstance(entry, dict):
            problems.add(where, "not a TaskCreate object")
            continue
        raw_id = entry.get("id", entry.get("taskId", index + 1))
        tid = task_id(raw_id, problems, where)
        if tid is None:
            continue
        if tid in seen:
            problems.add(f"{where} ({tid})", f"id: duplicate of {seen[tid]}")
            continue
        seen[tid] = where
        rows.append((tid, f"task {tid}", entry))
    problems.raise_if_any()
    tasks = [_task(tid, where, entry, set(seen), problems) for tid, where, entry in rows]
    problems.raise_if_any()
    return {"tasks": tasks}


def _task(
    tid: str, where: str, entry: dict[str, t.Any], known: set[str], problems: Problems
) -> dict[str, t.Any]:
    subject = entry.get("subject")
    if not isinstance(subject, str) or not subject.strip():
        problems.add(where, "subject: missing; every TaskCreate has a one-line subject")
        subject = ""
    meta = entry.get("metadata") or {}
    if not isinstance(meta, dict):
        problems.add(where, f"metadata: {meta!r} is not an object")
        meta = {}
    meta = dict(meta)
    task: dict[str, t.Any] = {"id": tid, "subject": subject}
    description = text(entry.get("description")).strip()
    if description:
        task["description"] = description
    files = manifest(meta.pop("files", None), problems, where, "metadata.files")
    task.update(scope(files))
    blocked_by = id_list(
        entry.get("blockedBy", entry.get("blocked_by")), problems, where, "blockedBy"
    )
    for dep in blocked_by:
        if dep not in known:
            problems.add(where, f"blockedBy: unknown task {dep!r}")
    if blocked_by:
        task["blocked_by"] = blocked_by
    issue_type = meta.pop("issue_type", None)
    if issue_type is not None:
        if isinstance(issue_type, str) and issue_type:
            task["issue_type"] = issue_type
        else:
            problems.add(where, f"metadata.issue_type: {issue_type!r} is not a string")
    checks, carried = validation(
        meta.pop("validation", None), description, problems, where, "metadata.validation"
    )
    if checks:
        task["validation"] = checks
    meta.update(carried)
    status = entry.get("status")
    if status is not None:
        mapped = _STATUSES.get(str(status))
        if mapped is None:
            problems.add(where, f"status: {status!r} is not pending, in_progress or completed")
        elif mapped == "done":
            task["status"] = "done"
    if meta:
        task["metadata"] = meta
    return task
