"""Plan importers: swarm-iosm ``plan.md``, OL wave JSON, beads, agentops TaskCreate JSON.

Each importer is a pure function from the input text to a plan dict in our own format
(docs/plan-format.md), which :func:`runner.plan.load.check_plan` then validates. The CLI
(``swarm plan import``) and ``swarm run`` do the file I/O through :func:`load_any_plan`.
See docs/importers.md for what is mapped how, and what is refused.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import typing as t

import yaml

from protocol.plan import Plan
from runner.plan.importers.agentops import import_taskcreate, looks_like_taskcreate
from runner.plan.importers.beads import import_beads, looks_like_beads
from runner.plan.importers.common import PlanImportError, Problems
from runner.plan.importers.iosm import import_iosm
from runner.plan.importers.olwave import (
    OL_MISSING,
    RatchetResult,
    import_wave,
    ol_ratchet,
    ol_ratchet_argv,
    quest_of,
    require_ol,
)
from runner.plan.load import check_plan, load_plan, load_yaml, read_text
from runner.plan.summary import UNKNOWN_SCOPE, unscoped_note

__all__ = [
    "FORMATS",
    "OL_MISSING",
    "Format",
    "PlanImportError",
    "RatchetResult",
    "detect_format",
    "import_plan",
    "load_any_plan",
    "needs_ol",
    "ol_ratchet",
    "ol_ratchet_argv",
    "quest_of",
    "read_text",
    "require_ol",
]

logger = logging.getLogger(__name__)

Format = t.Literal["iosm-md", "ol-wave", "beads", "agentops-tasks", "swarm"]
FORMATS: t.Final[tuple[Format, ...]] = t.get_args(Format)

_IOSM_HEADER: t.Final = re.compile(
    r"(?m)^[ \t]*[-*+][ \t]+\[[ xX]\][ \t]+\*\*[^*\s]+?(:\*\*|\*\*[ \t]*:)"
)


def detect_format(text: str, filename: str = "") -> Format:
    """Which importer reads ``text``; ``"swarm"`` is our own YAML/JSON plan (the fallback)."""
    name = filename.lower()
    if name.endswith((".md", ".markdown")):
        return "iosm-md"
    if name.endswith(".jsonl"):
        return "beads"
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            doc = json.loads(stripped)
        except json.JSONDecodeError:
            return "beads" if _is_jsonl(stripped) else "swarm"
        return _json_format(doc)
    if _IOSM_HEADER.search(text):
        return "iosm-md"
    return "swarm"


def _json_format(doc: object) -> Format:
    if isinstance(doc, dict) and isinstance(doc.get("wave"), list) and "tasks" not in doc:
        return "ol-wave"
    if looks_like_taskcreate(doc):
        return "agentops-tasks"
    if looks_like_beads(doc):
        return "beads"
    if isinstance(doc, dict) and "id" in doc and "title" in doc and "tasks" not in doc:
        return "beads"  # an issues.jsonl of one line
    return "swarm"


def _is_jsonl(text: str) -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    try:
        return all(isinstance(json.loads(line), dict) for line in lines)
    except json.JSONDecodeError:
        return False


def import_plan(
    text: str,
    *,
    fmt: Format | None = None,
    source: str = "",
    bead_ids: t.Sequence[str] = (),
) -> dict[str, t.Any]:
    """The plan dict (our format) for ``text``; validate it with ``check_plan``.

    Raises :class:`PlanImportError` (a ``UsageError``) listing every problem, one line each,
    naming the source and the task.
    """
    fmt = fmt or detect_format(text, source)
    problems = Problems(source)
    if bead_ids and fmt != "beads":
        problems.fail(f"--bead-ids applies to beads input, but this is {fmt}")
    if fmt == "iosm-md":
        plan = import_iosm(text, problems)
    elif fmt == "ol-wave":
        plan = import_wave(text, problems)
    elif fmt == "beads":
        plan = import_beads(text, problems, bead_ids)
    elif fmt == "agentops-tasks":
        plan = import_taskcreate(text, problems)
    elif fmt == "swarm":
        plan = _own(text, problems)
    else:
        problems.fail(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    logger.debug("imported plan", extra={"plan": source, "format": fmt})
    _warn_unscoped(plan, source)
    return plan


def _warn_unscoped(plan: dict[str, t.Any], source: str) -> None:
    """Say (a warning, shown on stderr) when imported tasks got no manifest, with the fix."""
    tasks = [task for task in plan.get("tasks") or [] if isinstance(task, dict)]
    todo = [task for task in tasks if task.get("status") != "done"]
    blank = [
        task
        for task in todo
        if task.get("files") == list(UNKNOWN_SCOPE) and task.get("concurrency") == "write-shared"
    ]
    if blank:
        logger.warning(
            "%s: %s",
            source or "<input>",
            unscoped_note(len(blank), len(todo)),
            extra={"plan": source},
        )


def _own(text: str, problems: Problems) -> dict[str, t.Any]:
    try:
        is_json = text.lstrip().startswith(("{", "["))
        doc = json.loads(text) if is_json else load_yaml(text)  # no alias bombs, no dup keys
    except json.JSONDecodeError as exc:
        problems.fail(f"line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.fail(f"{where}invalid YAML: {what}")
    if isinstance(doc, list):
        return {"tasks": doc}
    if not isinstance(doc, dict):
        problems.fail(
            "not a plan: expected a mapping with 'tasks' (or give --format iosm-md, ol-wave, "
            "beads or agentops-tasks)"
        )
    return doc


def load_any_plan(
    path: pathlib.Path,
    *,
    fmt: Format | None = None,
    bead_ids: t.Sequence[str] = (),
) -> Plan:
    """Read ``path`` in any supported format, import and check it; raise PlanError if invalid.

    An OL wave needs ``ol`` on PATH (its tasks are ratcheted back to OL after merging):
    without it this raises RunFailed with agentops' error text before anything else happens.
    """
    source = str(path)
    if fmt == "ol-wave":
        require_ol()
    if fmt in (None, "swarm") and not bead_ids and path.suffix.lower() in (".yaml", ".yml"):
        return load_plan(path)
    text = read_text(path)
    fmt = fmt or detect_format(text, path.name)
    if fmt == "swarm" and not bead_ids:
        return load_plan(path)
    if fmt == "ol-wave":
        require_ol()
    raw = import_plan(text, fmt=fmt, source=source, bead_ids=bead_ids)
    plan, problems = check_plan(raw, source)
    if plan is None:
        raise PlanImportError(problems, source)
    logger.debug("loaded imported plan", extra={"plan": source, "format": fmt})
    return plan


def needs_ol(plan: Plan) -> bool:
    """True if any task came from an OL wave (the mayor ratchets it after merging)."""
    return any(task.metadata.get("ol_bead_id") for task in plan.tasks)
