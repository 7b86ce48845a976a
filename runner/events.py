"""The one reader of a run's ``events.jsonl``: replay (:func:`read_events`) and tail
(:class:`EventTail`), with one policy for a bad line.

The log is appended by one writer, a whole line per ``write()`` (:class:`runner.state.RunLog`),
so the only damage a crash can leave is a *torn last line*: bytes without their newline. Both
readers treat a line as present only once its newline is there: the replay ignores a torn tail
(the next writer cuts it off before appending), the tail waits for it. A *complete* line that is
not an event is corruption, not a crash: both raise :class:`~runner.errors.UsageError` naming
``file:line``, never skip it (a skipped event would silently change the state folded from the
log).
"""

from __future__ import annotations

import logging
import pathlib
import typing as t

from protocol.state import Event
from runner.errors import UsageError

logger = logging.getLogger(__name__)


def parse_line(path: pathlib.Path, lineno: int, line: bytes) -> Event:
    """One complete line of ``path`` as an event; UsageError naming ``path:lineno`` if not."""
    try:
        return Event.model_validate_json(line)
    except ValueError:
        raise UsageError(f"{path}:{lineno}: corrupt event line") from None


def parse_lines(path: pathlib.Path, first_lineno: int, data: bytes) -> list[Event]:
    """The events of ``data`` (complete lines only, each ending in a newline)."""
    return [
        parse_line(path, lineno, line)
        for lineno, line in enumerate(data.split(b"\n")[:-1], first_lineno)
        if line.strip()
    ]


def read_events(path: pathlib.Path) -> list[Event]:
    """Every complete event of ``path``, in order (none when it does not exist).

    A torn last line (no trailing newline: a crash mid-append) is ignored; a corrupt complete
    line raises :class:`UsageError` naming ``path:line``."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    end = raw.rfind(b"\n") + 1
    if raw[end:].strip():
        logger.warning("ignored a torn last event line in %s", path, extra={"path": str(path)})
    return parse_lines(path, 1, raw[:end])


class Chunk(t.NamedTuple):
    events: list[Event]
    """The complete events appended since the last read, in order."""
    restarted: bool = False
    """The file shrank (it was replaced): ``events`` start again from its first line, and
    whatever the caller folded before belongs to another file."""


class EventTail:
    """Follows ``events.jsonl`` from a byte offset: each :meth:`read` returns the complete
    events appended since the last one, so a wake-up costs only the new lines. A torn last line
    is left for a later read (it waits for its newline); a corrupt complete line raises
    :class:`UsageError` naming ``path:line`` (and is read again, and raises again, next time);
    a missing file has no events yet."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.offset = 0
        """Bytes of the file consumed: always the end of a complete line."""
        self.lineno = 0
        """Lines of the file consumed."""

    def read(self) -> Chunk:
        try:
            with self.path.open("rb") as fh:
                size = fh.seek(0, 2)
                restarted = size < self.offset
                if restarted:
                    logger.warning(
                        "events file shrank; reading it again", extra={"path": str(self.path)}
                    )
                    self.offset = self.lineno = 0
                fh.seek(self.offset)
                raw = fh.read()
        except FileNotFoundError:
            return Chunk([])
        end = raw.rfind(b"\n") + 1  # only whole lines; a torn tail is read next time
        events = parse_lines(self.path, self.lineno + 1, raw[:end])
        self.offset += end
        self.lineno += raw.count(b"\n", 0, end)
        return Chunk(events, restarted)
