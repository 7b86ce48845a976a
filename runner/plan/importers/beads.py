"""Import beads issues: a ``bd ready --json`` document or a ``.beads/issues.jsonl`` export.

The ``bd ready --json`` document is a bare array or an ``{"issues": [...]}`` /
``{"beads": [...]}`` envelope (agentops' Go adapter accepts all three). Without ``--bead-ids``
the importer selects what ``bd ready`` selects, by beads' own rules (``GetReadyWorkInTx`` and the
``is_blocked`` computation of ``internal/storage/issueops``; docs/importers.md lists them):

- status ``open``; not ``pinned``; not ``ephemeral`` (wisps, merge requests, messages); not
  deferred (``defer_until`` in the future, or a child of such a parent); and not one of the
  non-work types ``bd ready`` excludes (:data:`NOT_WORK`). Epics are work to ``bd ready``.
- not blocked: an issue is blocked by a ``blocks`` or ``conditional-blocks`` dependency on an
  issue that is neither ``closed`` nor ``pinned``; by a ``waits-for`` dependency while the
  target has a child that is neither ``closed`` nor ``pinned`` (with the ``any-children`` gate:
  until one child is closed); and by a ``parent-child`` dependency on a blocked parent.

``--bead-ids a,b`` picks exactly those issues instead (agentops: the list replaces ``bd
ready``), and what blocks one of them must be in the list too: it becomes ``blocked_by``.
"""

from __future__ import annotations

import json
import logging
import typing as t
from datetime import UTC, datetime

from runner.plan.importers.common import (
    Problems,
    manifest,
    parse_json,
    priority,
    scope,
    task_id,
    text,
    validation,
)

logger = logging.getLogger(__name__)

BLOCKS: t.Final = frozenset({"blocks", "conditional-blocks"})
"""Dependency types whose target blocks while it is neither closed nor pinned. With
``parent-child`` and ``waits-for`` they are beads' ``AffectsReadyWork`` types; ``related``,
``discovered-from``, ``tracks``... never block."""
NOT_WORK: t.Final = ("merge-request", "gate", "molecule", "message", "agent", "role", "rig")
"""The issue types ``bd ready`` never lists (beads ``readyWorkExcludeTypes``)."""
INACTIVE: t.Final = frozenset({"closed", "pinned", "tombstone"})
"""Statuses that block nothing and are never blocked (a tombstone is a deleted issue, and a
deleted blocker blocks nothing in beads)."""
_SEVERITY: t.Final = {0: "critical", 1: "high", 2: "medium"}


class _Dep(t.NamedTuple):
    target: str
    type: str
    status: str | None
    """The target's status when the dependency carries it (``bd show --json``)."""
    gate: str
    """``waits-for`` gate: ``all-children`` (default) or ``any-children``."""


class _Issue(t.NamedTuple):
    id: str
    where: str
    raw: dict[str, t.Any]
    deps: tuple[_Dep, ...]

    @property
    def status(self) -> str:
        status = self.raw.get("status")
        return status if isinstance(status, str) and status else "open"

    @property
    def kind(self) -> str:
        kind = self.raw.get("issue_type") or self.raw.get("type")
        return kind if isinstance(kind, str) and kind else "task"

    @property
    def ephemeral(self) -> bool:
        return self.raw.get("ephemeral") is True

    @property
    def pinned(self) -> bool:
        return self.raw.get("pinned") is True

    @property
    def parents(self) -> tuple[str, ...]:
        found = [dep.target for dep in self.deps if dep.type == "parent-child"]
        return tuple(dict.fromkeys(found))


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


def _json_object(value: object) -> dict[str, t.Any]:
    """A metadata value: an object, or a JSON string of one (beads stores both); else empty."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}


def _deps(bead: str, raw: dict[str, t.Any], problems: Problems) -> tuple[_Dep, ...]:
    value = raw.get("dependencies") or []
    if not isinstance(value, list):
        problems.add(f"bead {bead}", "dependencies: not a list")
        return ()
    deps: list[_Dep] = []
    for item in value:
        if isinstance(item, str):
            deps.append(_Dep(item, "blocks", None, ""))
            continue
        if not isinstance(item, dict):
            problems.add(f"bead {bead}", f"dependencies: {item!r} is not an object")
            continue
        owner = item.get("issue_id")
        if owner not in (None, bead):
            continue
        target = item.get("depends_on_id", item.get("id"))
        kind = item.get("type") or item.get("dependency_type") or "blocks"
        if not isinstance(target, str) or not isinstance(kind, str):
            problems.add(f"bead {bead}", f"dependencies: {item!r} names no issue")
            continue
        status = item.get("status") if "depends_on_id" not in item else None
        gate = _json_object(item.get("metadata")).get("gate")
        deps.append(
            _Dep(
                target,
                kind,
                status if isinstance(status, str) else None,
                gate if isinstance(gate, str) else "",
            )
        )
    parent = raw.get("parent")
    if isinstance(parent, str) and parent and all(d.target != parent for d in deps):
        deps.append(_Dep(parent, "parent-child", None, ""))
    return tuple(deps)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class _Blocked(t.NamedTuple):
    """Why an issue is blocked (``reasons``) or cannot be judged (``unknown``)."""

    reasons: tuple[str, ...]
    unknown: tuple[str, ...]
    blockers: frozenset[str]
    """Every issue whose completion the blocked state waits on (blockers, open children of a
    waits-for target, and the blockers of blocked ancestors)."""


class Graph:
    """beads' blocked state of every issue of an export, computed as its SQL does.

    Direct causes first (an open ``blocks`` target, a ``waits-for`` target with open children),
    then propagated to children through ``parent-child`` (a closed or pinned child is never
    blocked). A dependency on an issue missing from the input cannot be judged: in a full
    export it makes the dependent *unknown* (an unexported wisp may well be open); in a ``bd
    ready`` document the dependency's own ``status`` is used, else bd's verdict is trusted.
    """

    def __init__(self, issues: dict[str, _Issue], *, full_export: bool) -> None:
        self.issues = issues
        self.full_export = full_export
        self.children: dict[str, list[str]] = {}
        for issue in issues.values():
            for parent in issue.parents:
                self.children.setdefault(parent, []).append(issue.id)
        self._direct: dict[str, _Blocked] = {}
        for issue in issues.values():
            if issue.status not in INACTIVE:
                found = self._direct_causes(issue)
                if found.reasons or found.unknown:
                    self._direct[issue.id] = found
        self.blocked = self._propagate()

    def status(self, bead: str) -> str | None:
        issue = self.issues.get(bead)
        return issue.status if issue is not None else None

    def _direct_causes(self, issue: _Issue) -> _Blocked:
        reasons: list[str] = []
        unknown: list[str] = []
        blockers: set[str] = set()
        for dep in issue.deps:
            if dep.type in BLOCKS:
                status = self.status(dep.target) or dep.status
                if status is None:
                    if self.full_export:
                        unknown.append(
                            f"{dep.type} {dep.target}, which is not in the export (an ephemeral "
                            "wisp is never exported)"
                        )
                elif status not in INACTIVE:
                    reasons.append(f"{dep.target} ({status})")
                    blockers.add(dep.target)
            elif dep.type == "waits-for":
                kids = [self.issues[kid] for kid in self.children.get(dep.target, ())]
                active = [kid.id for kid in kids if kid.status not in INACTIVE]
                if dep.gate == "any-children" and any(kid.status == "closed" for kid in kids):
                    continue
                if active:
                    reasons.append(f"waits for the children of {dep.target}: {', '.join(active)}")
                    blockers.update(active)
            elif dep.type == "parent-child" and dep.target not in self.issues and self.full_export:
                unknown.append(f"parent {dep.target}, which is not in the export")
        return _Blocked(tuple(reasons), tuple(unknown), frozenset(blockers))

    def _propagate(self) -> dict[str, _Blocked]:
        """Blocked parents block their children, iteratively (deep trees, no recursion)."""
        state = dict(self._direct)
        queue = list(state)
        while queue:
            parent = queue.pop()
            cause = state[parent]
            for kid in self.children.get(parent, ()):
                child = self.issues[kid]
                if child.status in INACTIVE:
                    continue
                old = state.get(kid, _Blocked((), (), frozenset()))
                reason = f"parent {parent} is blocked" if cause.reasons else ""
                why = f"parent {parent}: {cause.unknown[0]}" if cause.unknown else ""
                new = _Blocked(
                    tuple(dict.fromkeys([*old.reasons, *([reason] if reason else [])])),
                    tuple(dict.fromkeys([*old.unknown, *([why] if why else [])])),
                    old.blockers | cause.blockers,
                )
                if new != old:
                    state[kid] = new
                    queue.append(kid)
        return state

    def epic_of(self, bead: str) -> str | None:
        """The nearest epic among ``bead``'s ancestors (``parent-child``), if any."""
        seen = {bead}
        issue = self.issues.get(bead)
        while issue is not None and issue.parents:
            parent = issue.parents[0]
            if parent in seen:
                return None
            seen.add(parent)
            issue = self.issues.get(parent)
            if issue is not None and issue.kind == "epic":
                return parent
        return None


def import_beads(
    raw: str,
    problems: Problems,
    bead_ids: t.Sequence[str] = (),
    *,
    now: datetime | None = None,
) -> dict[str, t.Any]:
    """The plan dict for beads issues; ``now`` decides which ``defer_until`` are past."""
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
        issues[bead] = _Issue(bead, where, item, _deps(bead, item, problems))
    problems.raise_if_any()

    graph = Graph(issues, full_export=full_export)
    moment = now or datetime.now(UTC)
    chosen = _requested(graph, bead_ids, problems) if bead_ids else _ready(graph, moment, problems)
    problems.raise_if_any()
    if not chosen:
        problems.fail("no open, unblocked issues: nothing to run (bd ready would be empty)")
    selected = {issue.id for issue in chosen}
    tasks = [_task(issue, selected, graph, problems) for issue in chosen]
    problems.raise_if_any()
    return {"tasks": tasks}


def _deferred(graph: Graph, now: datetime) -> set[str]:
    """Issues deferred to the future, and the direct children of such issues (bd ready leaves
    both out)."""
    out: set[str] = set()
    for issue in graph.issues.values():
        until = _time(issue.raw.get("defer_until"))
        if until is not None and until > now:
            out.add(issue.id)
            out.update(graph.children.get(issue.id, ()))
    return out


def left_out(issue: _Issue, graph: Graph, deferred: set[str]) -> str | None:
    """Why ``bd ready`` would not list ``issue`` (None: it would, or it cannot be judged)."""
    if issue.status != "open":
        return f"status {issue.status}"
    if issue.pinned:
        return "pinned"
    if issue.ephemeral:
        return "ephemeral"
    if issue.kind in NOT_WORK:
        return f"type {issue.kind}"
    if issue.id in deferred:
        return "deferred"
    blocked = graph.blocked.get(issue.id)
    if blocked is not None and blocked.reasons:
        return "blocked"
    return None


def _ready_order(issue: _Issue) -> tuple[int, float, str]:
    """``bd ready``'s default order: priority, then newest first, then id."""
    prio = issue.raw.get("priority")
    rank = prio if isinstance(prio, int) and not isinstance(prio, bool) else 2
    created = _time(issue.raw.get("created_at"))
    return rank, -(created.timestamp() if created else float("-inf")), issue.id


def _ready(graph: Graph, now: datetime, problems: Problems) -> list[_Issue]:
    deferred = _deferred(graph, now)
    ready: list[_Issue] = []
    counts: dict[str, int] = {}
    for issue in graph.issues.values():
        reason = left_out(issue, graph, deferred)
        if reason is not None:
            key = reason.split()[0]
            counts[key] = counts.get(key, 0) + 1
            continue
        blocked = graph.blocked.get(issue.id)
        if blocked is not None and blocked.unknown:
            problems.add(
                f"bead {issue.id}",
                f"cannot tell whether bd ready lists it: it depends on {blocked.unknown[0]}; "
                "import 'bd ready --json' output instead, or pick issues with --bead-ids",
            )
            continue
        ready.append(issue)
    logger.debug("selected ready beads", extra={"ready": len(ready), "left_out": counts})
    return sorted(ready, key=_ready_order)


def _requested(graph: Graph, bead_ids: t.Sequence[str], problems: Problems) -> list[_Issue]:
    chosen: list[_Issue] = []
    wanted = list(dict.fromkeys(bead_ids))
    for bead in wanted:
        issue = graph.issues.get(bead)
        if issue is None:
            problems.add(f"--bead-ids {bead}", "not in the input; check the id or re-export")
            continue
        if issue.status != "open":
            problems.add(f"bead {bead}", f"status is {issue.status!r}; only open beads can run")
            continue
        if issue.pinned or issue.kind in NOT_WORK:
            what = "pinned (a context marker)" if issue.pinned else f"a {issue.kind}"
            problems.add(f"bead {bead}", f"is {what}, not work; bd ready never lists it")
            continue
        blocked = graph.blocked.get(bead)
        if blocked is not None:
            for why in blocked.unknown:
                problems.add(
                    f"bead {bead}",
                    f"depends on {why}; cannot tell whether it is blocked: re-export with it",
                )
            outside = sorted(blocked.blockers - set(wanted))
            for target in outside:
                status = graph.status(target) or "open"
                problems.add(
                    f"bead {bead}",
                    f"blocked by {target} ({status}); add {target} to --bead-ids or "
                    "finish it first",
                )
            if not outside and not blocked.blockers and blocked.reasons:
                problems.add(f"bead {bead}", f"blocked: {'; '.join(blocked.reasons)}")
        chosen.append(issue)
    return chosen


def _task(issue: _Issue, selected: set[str], graph: Graph, problems: Problems) -> dict[str, t.Any]:
    raw = issue.raw
    where = f"bead {issue.id}"
    meta = _json_object(raw.get("metadata"))
    task: dict[str, t.Any] = {"id": issue.id, "subject": text(raw.get("title"))}
    description_text = text(raw.get("description")).strip()
    parts = [description_text]
    for key, label in (("design", "Design"), ("notes", "Notes")):
        if text(raw.get(key)).strip():
            parts.append(f"{label}:\n{text(raw.get(key)).strip()}")
    description = "\n\n".join(part for part in parts if part)
    if description:
        task["description"] = description
    task.update(scope(manifest(meta.get("files"), problems, where, "metadata.files")))
    blocked = graph.blocked.get(issue.id)
    deps = sorted(blocked.blockers & selected) if blocked is not None else []
    if issue.kind == "epic":
        # deliberate: an epic runs after its own selected children (docs/importers.md)
        deps += [kid for kid in graph.children.get(issue.id, ()) if kid in selected]
    if deps:
        task["blocked_by"] = list(dict.fromkeys(deps))
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
    checks, extra = validation(meta.get("validation"), description_text, problems, where)
    if checks:
        task["validation"] = checks
    task["metadata"] = {"bead_id": issue.id, **_carried(issue, graph), **extra}
    return task


def _carried(issue: _Issue, graph: Graph) -> dict[str, t.Any]:
    """What the brief and the report show of the issue: labels, people, links."""
    raw = issue.raw
    out: dict[str, t.Any] = {}
    labels = raw.get("labels")
    if isinstance(labels, list) and labels:
        out["labels"] = [str(label) for label in labels]
    for key in ("assignee", "owner", "external_ref"):
        value = raw.get(key)
        if isinstance(value, str) and value:
            out[key] = value
    if issue.parents:
        out["parent"] = issue.parents[0]
    epic = graph.epic_of(issue.id)
    if epic is not None:
        out["epic"] = epic
        title = graph.issues[epic].raw.get("title")
        if isinstance(title, str) and title:
            out["epic_title"] = title
    return out
