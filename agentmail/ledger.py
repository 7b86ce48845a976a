"""Listing an inbox page by page from its delivery records, in O(page) rather than O(inbox).

``.delivery`` keeps one fixed-width record ``<dseq>.<ulid>`` per delivery at a known offset
(:mod:`agentmail.delivery`), so the messages numbered ``a..b`` are one ``pread`` away, and each
one's file is found by trying the few names it can have (``new/<dseq>.<ulid>``, or ``cur/`` with
its flags) instead of listing the directories. Newest-first is the same walk from the counter
down. A number without a file (a delivery that crashed before its link, a message quarantined
since) is skipped; a file the records do not name is never looked at. Inboxes from before the
records began are listed the old way (:meth:`agentmail.store.MailStore._scan`).
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import typing as t

from agentmail.delivery import (
    DSEQ_WIDTH,
    RECORD_WIDTH,
    RECORDS_AT,
    deliver,
    read_counter,
    read_records,
    recipients,
    records_from,
    registered_box,
)
from agentmail.fs import shared_lock

CHUNK: t.Final = 64
"""Records read (and files probed) per visit under the inbox lock."""
FLAG_ORDER: t.Final = ("S", "AS", "A", "")
"""The ``cur/`` flags the store writes, most likely first."""


class Entry(t.NamedTuple):
    dseq: int
    msg_id: str
    name: str
    in_cur: bool
    flags: str


def probe(
    box: str, msg_id: str, dseq: int, cur_names: t.Sequence[str] = (), *, new_first: bool = False
) -> Entry | None:
    """The entry of message ``msg_id`` delivered as ``dseq`` in Maildir ``box``, by trying the
    names it can have (``cur/`` first: it wins over a ``new/`` copy a ``mark_read`` killed
    between its link and its unlink left); ``cur_names`` (a listing of ``cur/``) finds flags
    another Maildir client wrote.

    ``new_first`` looks in ``new/`` first, and settles there with one ``lstat`` when the file
    is a regular file with no other name: a ``cur/`` copy is a hard link of it (the store moves
    by link + unlink), so there is none (a message read in the meantime is no longer there)."""
    base = f"{dseq:0{DSEQ_WIDTH}d}.{msg_id}"
    if new_first:
        try:
            info = os.lstat(f"{box}/new/{base}")
        except FileNotFoundError:
            pass
        else:
            if info.st_nlink == 1 and stat.S_ISREG(info.st_mode):
                return Entry(dseq, msg_id, base, False, "")
    for flags in FLAG_ORDER:
        if os.path.lexists(f"{box}/cur/{base}:2,{flags}"):
            return Entry(dseq, msg_id, f"{base}:2,{flags}", True, flags)
    for name in cur_names:
        if name.startswith(base + ":2,"):
            return Entry(dseq, msg_id, name, True, name[len(base) + 3 :])
    if os.path.lexists(f"{box}/new/{base}"):
        return Entry(dseq, msg_id, base, False, "")
    return None


class Span(t.NamedTuple):
    """What the records can answer for: deliveries ``first..last``; ``first`` is 0 when the
    inbox has no records (an older swarm wrote it)."""

    first: int
    last: int


def span(box: str) -> Span:
    with _shared(box) as fd:
        return Span(records_from(fd), read_counter(fd))


def entries(
    box: str, *, after: int, before: int | None, newest: bool, chunk: int = CHUNK
) -> t.Iterator[Entry]:
    """The entries with ``after < dseq < before`` in delivery order (``newest``: the reverse),
    ``chunk`` records per visit; the records must cover the range (:func:`span`)."""
    with _shared(box) as fd:
        top = read_counter(fd)
    high = top if before is None else min(top, before - 1)
    low = after + 1
    while low <= high:
        if newest:
            first, last = max(low, high - chunk + 1), high
        else:
            first, last = low, min(high, low + chunk - 1)
        found = _visit(box, first, last)
        yield from (reversed(found) if newest else found)
        if newest:
            high = first - 1
        else:
            low = last + 1


def _visit(box: str, first: int, last: int) -> list[Entry]:
    """The entries of deliveries ``first..last`` (inbox lock held shared: no delivery or move
    is half done meanwhile)."""
    out: list[Entry] = []
    missed: list[tuple[int, str]] = []
    with _shared(box) as fd:
        new_first = True  # where the last one was: read and unread mail come in runs
        for dseq, msg_id in read_records(fd, first, last).items():
            entry = probe(box, msg_id, dseq, new_first=new_first)
            if entry is None:
                missed.append((dseq, msg_id))
            else:
                out.append(entry)
                new_first = not entry.in_cur
        if missed:  # a gap, a quarantined message, or flags another client wrote
            names = os.listdir(f"{box}/cur")  # noqa: PTH208 - names only
            out += filter(None, (probe(box, m, d, names) for d, m in missed))
    out.sort()
    return out


def _shared(box: str) -> t.ContextManager[int]:
    return shared_lock(pathlib.Path(box, ".delivery"))


def delivered(box: str, msg_id: str) -> bool:
    """Is ``msg_id`` in Maildir ``box``: recorded as delivered (one read of the records,
    searched in C) and its file linked (a sender killed between the two left a gap)?"""
    with _shared(box) as fd:
        if not records_from(fd):  # an inbox from before the records: look at the names
            return any(name.split(":")[0].endswith(f".{msg_id}") for name in _names(box))
        records = os.pread(fd, RECORD_WIDTH * read_counter(fd), RECORDS_AT)
        needle = f".{msg_id}\n".encode()
        at = records.find(needle)
        while at >= 0:  # every record of it: a redelivery after a gap records it again
            if (at + 1) % RECORD_WIDTH == DSEQ_WIDTH + 1:
                dseq = at // RECORD_WIDTH + 1
                if probe(box, msg_id, dseq) is not None or any(
                    name.startswith(f"{dseq:0{DSEQ_WIDTH}d}.{msg_id}:") for name in _names(box)
                ):
                    return True
            at = records.find(needle, at + 1)
        return False


def _names(box: str) -> t.Iterator[str]:
    for sub in ("new", "cur"):
        yield from os.listdir(f"{box}/{sub}")  # noqa: PTH208 - names only


def redeliver(root: pathlib.Path, previous: t.Mapping[str, t.Any]) -> None:
    """Complete an earlier send from its idempotency record (:func:`agentmail.delivery.send_doc`):
    link the message into every recipient's inbox that the store never delivered it to (the
    sender died between the record and the last link)."""
    data = str(previous["data"]).encode()
    doc = json.loads(data)
    deliver(
        root,
        doc["id"],
        data,
        recipients(doc),
        present=lambda agent, msg_id: delivered(registered_box(root, agent), msg_id),
    )
