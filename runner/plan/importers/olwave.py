"""Import an OL wave (``ol hero hunt`` output, agentops ``/swarm --from-wave FILE``).

``wave[]`` entries ``{id, title, spec_path, priority}`` become tasks exactly as agentops creates
them (subject ``[<id>] <title>``, the ``OL bead ...`` description, ``ol_*`` metadata), in
ascending priority; ``blocked[]`` entries become tasks that keep their ``blocked_by``;
``completed[]`` entries become tasks that are already done. After a wave task merges, the mayor
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
    id_list,
    manifest,
    parse_json,
    priority,
    scope,
    task_id,
    text,
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
    doc = parse_json(raw, problems, "OL wave")
    if not isinstance(doc, dict) or "wave" not in doc:
        problems.fail(
            "not an OL wave: expected a JSON object with 'wave' (and optional 'blocked', "
            "'completed') lists, as 'ol hero hunt' writes"
        )
    entries: dict[str, list[dict[str, t.Any]]] = {}
    for section in SECTIONS:
        value = doc.get(section, [])
        if value is None:
            value = []
        if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
            problems.add(section, "must be a list of objects with at least 'id'")
            value = []
        entries[section] = value
    problems.raise_if_any()

    seen: dict[str, str] = {}
    rows: list[tuple[str, int, dict[str, t.Any], str]] = []
    for section in SECTIONS:
        for index, entry in enumerate(entries[section]):
            where = f"{section}[{index}]"
            bead = task_id(entry.get("id"), problems, where)
            if bead is None:
                continue
            if bead in seen:
                problems.add(f"{where} ({bead})", f"id: duplicate of {seen[bead]}")
                continue
            seen[bead] = where
            rows.append((section, index, entry, bead))
    if not rows and not problems.lines:
        problems.fail("the wave is empty: no 'wave', 'blocked' or 'completed' entries")

    keyed: list[tuple[tuple[int, float, int], dict[str, t.Any]]] = []
    for order, (section, index, entry, bead) in enumerate(rows):
        where = f"{section}[{index}] ({bead})"
        task = _task(section, entry, bead, set(seen), where, problems)
        # wave entries run by ascending priority (lower = more urgent); the rest keep file order
        rank = float(task.get("priority", float("inf"))) if section == "wave" else 0.0
        keyed.append(((SECTIONS.index(section), rank, order), task))
    problems.raise_if_any()
    keyed.sort(key=lambda row: row[0])
    return {"tasks": [task for _, task in keyed]}


def _task(
    section: str,
    entry: dict[str, t.Any],
    bead: str,
    known: set[str],
    where: str,
    problems: Problems,
) -> dict[str, t.Any]:
    title = text(entry.get("title"))
    spec = entry.get("spec_path")
    if spec is not None and not isinstance(spec, str):
        problems.add(where, f"spec_path: {spec!r} is not a path")
        spec = None
    prio = priority(entry.get("priority"), problems, where, "priority")
    files = manifest(entry.get("files"), problems, where, "files")
    task: dict[str, t.Any] = {"id": bead, "subject": f"[{bead}] {title}".rstrip()}

    lines = [f"OL bead {bead}"]
    if spec:
        lines.append(f"Spec: {spec}")
    if prio is not None:
        lines.append(f"Priority: {prio}")
    blocked_by: list[str] = []
    if section == "blocked":
        blocked_by = id_list(entry.get("blocked_by"), problems, where, "blocked_by")
        for dep in blocked_by:
            if dep not in known:
                problems.add(
                    where,
                    f"blocked_by: unknown bead {dep!r}; it is in none of wave, blocked, completed",
                )
        if blocked_by:
            lines.append(f"Blocked by: {', '.join(blocked_by)}")
    if spec:
        lines += ["", f"Read the spec file at {spec} for full requirements."]
    task["description"] = "\n".join(lines)
    task.update(scope(files))
    if blocked_by:
        task["blocked_by"] = blocked_by
    if isinstance(entry.get("issue_type"), str) and entry["issue_type"]:
        task["issue_type"] = entry["issue_type"]
    if prio is not None:
        task["priority"] = prio
    if section == "completed":
        task["status"] = "done"
    task["metadata"] = {"ol_bead_id": bead, "ol_spec_path": spec, "ol_priority": prio}
    return task
