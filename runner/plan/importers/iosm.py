"""Import a swarm-iosm ``plan.md``: ``- [ ] **T03**: Title`` tasks with ``- **Field:** value``.

Parsed line by line, fixing the reference planner's pitfalls (reference/swarm-iosm.md, sections
1 and 8): any id made of letters, digits, ``.``, ``_`` and ``-`` (``T03a``, ``T-AUTO-01``); a
checkbox line inside a task does not end it; multi-line values (sub-bullets) are kept; field
names match without regard to case or spacing; ``30m`` is 30 minutes; a ``Touches`` path that
contains "read-only" is a path like any other; prose or unknown dependencies, prose touches,
unknown enum values and missing required fields are errors naming the line and the task.
"""

from __future__ import annotations

import logging
import re
import typing as t

from protocol.base import check_id
from protocol.manifest import normalize
from protocol.plan import effort_minutes
from runner.plan.importers.common import Problems

logger = logging.getLogger(__name__)

_HEADER_RE: t.Final = re.compile(
    r"^(?P<indent>[ \t]*)[-*+][ \t]+\[(?P<box>[ xX])\][ \t]+\*\*(?P<id>[^*\s]+?)"
    r"(?::\*\*|\*\*[ \t]*:)[ \t]*(?P<title>.*?)[ \t]*$"
)
_FIELD_RE: t.Final = re.compile(
    r"^(?P<indent>[ \t]*)[-*+][ \t]+\*\*(?P<name>[^*]+?)(?::\*\*|\*\*[ \t]*:)[ \t]*(?P<value>.*?)"
    r"[ \t]*$"
)
_BULLET_RE: t.Final = re.compile(r"^(?:[-*+]|\d+[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_FENCE_RE: t.Final = re.compile(r"^[ \t]*(```|~~~)")
_PAREN_RE: t.Final = re.compile(r"\([^()]*\)")
_NONE_VALUES: t.Final = frozenset({"", "none", "n/a", "na", "-", "—", "nothing"})
_TRUE: t.Final = frozenset({"true", "yes", "y", "1"})
_FALSE: t.Final = frozenset({"false", "no", "n", "0"})
_STATUSES: t.Final = {"todo": "todo", "doing": "todo", "blocked": "todo", "done": "done"}
_SEVERITIES: t.Final = ("low", "medium", "high", "critical")
_CONCURRENCY: t.Final = ("read-only", "write-local", "write-shared")

_ALIASES: t.Final = {
    "depends on": "depends on",
    "depends": "depends on",
    "dependencies": "depends on",
    "blocked by": "depends on",
    "touches": "touches",
    "files": "touches",
    "concurrency class": "concurrency class",
    "concurrency": "concurrency class",
    "needs user input": "needs user input",
    "effort": "effort",
    "severity": "severity",
    "status": "status",
    "acceptance": "acceptance",
    "acceptance criteria": "acceptance",
}
_SHOWN_IN_BRIEF: t.Final = ("owner role", "artifacts", "discoveries expected", "iosm checks")


class _Field(t.NamedTuple):
    name: str
    """As written (``Depends on``), for messages."""
    line: int
    indent: int
    value: str
    items: list[str]


class _RawTask(t.NamedTuple):
    id: str
    line: int
    checked: bool
    title: str
    fields: dict[str, _Field]
    notes: list[str]


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def _key(name: str) -> str:
    return " ".join(name.strip().rstrip(":").lower().split())


def import_iosm(text: str, problems: Problems) -> dict[str, t.Any]:
    """The plan dict for a swarm-iosm plan.md; problems are recorded, then raised together."""
    name, raws = _scan(text, problems)
    if not raws and not problems.lines:
        problems.fail(
            "no tasks found; swarm-iosm tasks are lines like '- [ ] **T01**: Title' followed by "
            "'  - **Touches:** `src/x.py`' field lines"
        )
    ids = {raw.id for raw in raws}
    tasks = [_task(raw, ids, problems) for raw in raws]
    problems.lines.sort(key=_line_number)  # stable: document order, then field order
    problems.raise_if_any()
    plan: dict[str, t.Any] = {"name": name} if name else {}
    plan["tasks"] = tasks
    return plan


def _line_number(problem: str) -> int:
    match = re.search(r": line (\d+)", problem)
    return int(match[1]) if match else 0


def _scan(text: str, problems: Problems) -> tuple[str, list[_RawTask]]:
    """Split the document into raw tasks (fields not yet interpreted) and find the plan name."""
    raws: list[_RawTask] = []
    seen: dict[str, int] = {}
    track = heading = ""
    current: _RawTask | None = None
    header_indent = 0
    field: _Field | None = None
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
            if current is not None:
                _continue(current, field, line)
            continue
        if in_fence:
            if current is not None:
                _continue(current, field, line)
            continue
        header = _HEADER_RE.match(line)
        if header:
            current, field = None, None
            header_indent = _indent(line)
            tid = header["id"]
            try:
                check_id(tid)
            except ValueError as exc:
                problems.add(f"line {number}", f"task id: {exc}")
                continue
            if tid in seen:
                problems.add(
                    f"line {number}: task {tid}",
                    f"duplicate of the task on line {seen[tid]}; ids must be unique",
                )
                continue
            seen[tid] = number
            current = _RawTask(tid, number, header["box"] != " ", header["title"], {}, [])
            raws.append(current)
            continue
        if current is None:
            track, heading = _plan_name(line, track, heading)
            continue
        if not line.strip():
            continue
        indent = _indent(line)
        match = _FIELD_RE.match(line)
        if field is not None and indent > field.indent:
            _continue(current, field, line)
            continue
        known = match is not None and _key(match["name"]) in _ALIASES
        if indent <= header_indent and not known:
            current, field = None, None  # the task ends at a line back at its own level
            track, heading = _plan_name(line, track, heading)
            continue
        if match is None:
            current.notes.append(line.strip())
            field = None
            continue
        key = _ALIASES.get(_key(match["name"]), _key(match["name"]))
        if key in current.fields:
            first = current.fields[key]
            problems.add(
                f"line {number}: task {current.id}",
                f"{match['name']}: given twice (first on line {first.line}); keep one",
            )
            field = None
            continue
        field = _Field(match["name"].strip(), number, indent, match["value"], [])
        current.fields[key] = field
    return track or heading, raws


def _continue(task: _RawTask, field: _Field | None, line: str) -> None:
    """A line deeper than its field: a sub-bullet is a new item, other text continues."""
    if field is None:
        task.notes.append(line.rstrip())
        return
    stripped = line.strip()
    bullet = _BULLET_RE.match(stripped)
    if bullet:
        field.items.append(stripped[bullet.end() :].strip())
    elif field.items:
        field.items[-1] = f"{field.items[-1]} {stripped}".strip()
    else:
        field.items.append(stripped)


def _plan_name(line: str, track: str, heading: str) -> tuple[str, str]:
    match = re.match(r"^\*\*Track:\*\*\s*(.+?)\s*$", line.strip())
    if match and not track:
        track = match[1].strip("` ")
    match = re.match(r"^#\s+(.+?)\s*$", line)
    if match and not heading:
        heading = re.sub(r"^Implementation Plan\s*[—–-]\s*", "", match[1]).strip()
    return track, heading


def _task(raw: _RawTask, ids: set[str], problems: Problems) -> dict[str, t.Any]:
    where = f"line {raw.line}: task {raw.id}"
    fields = dict(raw.fields)
    task: dict[str, t.Any] = {"id": raw.id, "subject": raw.title}

    concurrency = _choice(fields.pop("concurrency class", None), _CONCURRENCY, where, problems)
    touches = fields.pop("touches", None)
    before = len(problems.lines)
    files, notes = _touches(touches, where, problems)
    if concurrency is not None:
        task["concurrency"] = concurrency
    if files:
        task["files"] = files
    elif concurrency != "read-only" and len(problems.lines) == before:
        what = "missing" if touches is None else "no paths"
        problems.add(
            where,
            f"Touches: {what}; list the files or folders the task changes (e.g. "
            "`src/core/cache.py`, `tests/`), or set Concurrency class: read-only",
        )

    deps = _depends(fields.pop("depends on", None), ids, where, problems)
    if deps:
        task["blocked_by"] = deps

    effort_field = fields.pop("effort", None)
    effort = _effort(effort_field, where, problems)
    if effort is not None:
        task["effort"] = effort

    user = fields.pop("needs user input", None)
    if user is None:
        problems.add(
            where,
            "Needs user input: missing; add '- **Needs user input:** false' (or true, so the "
            "mayor calls a human when the task starts)",
        )
    else:
        value = _scalar(user).lower()
        if value in _TRUE:
            task["needs_user_input"] = True
        elif value not in _FALSE:
            problems.add(where, f"{user.name}: {_scalar(user)!r} is not true or false")

    severity = _choice(fields.pop("severity", None), _SEVERITIES, where, problems)
    if severity is not None:
        task["severity"] = severity

    status_field = fields.pop("status", None)
    extra: dict[str, t.Any] = {}
    if effort_field is not None and effort is not None and effort != _scalar(effort_field):
        extra["effort"] = _scalar(effort_field)  # as written: "M (3 hours)"
    if status_field is not None:
        status = _scalar(status_field)
        mapped = _STATUSES.get(status.lower())
        if mapped is None:
            problems.add(
                where, f"{status_field.name}: {status!r} is not TODO, DOING, BLOCKED or DONE"
            )
        elif mapped == "done":
            task["status"] = "done"
        elif status.lower() != "todo":
            extra["status"] = status
    elif raw.checked:
        task["status"] = "done"

    acceptance = fields.pop("acceptance", None)
    if acceptance is not None:
        items = [item for item in [acceptance.value, *acceptance.items] if item]
        if items:
            task["acceptance"] = items

    described: list[str] = []
    for key, field in fields.items():
        value = _joined(field)
        extra[key.replace(" ", "_").replace("-", "_")] = value
        if key in _SHOWN_IN_BRIEF and value:
            described.append(f"{field.name}: {value}")
    if notes:
        extra["touches_notes"] = notes
    described.extend(raw.notes)
    if described:
        task["description"] = "\n".join(described)
    if extra:
        task["metadata"] = {"iosm": extra}
    return task


def _scalar(field: _Field) -> str:
    value = field.value or " ".join(field.items)
    return value.strip().strip("`").strip()


def _joined(field: _Field) -> str:
    parts = [field.value, *(f"- {item}" for item in field.items)] if field.items else [field.value]
    return "\n".join(part for part in parts if part).strip()


def _choice(
    field: _Field | None, allowed: tuple[str, ...], where: str, problems: Problems
) -> str | None:
    if field is None:
        return None
    value = _scalar(field).lower()
    if value in allowed:
        return value
    problems.add(where, f"{field.name}: {_scalar(field)!r} is not one of {', '.join(allowed)}")
    return None


_HOURS_RE: t.Final = re.compile(r"(?i)(\d+(?:\.\d+)?)\s*h(?:ours?|rs?)?\b")
_MINUTES_RE: t.Final = re.compile(r"(?i)(\d+(?:\.\d+)?)\s*min(?:utes?|s)?\b")


def _effort(field: _Field | None, where: str, problems: Problems) -> str | None:
    """The effort: explicit hours (or minutes) anywhere in the value win over the size letter,
    as the reference planner's ``effort_to_minutes`` reads them: ``M (3 hours)`` is 3h, and a
    range ``M (2-4 hours)`` its upper bound 4h; otherwise ``S``/``M``/``L``/``XL``/``30m``."""
    if field is None:
        problems.add(where, "Effort: missing; add '- **Effort:** S' (S, M, L, XL, 2h or 30min)")
        return None
    written = _scalar(field)
    hours = _HOURS_RE.search(written)
    if hours is not None:
        return f"{float(hours[1]):g}h"
    minutes = _MINUTES_RE.search(written)
    if minutes is not None:
        return f"{float(minutes[1]):g}min"
    value = _PAREN_RE.sub("", written).strip().strip("`").strip()
    try:
        effort_minutes(value)
    except ValueError:
        problems.add(
            where,
            f"{field.name}: {written!r} is not an effort; use S, M, L, XL, Nh or Nmin "
            "(e.g. 2h, 30min)",
        )
        return None
    return value


def _depends(field: _Field | None, ids: set[str], where: str, problems: Problems) -> list[str]:
    if field is None:
        return []
    raw = ", ".join(part for part in [field.value, *field.items] if part)
    # "T00 (if brownfield)": a parenthesis is a comment, never an id
    cleaned = _PAREN_RE.sub(" ", raw).replace("`", " ")
    if cleaned.strip().lower().rstrip(".") in _NONE_VALUES:
        return []
    tokens = [tok for tok in re.split(r"[,;\s]+|\band\b|&", cleaned) if tok]
    # a word that is no task id and has no digit ("All", "Phase", "tasks") means prose
    if any(tok not in ids and not any(ch.isdigit() for ch in tok) for tok in tokens):
        problems.add(
            where,
            f"{field.name}: {raw!r} is prose, not task ids; list the ids it waits for "
            "(e.g. T05, T06), or 'none'",
        )
        return []
    deps: list[str] = []
    for tok in tokens:
        if tok not in ids:
            problems.add(where, f"{field.name}: unknown task {tok!r}")
            continue
        deps.append(tok)
    return list(dict.fromkeys(deps))


def _touches(field: _Field | None, where: str, problems: Problems) -> tuple[list[str], list[str]]:
    """The manifest paths and the bracketed notes (``[read-only analysis]``) of a Touches field.

    A backticked item is a path whatever it contains; a bare item is a path when it has no
    spaces (a trailing parenthesis is a comment); ``[...]`` is a note; other prose is an error.
    """
    if field is None:
        return [], []
    parts = [field.value, *field.items] if field.value else list(field.items)
    items = [item for part in parts for item in _split_items(part)]
    if len(items) == 1 and items[0].lower().rstrip(".") in _NONE_VALUES:
        return [], []
    paths: list[str] = []
    notes: list[str] = []
    for item in items:
        if item.startswith("[") and item.endswith("]"):
            notes.append(item[1:-1].strip())
            continue
        quoted = re.findall(r"`([^`]+)`", item)
        if quoted:
            candidates = quoted
        else:
            bare = _PAREN_RE.sub("", item).strip()
            if not bare or re.search(r"\s", bare):
                problems.add(
                    where,
                    f"{field.name}: {item!r} is prose, not a path; write paths (in backticks: "
                    "`src/x.py`, `docs/`) and put notes in [brackets]",
                )
                continue
            candidates = [bare]
        for candidate in candidates:
            try:
                paths.append(normalize(candidate))
            except ValueError as exc:
                problems.add(where, f"{field.name}: {exc}")
    return list(dict.fromkeys(paths)), notes


def _split_items(value: str) -> list[str]:
    """Split on commas outside backticks and brackets."""
    items: list[str] = []
    buf: list[str] = []
    tick = False
    depth = 0
    for char in value:
        if char == "`":
            tick = not tick
        elif not tick and char == "[":
            depth += 1
        elif not tick and char == "]":
            depth = max(0, depth - 1)
        if char == "," and not tick and depth == 0:
            items.append("".join(buf).strip())
            buf = []
            continue
        buf.append(char)
    items.append("".join(buf).strip())
    return [item for item in items if item]
