"""Import an OL wave (``ol hero hunt`` output, agentops ``/swarm --from-wave FILE``).

``wave[]`` entries ``{id, title, spec_path, priority}`` become tasks exactly as agentops creates
them (subject ``[<id>] <title>``, the ``OL bead ...`` description, ``ol_*`` metadata), checked
and ordered as its ``ol-wave-loader.sh`` does: every field required, priority a whole number,
ascending priority with ties in byte order of id, title, spec path. ``blocked[]`` and
``completed[]`` are not run, as in agentops. After a wave task merges, the mayor
runs ``ol hero ratchet <id> --quest <quest>`` (:func:`ol_ratchet_argv`), which needs ``ol`` on
PATH (:func:`require_ol`).
"""

from __future__ import annotations

import logging
import shutil
import typing as t

from runner.errors import CommandError, RunFailed
from runner.plan.importers.common import (
    Problems,
    manifest,
    parse_json,
    scope,
    task_id,
)
from runner.proc import run

logger = logging.getLogger(__name__)

OL_MISSING: t.Final = (
    "Error: ol CLI required for --from-wave. Install ol or use swarm without wave integration."
)
SECTIONS: t.Final = ("wave", "blocked", "completed")


def require_ol() -> None:
    """Raise RunFailed (exit 1) with agentops' exact text when ``ol`` is not on PATH."""
    if shutil.which("ol") is None:
        raise RunFailed(OL_MISSING)


def quest_of(bead_id: str) -> str:
    """The quest of a bead: its id without the last ``.segment`` (``ol-527.1`` -> ``ol-527``)."""
    head, dot, _tail = bead_id.rpartition(".")
    return head if dot and head else bead_id


def ol_ratchet_argv(bead_id: str) -> list[str]:
    """``ol hero ratchet <id> --quest <quest>``: report a merged bead back to OL."""
    return ["ol", "hero", "ratchet", bead_id, "--quest", quest_of(bead_id)]


class RatchetResult(t.NamedTuple):
    argv: tuple[str, ...]
    returncode: int
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def ol_ratchet(bead_id: str, *, cwd: str | None = None, timeout: float = 120.0) -> RatchetResult:
    """Run the ratchet and return its exit status and stderr (exit 1 = OL refused the bead).

    Never raises for a non-zero exit; a missing ``ol`` is exit 127, a timeout exit -1.
    """
    argv = ol_ratchet_argv(bead_id)
    try:
        result = run(*argv, cwd=cwd, check=False, timeout=timeout)
    except CommandError as exc:
        return RatchetResult(tuple(argv), exc.returncode, exc.stderr)
    logger.info("ran ol hero ratchet", extra={"bead_id": bead_id, "exit": result.returncode})
    return RatchetResult(tuple(argv), result.returncode, result.stderr.strip())


def looks_like_wave(doc: object) -> bool:
    return isinstance(doc, dict) and "wave" in doc and set(doc) <= {*SECTIONS, "quest", "epic"}


def import_wave(raw: str, problems: Problems) -> dict[str, t.Any]:
    """The tasks of ``wave[]``, checked and ordered as agentops' ``ol-wave-loader.sh`` does.

    ``blocked[]`` and ``completed[]`` are not tasks: agentops runs only the wave (a blocked bead
    comes back in the next ``ol hero hunt`` once OL unblocks it, with its spec).
    """
    doc = parse_json(raw, problems, "OL wave")
    if not isinstance(doc, dict) or "wave" not in doc:
        problems.fail(
            "not an OL wave: expected a JSON object with a 'wave' list (and optional 'blocked', "
            "'completed'), as 'ol hero hunt' writes"
        )
    entries = doc["wave"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.fail("wave: must be a list of objects with id, title, spec_path and priority")
    if not entries:
        problems.fail("wave: no wave entries: nothing to run")
    seen: dict[str, str] = {}
    keyed: list[tuple[tuple[int, str, str, str], dict[str, t.Any]]] = []
    for index, entry in enumerate(entries):
        where = f"wave[{index}]"
        bead = task_id(entry.get("id"), problems, where) if entry.get("id") else None
        if bead is None:
            if not entry.get("id"):
                problems.add(where, "id: missing or empty; every wave entry needs an id")
            continue
        where = f"{where} ({bead})"
        if bead in seen:
            problems.add(where, f"id: duplicate of {seen[bead]}")
            continue
        seen[bead] = where
        task = _task(entry, bead, where, problems)
        if task is not None:
            keyed.append((_order(task), task))
    for section in ("blocked", "completed"):
        if doc.get(section):
            logger.info("left out OL wave section", extra={"section": section})
    problems.raise_if_any()
    keyed.sort(key=lambda row: row[0])
    return {"tasks": [task for _, task in keyed]}


def _order(task: dict[str, t.Any]) -> tuple[int, str, str, str]:
    """The loader's ``sort -t$'\\t' -k1 -n`` of ``priority, id, title, spec_path`` lines: by
    priority, ties by the rest of the line (byte order, as in the C locale)."""
    meta = task["metadata"]
    title = task["subject"].removeprefix(f"[{task['id']}] ")
    return meta["ol_priority"], task["id"], title, meta["ol_spec_path"]


def _required(entry: dict[str, t.Any], key: str, where: str, problems: Problems) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        problems.add(
            where,
            f"{key}: missing or empty; agentops' wave loader refuses the wave without it "
            "(every entry needs id, title, spec_path and priority)",
        )
        return None
    if not isinstance(value, str):
        problems.add(where, f"{key}: {value!r} is not a string")
        return None
    if "\n" in value or "\t" in value:
        problems.add(where, f"{key}: contains a newline or tab; agentops' loader refuses it")
        return None
    return value


def _priority(entry: dict[str, t.Any], where: str, problems: Problems) -> int | None:
    """A whole number 0 or more, as a JSON number or digits (the loader's ``^[0-9]+$``)."""
    value = entry.get("priority")
    if value is None or value == "":
        problems.add(
            where,
            "priority: missing; agentops' wave loader refuses the wave without it (lower "
            "runs first)",
        )
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    problems.add(where, f"priority: must be a whole number 0 or more, got {value!r}")
    return None


def _task(
    entry: dict[str, t.Any], bead: str, where: str, problems: Problems
) -> dict[str, t.Any] | None:
    title = _required(entry, "title", where, problems)
    spec = _required(entry, "spec_path", where, problems)
    prio = _priority(entry, where, problems)
    files = manifest(entry.get("files"), problems, where, "files")
    if title is None or spec is None or prio is None:
        return None
    task: dict[str, t.Any] = {
        "id": bead,
        "subject": f"[{bead}] {title}",
        "description": (
            f"OL bead {bead}\nSpec: {spec}\nPriority: {prio}\n\n"
            f"Read the spec file at {spec} for full requirements."
        ),
    }
    task.update(scope(files))
    issue_type = entry.get("issue_type")
    if isinstance(issue_type, str) and issue_type:
        task["issue_type"] = issue_type
    task["priority"] = prio
    task["metadata"] = {"ol_bead_id": bead, "ol_spec_path": spec, "ol_priority": prio}
    return task
