"""What ``swarm status`` shows, from plain data: no pydantic, rich or click.

``swarm status`` is typed by people (and polled by scripts) from a fresh process, so its cost is
mostly start-up: this module finds the run (:func:`list_runs`, :func:`resolve_run`), reads its
``state.json`` as a plain document when that is current (:func:`current_doc`: it covers the
last event of ``events.jsonl``; anything else is for :func:`runner.state.current_state`, the one
fold of the events), says whether its mayor is gone (:func:`mayor_missing`) and lays the table
out (:func:`columns`, shared with the rich table of ``swarm watch``). :func:`render` writes the
whole text as rich printed it (same bytes when not on a terminal), or returns None for what it
does not reproduce (a terminal too narrow for the columns, characters of other widths, control
characters): the caller prints that with rich. Both paths of ``swarm status`` (``runner.cli.fast``
and the click command) call it, so they cannot drift; ``tests/runner/test_status_view.py``
compares it with rich.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import typing as t
from datetime import UTC, datetime

from agentmail.fs import lock_held
from runner.errors import UsageError
from runner.paths import RunPaths, SwarmPaths
from runner.report import StateDoc, status_rows, where

if t.TYPE_CHECKING:
    from runner.why import Why

STATE_VERSION: t.Final = 1
"""``RunState.v``: a ``state.json`` of another version is read through the models."""
STATE_FIELDS: t.Final = frozenset(
    {
        "mode", "max_workers", "waves", "keep_sessions", "agent", "agent_cmd", "deadline",
        "stall_after", "stall_restart", "auto_spawn", "commit_policy", "land", "isolation",
        "network", "agent_permissions", "trust_worktrees", "hosts",
        "v", "run_id", "status", "plan_name", "plan_digest", "repo", "base_sha", "target_branch",
        "target_head", "repo_fingerprint", "integration_branch", "integration_worktree",
        "integration_head", "worktree_root", "tmux_socket", "wave", "wave_base", "wave_squash",
        "paused", "failed_gate_families", "landed", "escapes", "escape_offset", "budget_refused",
        "created", "ended_at", "stop_reason", "last_seq", "task_order", "tasks", "handled_mail",
    }
)  # fmt: skip
"""``RunState``'s fields: a ``state.json`` with other keys is another version's
(``tests/runner/test_status_view.py`` compares them with the model)."""
TASK_FIELDS: t.Final = frozenset(
    {
        "id", "state", "attempt", "session", "branch", "worktree", "host", "base_sha", "head_sha",
        "merge_sha", "dispatched_at", "ended_at", "last_message", "reason", "files", "conflicts",
        "fixups", "exit_status", "attempt_limit", "spent", "last_activity", "refusal", "nudges",
        "pane",
    }
)  # fmt: skip
"""``TaskRecord``'s fields: a task document with other keys is another version's."""
ESCAPE_FIELDS: t.Final = frozenset(
    {"key", "source", "spawned", "spawn", "family", "code", "pause", "reason", "finding"}
)
"""``EscapeRecord``'s fields."""
TAIL_CHUNK: t.Final = 8192
MAX_WIDTH: t.Final = 120
"""``swarm status`` never draws wider than this, however wide the terminal."""
SESSION_WIDTH: t.Final = 14
TASK_WIDTH: t.Final = 14
STATE_WIDTH: t.Final = 10
TRY_WIDTH: t.Final = 3
ELAPSED_WIDTH: t.Final = 7
HEADERS: t.Final = ("task", "state", "session", "try", "elapsed", "last")
RIGHT: t.Final = frozenset({3, 4})
"""Columns justified right (try, elapsed)."""
STATE_STYLE: t.Final[dict[str, str]] = {
    "merged": "green",
    "no change": "green dim",
    "running": "cyan",
    "offered": "yellow",
    "validating": "yellow",
    "merging": "yellow",
    "rework": "magenta",
    "failed": "bold red",
    "blocked": "red",
    "skipped": "dim",
    "cancelled": "dim",
    "pending": "dim",
    # a running task's pane (runner.agents.panes), shown instead of "running"
    "idle": "yellow",
    "permission": "bold red",
    "dialog": "bold red",
}
"""The state column's style (rich style names), in ``swarm status`` and ``swarm watch``."""
SGR: t.Final = {"bold": "1", "dim": "2", "italic": "3", "red": "31", "green": "32"} | {
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
}
COLORS: t.Final = frozenset({"red", "green", "yellow", "magenta", "cyan"})


def list_runs(repo: pathlib.Path) -> list[str]:
    """Run ids of the repository, oldest first (ids start with their creation time)."""
    runs = SwarmPaths.for_repo(repo).runs
    if not runs.is_dir():
        return []
    found = [p for p in runs.iterdir() if (p / "events.jsonl").exists()]
    found.sort(key=lambda p: ((p / "events.jsonl").stat().st_ctime, p.name))
    return [p.name for p in found]


def resolve_run(repo: pathlib.Path, run_id: str | None) -> str:
    """``run_id`` if given and known, else the latest run; UsageError naming the fix."""
    runs = list_runs(repo)
    if run_id is None:
        if not runs:
            raise UsageError(f"no runs in {repo}; start one with `swarm run PLAN`")
        return runs[-1]
    if run_id not in runs:
        raise UsageError(f"no run {run_id!r} in {repo}; `swarm status` lists the latest run")
    return run_id


def mayor_missing(run: RunPaths, run_id: str, status: str) -> str | None:
    """For a run that says ``running`` with no live mayor (killed, or its machine rebooted):
    the line that says so and what to do; None when the run ended or its mayor is alive."""
    if status != "running" or lock_held(run.lock):
        return None
    try:
        since = datetime.fromtimestamp(run.events.stat().st_mtime, UTC).astimezone()
    except FileNotFoundError:
        return f"mayor not running: `swarm resume {run_id}`"
    return f"mayor not running (since {since:%H:%M:%S}): `swarm resume {run_id}`"


def last_event(path: pathlib.Path) -> tuple[int, str] | None:
    """``(seq, run_id)`` of the last event of ``events.jsonl``, reading only its end; None for
    an empty file or one whose last line is torn or not an event."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            chunk = b""
            start = size
            while start > 0:
                start = max(0, start - max(TAIL_CHUNK, len(chunk)))
                fh.seek(start)
                chunk = fh.read(size - start)
                if not chunk.endswith(b"\n"):
                    return None  # torn: the fold ignores that line, and warns
                if start == 0 or chunk.rfind(b"\n", 0, len(chunk) - 1) >= 0:
                    break
    except OSError:
        return None
    line = chunk[chunk.rfind(b"\n", 0, len(chunk) - 1) + 1 :]
    try:
        event = json.loads(line)
        return int(event["seq"]), str(event["run_id"])
    except (ValueError, KeyError, TypeError):
        return None


def current_doc(run: RunPaths) -> dict[str, t.Any] | None:
    """``state.json`` as a plain document when it is the fold of every event (it covers the
    last one) and of this version; None otherwise (fold the events through the models)."""
    try:
        doc = json.loads(run.state.read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("v") != STATE_VERSION:
        return None
    if doc.keys() != STATE_FIELDS or not isinstance(doc["tasks"], dict):
        return None
    last = last_event(run.events)
    if last is None or last != (doc["last_seq"], doc["run_id"]):
        return None  # events after it (a batch under way, a mayor mid-save), or another log
    tasks = doc["tasks"]
    if set(doc["task_order"]) - tasks.keys():
        return None
    if any(not isinstance(v, dict) or v.keys() != TASK_FIELDS for v in tasks.values()):
        return None
    if any(not isinstance(e, dict) or e.keys() != ESCAPE_FIELDS for e in doc["escapes"]):
        return None
    return doc


def final_gate_events(path: pathlib.Path) -> t.Iterator[tuple[str, t.Mapping[str, t.Any]]]:
    """``(kind, data)`` of the events :func:`runner.why.final_gate_of` looks at (a line is
    parsed only when it names one of their kinds)."""
    from runner.why import FINAL_GATE_KINDS

    needles = [f'"{kind}"'.encode() for kind in FINAL_GATE_KINDS]
    with path.open("rb") as fh:
        for line in fh:
            if any(needle in line for needle in needles):
                event = json.loads(line)
                yield event["kind"], event.get("data") or {}


def whys(run: RunPaths, doc: StateDoc) -> list[Why]:
    """Each refused task's why, and a failed final gate's."""
    from runner import why

    found = why.of_run_doc(run, doc)
    if doc["status"] == "failed" and run.events.exists():
        final = why.final_gate_of(final_gate_events(run.events))
        if final is not None:
            found.append(final)
    return found


def json_document(run: RunPaths, doc: StateDoc, found: t.Sequence[Why]) -> dict[str, t.Any]:
    """``swarm status --json``'s document (beside its version and kind)."""
    from runner.report import status_document

    shown = [{**w._asdict(), "log": str(w.log) if w.log else None} for w in found]
    return {**status_document(doc), "mayor_alive": lock_held(run.lock), "why": shown}


class Columns(t.NamedTuple):
    """Widths of the status table's columns (``last`` takes what is left)."""

    task: int
    state: int
    session: int
    attempt: int
    elapsed: int
    last: int


def columns(rows: t.Sequence[t.Mapping[str, t.Any]], width: int) -> Columns:
    """The status table's column widths for ``rows`` (``session`` already :func:`where`'d) in
    ``width`` columns: columns are separated by two spaces, the last message gets what is
    left (at least 8, unless too narrow: session width goes first, then task width)."""
    task_w = min(TASK_WIDTH, max([4, *(len(r["task"]) for r in rows)]))
    session_w = min(SESSION_WIDTH, max([7, *(len(r["session"]) for r in rows)]))
    fixed = [task_w, STATE_WIDTH, session_w, TRY_WIDTH, ELAPSED_WIDTH]
    spare = width - sum(fixed) - 2 * len(fixed) - 8
    if spare < 0:
        cut = min(-spare, session_w - 7)
        session_w -= cut
        spare += cut
        task_w -= min(max(-spare, 0), task_w - 4)
    last = width - task_w - STATE_WIDTH - session_w - TRY_WIDTH - ELAPSED_WIDTH - 2 * 5
    return Columns(task_w, STATE_WIDTH, session_w, TRY_WIDTH, ELAPSED_WIDTH, last)


def left_ellipsis(text: str, width: int) -> str:
    """Keep the end of ``text`` (where session names differ): ``…0-3f2a-T03``."""
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


def table_rows(
    doc: StateDoc, at: datetime | None = None
) -> tuple[list[dict[str, t.Any]], list[tuple[str, ...]]]:
    """The status table's rows (``session`` as shown: ``host:session``) and their cells,
    before the widths: task, state, session, try, elapsed, last (one line)."""
    ended = doc["ended_at"]
    # an ended run's elapsed times stop with it (tasks still "running" when it was stopped)
    rows = [{**r, "session": where(r)} for r in status_rows(doc, _time(ended) or at)]
    cells: list[tuple[str, ...]] = [
        (
            r["task"],
            r["shown"],
            r["session"],
            str(r["attempt"]),
            r["elapsed"],
            r["last"].replace("\n", " "),
        )
        for r in rows
    ]
    return rows, cells


def session_cell(session: str, width: int) -> str:
    return left_ellipsis(session, width) or "-"


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class Style(t.NamedTuple):
    """How to write styles on this output: not at all (not a terminal), or ANSI codes with or
    without colours (``NO_COLOR``), as rich decides for its console."""

    on: bool
    colour: bool

    @classmethod
    def detect(cls, stream: t.TextIO) -> Style:
        env = os.environ
        force = env.get("FORCE_COLOR")
        if env.get("TERM", "").lower() in ("dumb", "unknown"):
            return cls(False, False)
        terminal = bool(force) or (hasattr(stream, "isatty") and stream.isatty())
        return cls(terminal, terminal and not env.get("NO_COLOR"))

    def apply(self, text: str, style: str) -> str:
        if not self.on or not style:
            return text
        codes = [SGR[w] for w in style.split() if w in SGR and (self.colour or w not in COLORS)]
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def terminal_width(stream: t.TextIO) -> int:
    """``shutil.get_terminal_size().columns`` (``COLUMNS``, else the terminal's, else 80),
    capped at :data:`MAX_WIDTH`, without importing shutil."""
    try:
        width = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        width = 0
    if width <= 0:
        try:
            width = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            width = 80
        width = width or 80
    return min(width, MAX_WIDTH)


def _simple(ch: str) -> bool:
    """One cell wide for rich, and printed as it is."""
    o = ord(ch)
    return (
        0x20 <= o <= 0x7E
        or 0xA1 <= o <= 0xAC  # not 0xA0: a space to rich's word wrap
        or 0xAE <= o <= 0x2FF
        or 0x370 <= o <= 0x482
        or 0x2010 <= o <= 0x2027
        or 0x2190 <= o <= 0x21FF
        or 0x2500 <= o <= 0x25FC
    )


def _plain(text: str) -> bool:
    return (text.isascii() and text.isprintable()) or all(_simple(ch) for ch in text)


def _cell(text: str, width: int, right: bool = False) -> str:
    if len(text) > width:
        text = text[: width - 1] + "…" if width > 0 else ""
    return text.rjust(width) if right else text.ljust(width)


def table_text(doc: StateDoc, width: int, style: Style, at: datetime | None = None) -> str | None:
    """The status table as rich draws it (title, header, one line per task, each padded to
    ``width``), or None where the plain layout is not rich's."""
    title = f"run {doc['run_id']}: {doc['status']}"
    rows, cells = table_rows(doc, at)
    cols = columns(rows, width)
    if cols.last < 1 or len(title) > width:
        return None
    out = [style.apply(title.ljust(width), "italic")]
    pairs = enumerate(zip(HEADERS, cols, strict=True))
    head = "  ".join(_cell(h, w, i in RIGHT) for i, (h, w) in pairs)
    out.append(style.apply(head, "bold"))
    for row in cells:
        if not all(_plain(cell) for cell in row):
            return None
        task, shown, session, attempt, elapsed, last = row
        if len(shown) > cols.state or len(attempt) > cols.attempt:
            return None
        if len(elapsed) > cols.elapsed:
            return None
        parts = [
            _cell(task, cols.task),
            style.apply(_cell(shown, cols.state), STATE_STYLE.get(shown, "")),
            _cell(session_cell(session, cols.session), cols.session),
            _cell(attempt, cols.attempt, True),
            _cell(elapsed, cols.elapsed, True),
            _cell(last, cols.last),
        ]
        out.append("  ".join(parts))
    return "\n".join(out) + "\n"


def wrap(text: str, width: int) -> str | None:
    """``text`` as rich's ``Console.print`` lays it out in ``width`` columns (its word wrap:
    ``rich._wrap.divide_line``, folding words longer than a line), or None where the
    characters are not all one cell wide and printable."""
    if not _plain(text):
        return None  # also a newline: rich would split it (and print a blank line at its end)
    return "\n".join(_divide(text, width)) + "\n"


def _divide(line: str, width: int) -> list[str]:
    pieces: list[str] = []
    start = 0
    offset = 0
    pos = 0
    n = len(line)
    while pos < n:  # a word: leading spaces, non-spaces, trailing spaces
        end = pos
        while end < n and line[end] == " ":
            end += 1
        if end == n:
            break
        while end < n and line[end] != " ":
            end += 1
        while end < n and line[end] == " ":
            end += 1
        word = line[pos:end]
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            at = pos
            chunks = [word[i : i + width] for i in range(0, len(word), width)]
            for i, chunk in enumerate(chunks):
                if at:
                    pieces.append(line[start:at])
                    start = at
                if i == len(chunks) - 1:
                    offset = len(chunk)
                else:
                    at += len(chunk)
        elif offset and pos:
            pieces.append(line[start:pos])
            start = pos
            offset = len(word)
        pos = end
    pieces.append(line[start:])
    return [_fit(piece, width) for piece in pieces]


def _fit(piece: str, width: int) -> str:
    """rich's ``rstrip_end(width)`` then ``truncate(width)``: spaces beyond the width go, then
    anything beyond it."""
    if len(piece) > width:
        excess = len(piece) - width
        stripped = piece.rstrip(" ")
        piece = piece[: max(len(stripped), len(piece) - excess)]
    return piece[:width]


def why_text(whys: t.Sequence[Why], run_id: str) -> str | None:
    """Each why's lines (:func:`runner.why.text_lines`), as they are: never wrapped or cut."""
    from runner.why import logs_hint, text_lines

    lines = [line for w in whys for line in text_lines(w, hint=logs_hint(w, run_id))]
    if not all(line.replace("\n", "").isprintable() for line in lines):
        return None  # control characters (a log's colours, \r): rich strips some of them
    return "".join(line + "\n" for line in lines)


def notes(doc: StateDoc, missing: str | None) -> list[str]:
    """The lines under the table: the dead mayor, the stop reason, the pause, the escapes."""
    out: list[str] = []
    if missing is not None:
        out.append(missing)
    if doc["stop_reason"]:
        out.append(f"{doc['status']}: {doc['stop_reason']}")
    if doc["paused"]:
        out.append("dispatch is PAUSED (a critical scope escape): `swarm unpause` resumes it")
    for e in doc["escapes"]:
        decision = f"spawned {e['spawned']}" if e["spawned"] else f"rejected: {e['reason']}"
        out.append(f"escape from {e['source'] or '?'} [{e['key']}]: {decision}")
    return out


def render(
    doc: StateDoc,
    *,
    whys: t.Sequence[Why],
    missing: str | None,
    width: int,
    style: Style,
    at: datetime | None = None,
) -> str | None:
    """Everything ``swarm status`` prints for the run ``doc``, or None where this plain
    layout would not be rich's (the caller prints it with rich instead)."""
    parts = [table_text(doc, width, style, at)]
    parts += [wrap(line, width) for line in notes(doc, missing)]
    parts.append(why_text(whys, doc["run_id"]))
    if any(part is None for part in parts):
        return None
    return "".join(t.cast(list[str], parts))
