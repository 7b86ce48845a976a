"""The mailbox: one Maildir per agent under a mail root, atomic delivery, signed envelopes,
cursor listing, explicit read/ack state and quarantine.

Layout (docs/agent-mail.md)::

    <root>/<agent>/tmp/ new/ cur/ quarantine/    one Maildir per agent (directories 0700)
    <root>/<agent>/.delivery                     per-inbox delivery counter, under flock
    <root>/.keys/<agent>.key                     HMAC-SHA256 key (0600)
    <root>/.senders/<agent>/seq                  per-sender sequence counter, under flock
    <root>/.senders/<agent>/idem/<sha256>.json   idempotency records

A message file is named ``<dseq>.<ulid>`` in ``new/`` and ``<dseq>.<ulid>:2,<flags>`` in
``cur/``: ``dseq`` is the inbox's own delivery sequence, assigned under the inbox lock at the
moment the file is linked into ``new/``. Listing holds the same lock shared, so a listing sees
every delivery numbered below any it sees: the cursor is a ``dseq`` and never skips a message,
however ids from different processes interleave or arrive late.

Delivery numbers come only from the store's counter. ``.delivery`` holds the counter, the first
number with a delivery record, and one fixed-width record ``<dseq>.<ulid>`` per delivery (at
offset ``64 + 40 * (dseq - 1)``), all written under the inbox lock before the link. A listing
admits only names the store delivered: a number beyond the counter (a worker that copied an
old message in under a huge number, which would drag every cursor past all later mail), a
number whose record names another message (a copy under a new name, a collision) or, before
records began, a second copy of a message already listed, is quarantined before anything can
read it, so it never moves a cursor.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import logging
import os
import pathlib
import re
import secrets
import stat
import threading
import time
import typing as t

from agentmail import ledger, ulid, wire
from agentmail.delivery import (
    COUNTER_WIDTH,
    DEFAULT_MAX_BODY,
    DSEQ_WIDTH,
    ENVELOPE_OVERHEAD,
    RECORD_WIDTH,
    RECORDS_AT,
    RECORDS_FROM_AT,
    check_agent,
    load_key,
    read_counter,
    read_key_text,
    recipients,
    record,
    records_from,
    registered_box,
    send_doc,
    write_counter,
)
from agentmail.errors import (
    BadInput,
    ReadOnlyInbox,
    UnknownAgent,
    UnknownMessage,
)
from agentmail.fs import O_CLOEXEC, O_NOFOLLOW, fsync_dir, locked, write_atomic

if t.TYPE_CHECKING:  # imported where used: a listing (swarm mail inbox) can do without them
    from protocol.messages import Envelope, MessageType

__all__ = (
    "DEFAULT_MAX_BODY",
    "DocPage",
    "MailStore",
    "Page",
    "Stored",
    "StoredDoc",
    "check_agent",
    "load_key",
    "read_key_text",
    "sign",
)

logger = logging.getLogger(__name__)

_NEW_RE: t.Final = re.compile(r"(\d{12})\.([0-9A-HJKMNP-TV-Z]{26})")
_CUR_RE: t.Final = re.compile(r"(\d{12})\.([0-9A-HJKMNP-TV-Z]{26}):2,([A-Za-z]*)")
_CACHE_SIZE: t.Final = 8192
FLAG_READ: t.Final = "S"
FLAG_ACKED: t.Final = "A"


class Stored(t.NamedTuple):
    """A verified message in one agent's inbox and its state there."""

    envelope: Envelope
    read: bool
    acked: bool
    file: str
    """Where the file was when it was listed (``path`` as a string: a listing of thousands
    does not build a Path each)."""
    dseq: int = 0

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def path(self) -> pathlib.Path:
        return pathlib.Path(self.file)


class Page(t.NamedTuple):
    messages: tuple[Stored, ...]
    next_cursor: str | None
    has_more: bool = False


class StoredDoc(t.NamedTuple):
    """A verified message as its JSON document (``Envelope.model_dump(mode="json")``): what a
    listing shows, without building the models (:meth:`MailStore.list_docs`)."""

    doc: dict[str, t.Any]
    read: bool
    acked: bool
    file: str
    dseq: int = 0


class DocPage(t.NamedTuple):
    messages: tuple[StoredDoc, ...]
    next_cursor: str | None
    has_more: bool = False


_SURROGATE_ESCAPE: t.Final = re.compile(rb"\\u[dD][89a-fA-F]")
"""A JSON escape of a UTF-16 surrogate: such a string is the models' to judge."""


_Entry = ledger.Entry
_Item = t.TypeVar("_Item", "Stored", "StoredDoc")


class _Ledger(t.NamedTuple):
    """What the inbox's ``.delivery`` says about the deliveries after some cursor."""

    counter: int
    records_from: int
    after: int
    records: bytes  # the records of dseq after+1 .. counter (where they exist)

    def admits(self, dseq: int, msg_id: str) -> str:
        """ "" if the store delivered ``msg_id`` as ``dseq``, else why not."""
        if dseq > self.counter:
            return (
                f"delivery number {dseq} is beyond the inbox's counter {self.counter}: "
                "not delivered by the store (a copied or planted file)"
            )
        if self.records_from == 0 or dseq < self.records_from:
            return ""  # delivered before records began: the counter is all there is
        start = RECORD_WIDTH * (dseq - self.after - 1)
        if self.records[start : start + RECORD_WIDTH] != record(dseq, msg_id):
            return (
                f"delivery number {dseq} was not given to message {msg_id}: "
                "not delivered by the store (a copy under a new name, or a collision)"
            )
        return ""


def _read_ledger(fd: int, after: int) -> _Ledger:
    counter = read_counter(fd)
    first_record = records_from(fd)
    records = b""
    if first_record and counter > after:
        first = max(after, first_record - 1)
        length = RECORD_WIDTH * (counter - first)
        records = b"\0" * (RECORD_WIDTH * (first - after))
        records += os.pread(fd, length, RECORDS_AT + RECORD_WIDTH * first)
    return _Ledger(counter, first_record, after, records)


def sign(envelope: Envelope, key: bytes) -> str:
    return hmac.new(key, envelope.canonical_bytes(), hashlib.sha256).hexdigest()


def _key_written(path: pathlib.Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


class MailStore:
    """Maildir-per-agent mail under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: pathlib.Path, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.root = pathlib.Path(root)
        self.max_body = max_body
        self._ids = ulid.UlidGenerator()
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}
        self._cache: collections.OrderedDict[tuple[str, str], Envelope] = collections.OrderedDict()
        self._where: dict[tuple[str, str], int] = {}  # (agent, id) -> dseq, for fast lookups
        self._boxes: dict[str, str] = {}  # registered agents' Maildirs
        self._sealed: dict[str, bool] = {}  # inboxes on a read-only mount (a sandbox's)
        self._swept: dict[str, tuple[int, int]] = {}  # Maildir stamps at the last sweep

    # ---------------------------------------------------------------- paths and registration

    def maildir(self, agent: str) -> pathlib.Path:
        return self.root / check_agent(agent)

    def key_path(self, agent: str) -> pathlib.Path:
        return self.root / ".keys" / f"{check_agent(agent)}.key"

    def quarantine_dir(self, agent: str) -> pathlib.Path:
        return self.maildir(agent) / "quarantine"

    def is_registered(self, agent: str) -> bool:
        try:
            box = self.maildir(agent)
        except BadInput:
            return False
        return (box / "new").is_dir() and self.key_path(agent).is_file()

    def agents(self) -> tuple[str, ...]:
        """Registered agents, sorted."""
        if not self.root.is_dir():
            return ()
        return tuple(
            sorted(
                p.name
                for p in self.root.iterdir()
                if not p.name.startswith(".") and self.is_registered(p.name)
            )
        )

    def register(self, agent: str) -> pathlib.Path:
        """Create ``agent``'s Maildir and HMAC key (idempotent); return the key file's path."""
        box = self.maildir(agent)
        for path in (
            self.root,
            self.root / ".keys",
            self.root / ".senders",
            box,
            *(box / sub for sub in ("tmp", "new", "cur", "quarantine")),
        ):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locked(box / ".delivery") as fd:
            if read_counter(fd) == 0 and records_from(fd) == 0:
                os.pwrite(fd, f"{1:0{COUNTER_WIDTH}d}".encode(), RECORDS_FROM_AT)
                write_counter(fd, 0)
        key_path = self.key_path(agent)
        if not _key_written(key_path):
            # tmp + fsync + link: a crash never leaves an empty key (a worker could sign with
            # nothing that verifies); link fails if another registration won the race
            tmp = key_path.with_name(f".{key_path.name}.{os.getpid()}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            try:
                os.write(fd, (secrets.token_hex(32) + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                if key_path.exists():  # empty: left by a crash before any message was signed
                    tmp.replace(key_path)
                else:
                    os.link(tmp, key_path)
            except FileExistsError:
                pass  # registered concurrently
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(key_path.parent)
            logger.info("registered agent", extra={"agent": agent})
        return key_path

    def _key(self, agent: str) -> bytes | None:
        with self._lock:
            key = self._keys.get(agent)
        if key is not None:
            return key
        try:
            fd = os.open(self.key_path(agent), os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        except OSError:
            return None
        try:
            text = os.read(fd, 4096).decode("ascii", "replace").strip()
        finally:
            os.close(fd)
        if not text:
            return None
        key = read_key_text(text)
        with self._lock:
            self._keys[agent] = key
        return key

    # ---------------------------------------------------------------------------- sending

    def send(self, envelope: Envelope, *, key: bytes | None = None) -> Envelope:
        """Deliver ``envelope`` to every recipient; return the stored (signed) envelope.

        Fills ``id`` (ULID) if unset and always assigns the sender's next ``seq``; signs with
        ``key`` or the sender's key file. Each inbox sees the message whole or not at all.
        A retried send with the same ``idempotency_key`` delivers nothing new and returns the
        original; the same key with a different message raises :class:`IdempotencyConflict`.
        """
        sender = check_agent(envelope.sender)
        if envelope.id and not ulid.is_ulid(envelope.id):
            raise BadInput(f"message id {envelope.id!r} is not a ULID (leave it empty)")
        if key is None:
            key = self._key(sender)
            if key is None:
                raise UnknownAgent(sender, self.root)

        sent = send_doc(
            self.root,
            envelope.model_dump(mode="json"),
            key,
            new_id=self._ids.new,
            redeliver=self.redeliver,
            max_body=self.max_body,
        )
        logger.debug("sent message", extra={"msg_id": sent.doc["id"], "agent": sender})
        if sent.retried:
            from protocol.messages import Envelope

            return Envelope.model_validate_json(sent.data)
        return envelope.model_copy(
            update={"id": sent.doc["id"], "seq": sent.doc["seq"], "sig": sent.doc["sig"]}
        )

    def redeliver(self, previous: t.Mapping[str, t.Any]) -> None:
        """Complete an earlier send from its idempotency record (:func:`ledger.redeliver`)."""
        ledger.redeliver(self.root, previous)
        logger.debug("idempotent retry", extra={"msg_id": previous.get("id")})

    def _box(self, agent: str) -> str:
        """The Maildir of a registered ``agent`` as a string (cached), else UnknownAgent."""
        box = self._boxes.get(agent)
        if box is None:
            box = registered_box(self.root, agent)
            self._boxes[agent] = box
        return box

    def sealed(self, agent: str) -> bool:
        """Is ``agent``'s inbox on a read-only mount here? A sandboxed worker's is (the mayor
        delivers into it from outside): nobody here can have written what it holds, so its mail
        is trusted by the mount where this store has no key for the sender (a sandbox holds
        only its worker's key), and nothing in it is moved (not quarantined, not marked)."""
        sealed = self._sealed.get(agent)
        if sealed is None:
            try:
                sealed = bool(os.statvfs(self._box(agent)).f_flag & os.ST_RDONLY)
            except OSError:
                sealed = False
            self._sealed[agent] = sealed
        return sealed

    # ---------------------------------------------------------------------------- reading

    def _scan(self, agent: str, *, after: int = 0, include_cur: bool = True) -> list[_Entry]:
        """Every message entry of ``agent`` with ``dseq > after``, in delivery order.

        Holds the inbox lock shared, so no delivery is half-visible: if a ``dseq`` is seen,
        every smaller one already delivered is seen too. Names that are not messages are
        quarantined on the way. ``include_cur=False`` lists ``new/`` only (the watcher's fast
        path: it checks the result is contiguous from ``after``).
        """
        box = self._box(agent)
        floor = f"{after:0{DSEQ_WIDTH}d}"
        subs = ("new", "cur") if include_cur else ("new",)
        with locked(pathlib.Path(box, ".delivery"), fcntl.LOCK_SH) as lock_fd:
            # os.listdir: names only, the fastest listing (the lock is held meanwhile)
            listed = [(sub, os.listdir(f"{box}/{sub}")) for sub in subs]  # noqa: PTH208
            ledger = _read_ledger(lock_fd, after)
        entries: dict[int, _Entry] = {}
        strays: list[tuple[str, str]] = []
        forged: list[tuple[str, str, str]] = []
        leftovers: list[str] = []
        for sub, names in listed:
            in_cur = sub == "cur"
            pattern = _CUR_RE if in_cur else _NEW_RE
            for name in names:
                if name[:DSEQ_WIDTH] <= floor and name[DSEQ_WIDTH : DSEQ_WIDTH + 1] == ".":
                    continue  # at or before the cursor (cheap test before the regex)
                match = pattern.fullmatch(name)
                if match is None:
                    strays.append((sub, name))
                    continue
                dseq = int(match.group(1))
                refused = ledger.admits(dseq, match.group(2))
                if refused:
                    forged.append((sub, name, refused))
                    continue
                flags = match.group(3) if in_cur else ""
                known = entries.get(dseq)
                if known is not None and known.msg_id != match.group(2):
                    # two messages under one number (only possible before records began)
                    forged.append((sub, name, f"delivery number {dseq} is taken by {known.msg_id}"))
                    continue
                if in_cur and dseq in entries and not entries[dseq].in_cur:
                    leftovers.append(entries[dseq].name)  # mark_read died between link, unlink
                entries[dseq] = _Entry(dseq, match.group(2), name, in_cur, flags)
        for name in leftovers if not self.sealed(agent) else ():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{box}/new/{name}")  # noqa: PTH108 - str paths on the hot path
        for sub, name in strays:
            if sub == "cur" and _NEW_RE.fullmatch(name):
                continue  # a message moved by another Maildir client without flags: leave it
            self._quarantine(agent, sub, name, "not a message file name (expected <seq>.<ulid>)")
        ordered = [entries[k] for k in sorted(entries)]
        if ledger.records_from == 0 or after + 1 < ledger.records_from:
            ordered = self._drop_copies(agent, ordered, forged)
        for sub, name, reason in forged:
            self._quarantine(agent, sub, name, reason)
        return ordered

    def _drop_copies(
        self, agent: str, entries: list[_Entry], forged: list[tuple[str, str, str]]
    ) -> list[_Entry]:
        """Before delivery records began: keep the first delivery of each message id."""
        first: dict[str, int] = {}
        kept: list[_Entry] = []
        for entry in entries:
            if entry.msg_id in first:
                sub = "cur" if entry.in_cur else "new"
                reason = (
                    f"a copy of message {entry.msg_id}, delivered as {first[entry.msg_id]}: "
                    "not delivered by the store"
                )
                forged.append((sub, entry.name, reason))
                continue
            first[entry.msg_id] = entry.dseq
            kept.append(entry)
        return kept

    def _entry_path(self, agent: str, entry: _Entry) -> pathlib.Path:
        return self.maildir(agent) / ("cur" if entry.in_cur else "new") / entry.name

    def _load(self, agent: str, entry: _Entry) -> Stored | None:
        """Read, parse and verify one entry; quarantine it (and return None) if it is bad."""
        read = FLAG_READ in entry.flags
        acked = FLAG_ACKED in entry.flags
        cache_key = (agent, entry.msg_id)
        with self._lock:
            env = self._cache.get(cache_key)
            if env is not None:
                self._cache.move_to_end(cache_key)
        if env is not None:
            return Stored(env, read, acked, self._entry_file(agent, entry), entry.dseq)
        got = self._read_entry(agent, entry)
        if got is None:
            return None
        path, data = got
        env = self._verified(agent, entry, data)
        if env is None:
            return None
        with self._lock:
            self._cache[cache_key] = env
            self._where[cache_key] = entry.dseq
            if len(self._cache) > _CACHE_SIZE:
                old, _ = self._cache.popitem(last=False)
                self._where.pop(old, None)
        return Stored(env, read, acked, path, entry.dseq)

    def _load_doc(self, agent: str, entry: _Entry) -> StoredDoc | None:
        """:meth:`_load` as a document: checked by hand when the file is exactly as the store
        writes a message (:func:`wire.normal_envelope`, the signature over the bytes as
        written), else by the models, which quarantine what is bad."""
        got = self._read_entry(agent, entry)
        if got is None:
            return None
        path, data = got
        doc = self._doc_as_written(agent, entry.msg_id, data)
        if doc is None:
            env = self._verified(agent, entry, data)
            if env is None:
                return None
            doc = json.loads(env.to_json())
        with self._lock:
            self._where[(agent, entry.msg_id)] = entry.dseq
        flags = entry.flags
        return StoredDoc(doc, FLAG_READ in flags, FLAG_ACKED in flags, path, entry.dseq)

    def _entry_file(self, agent: str, entry: _Entry) -> str:
        return f"{self._box(agent)}/{'cur' if entry.in_cur else 'new'}/{entry.name}"

    def _read_entry(self, agent: str, entry: _Entry) -> tuple[str, bytes] | None:
        """(path, bytes) of an entry's file; None if it is gone or bad (then quarantined)."""
        sub = "cur" if entry.in_cur else "new"
        path = self._entry_file(agent, entry)
        try:
            fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None  # moved by a concurrent reader (read/ack/quarantine)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._quarantine(agent, sub, entry.name, "symlink: message files must be files")
            else:
                self._quarantine(agent, sub, entry.name, f"cannot open: {exc.strerror}")
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                reason = "not a regular file"
                data = b""
            elif info.st_size > self.max_body * 6 + ENVELOPE_OVERHEAD:
                reason = f"oversize: {info.st_size} bytes"
                data = b""
            else:
                reason = ""
                data = _read_all(fd, info.st_size)
        finally:
            os.close(fd)
        if reason:
            self._quarantine(agent, sub, entry.name, reason)
            return None
        return path, data

    def _verified(self, agent: str, entry: _Entry, data: bytes) -> Envelope | None:
        env, problem = self._verify(agent, entry.msg_id, data)
        if env is None:
            self._quarantine(agent, "cur" if entry.in_cur else "new", entry.name, problem)
        return env

    def _doc_as_written(self, agent: str, msg_id: str, data: bytes) -> dict[str, t.Any] | None:
        """The document of a message file in the store's own form that passes every check of
        :meth:`_verify`, else None (the models then judge it, with the reason)."""
        if b"\\u" in data and _SURROGATE_ESCAPE.search(data):
            return None
        try:
            doc = wire.normal_envelope(json.loads(data.decode()))
        except (ValueError, RecursionError):  # not UTF-8, not JSON, nested beyond reason
            return None
        if (
            doc is None
            or doc["id"] != msg_id
            or agent not in recipients(doc)
            or len(doc["body_md"].encode()) > self.max_body
            or not doc["sig"]
        ):
            return None
        key = self._key(doc["from"])
        if key is None or not _signed_as_written(data, doc["sig"], key):
            return None
        return doc

    def _verify(self, agent: str, msg_id: str, data: bytes) -> tuple[Envelope | None, str]:
        from pydantic import ValidationError

        from protocol.messages import Envelope

        try:
            env = Envelope.model_validate_json(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "document"
            return None, f"malformed: {where}: {first['msg']}"
        except ValueError as exc:  # pragma: no cover - pydantic wraps JSON errors
            return None, f"malformed: {exc}"
        if env.id != msg_id:
            return None, f"id mismatch: file name says {msg_id}, envelope says {env.id}"
        if agent not in env.recipients:
            return None, f"not addressed to {agent!r}"
        if len(env.body_md.encode()) > self.max_body:
            return None, f"oversize body: over {self.max_body} bytes"
        key = self._key(env.sender)
        if key is None:
            if env.sig and self.sealed(agent):
                return env, ""  # delivered from outside a read-only mount (see sealed)
            return None, f"unknown sender {env.sender!r}: no key to verify its signature"
        if not env.sig:
            return None, f"unsigned message claiming to be from {env.sender!r}"
        if _signed_as_written(data, env.sig, key):
            return env, ""
        expected = hmac.new(key, env.canonical_bytes(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, env.sig):
            return None, (
                f"bad signature: not signed with the key of {env.sender!r} "
                "(forged sender or altered message)"
            )
        return env, ""

    def _quarantine(self, agent: str, sub: str, name: str, reason: str) -> None:
        """Move ``<agent>/<sub>/<name>`` to ``quarantine/`` with a ``.reason`` file beside it
        (on a read-only mount it stays where it is, unlisted)."""
        if self.sealed(agent):
            logger.warning(
                "bad message left in a read-only inbox: %s",
                reason,
                extra={"agent": agent, "msg_file": f"{sub}/{name}"},
            )
            return
        box = self.maildir(agent)
        qdir = box / "quarantine"
        qdir.mkdir(mode=0o700, exist_ok=True)
        safe = name.replace(":", "_") or "unnamed"
        target = qdir / safe
        if target.exists() or target.is_symlink():
            target = qdir / f"{safe}.{time.time_ns()}"
        try:
            _move(box / sub / name, target)
        except FileNotFoundError:
            return  # someone else moved it first
        doc = {
            "reason": reason,
            "source": f"{sub}/{name}",
            "agent": agent,
            "quarantined": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with contextlib.suppress(OSError):
            write_atomic(target.with_name(target.name + ".reason"), json.dumps(doc).encode())
        logger.warning(
            "quarantined message: %s", reason, extra={"agent": agent, "msg_file": f"{sub}/{name}"}
        )

    def quarantined(self, agent: str) -> tuple[tuple[str, str], ...]:
        """(file name, reason) of every quarantined file of ``agent``."""
        qdir = self.quarantine_dir(agent)
        out = []
        if qdir.is_dir():
            for path in sorted(qdir.iterdir()):
                if path.name.endswith(".reason"):
                    try:
                        doc = json.loads(path.read_text())
                        out.append((path.name[: -len(".reason")], str(doc.get("reason", ""))))
                    except (OSError, ValueError):
                        out.append((path.name[: -len(".reason")], "?"))
        return tuple(out)

    def parse_cursor(self, agent: str, cursor: str | None) -> int:
        """The ``dseq`` after which a listing resumes: a cursor from a Page, or a message id."""
        if cursor is None or cursor == "":
            return 0
        if cursor.isdigit():
            return int(cursor)
        if ulid.is_ulid(cursor):
            entry = self._find(agent, cursor)
            if entry is None:
                raise UnknownMessage(agent, cursor)
            return entry.dseq
        raise BadInput(
            f"invalid cursor {cursor!r}: pass the next_cursor of a previous listing or a message id"
        )

    def list(
        self,
        agent: str,
        *,
        cursor: str | None = None,
        before: str | None = None,
        newest: bool = False,
        limit: int | None = None,
        unread: bool | None = None,
        unacked: bool | None = None,
        type: MessageType | None = None,
        thread: str | None = None,
        sender: str | None = None,
    ) -> Page:
        """Messages of ``agent`` after ``cursor`` (and before ``before``) in delivery order, or
        newest first with ``newest``; never changes state.

        ``unacked=True`` keeps messages that require an ack and have none yet. ``next_cursor``
        resumes after the last message examined (filtered-out ones included): pass it as
        ``cursor`` to go on forward, or, newest first, as ``before`` to go on to older ones.
        A page costs what it lists, not the inbox (:mod:`agentmail.ledger`).
        """
        items, next_cursor, has_more = self._page(
            agent,
            self._load,
            _about_stored,
            cursor=cursor,
            before=before,
            newest=newest,
            limit=limit,
            unread=unread,
            unacked=unacked,
            type=type,
            thread=thread,
            sender=sender,
        )
        return Page(tuple(items), next_cursor, has_more)

    def list_docs(
        self,
        agent: str,
        *,
        cursor: str | None = None,
        before: str | None = None,
        newest: bool = False,
        limit: int | None = None,
        unread: bool | None = None,
        unacked: bool | None = None,
        type: str | None = None,
        thread: str | None = None,
        sender: str | None = None,
    ) -> DocPage:
        """:meth:`list` as documents, for showing (``swarm mail inbox``): a message in the
        store's own form is checked without building the models (the same checks, the same
        quarantine for what fails them); what acts on a message reads it with :meth:`list`."""
        items, next_cursor, has_more = self._page(
            agent,
            self._load_doc,
            _about_doc,
            cursor=cursor,
            before=before,
            newest=newest,
            limit=limit,
            unread=unread,
            unacked=unacked,
            type=type,
            thread=thread,
            sender=sender,
        )
        return DocPage(tuple(items), next_cursor, has_more)

    def _page(
        self,
        agent: str,
        load: t.Callable[[str, _Entry], _Item | None],
        about: t.Callable[[_Item], tuple[bool, str, str | None, str]],
        *,
        cursor: str | None,
        before: str | None,
        newest: bool,
        limit: int | None,
        unread: bool | None,
        unacked: bool | None,
        type: str | None,
        thread: str | None,
        sender: str | None,
    ) -> tuple[t.Sequence[_Item], str | None, bool]:
        """The messages of one page, loaded by ``load``; ``about`` tells of one its
        (ack_required, type, thread, sender)."""
        if limit is not None and limit < 1:
            raise BadInput(f"limit must be at least 1, not {limit}")
        after = self.parse_cursor(agent, cursor)
        upto = self.parse_cursor(agent, before) if before else None
        out: list[_Item] = []
        last = after if not newest else (upto or 0)
        has_more = False
        for entry in self._entries(agent, after=after, before=upto, newest=newest):
            if limit is not None and len(out) >= limit:
                has_more = True
                break
            last = entry.dseq
            if unread is not None and (FLAG_READ not in entry.flags) != unread:
                continue
            item = load(agent, entry)
            if item is None:
                continue
            ack_required, mtype, thread_id, from_ = about(item)
            acked = FLAG_ACKED in entry.flags
            if unacked is not None and (ack_required and not acked) != unacked:
                continue
            if type is not None and mtype != type:
                continue
            if thread is not None and thread_id != thread:
                continue
            if sender is not None and from_ != sender:
                continue
            out.append(item)
        touched = last or cursor is not None or before is not None
        next_cursor = f"{last:0{DSEQ_WIDTH}d}" if touched else None
        return out, next_cursor, has_more

    def _entries(
        self, agent: str, *, after: int, before: int | None, newest: bool
    ) -> t.Iterator[_Entry]:
        """The entries ``after < dseq < before``: from the delivery records where they cover
        the range (O(page)), else by listing the Maildir (an inbox an older swarm wrote)."""
        box = self._box(agent)
        if not newest and before is None:  # the mayor's way through its inbox
            self._sweep(agent, box)
        first, _ = ledger.span(box)
        if first and after + 1 >= first:
            return ledger.entries(box, after=after, before=before, newest=newest)
        found = [e for e in self._scan(agent, after=after) if before is None or e.dseq < before]
        return iter(reversed(found) if newest else found)

    def _sweep(self, agent: str, box: str) -> None:
        """Quarantine what is in the Maildir that the store did not deliver (a planted file,
        a copy under a new name, junk), whenever ``new/`` or ``cur/`` changed since the last
        sweep of this store: a listing reads only what the records name, so this is hygiene,
        and paging through an inbox that does not change costs one sweep, not one a page."""
        try:
            new, cur = pathlib.Path(box, "new").stat(), pathlib.Path(box, "cur").stat()
            stamp = (new.st_mtime_ns, cur.st_mtime_ns)
        except FileNotFoundError:
            return
        if self._swept.get(agent) == stamp:
            return
        self._scan(agent)
        self._swept[agent] = stamp

    def _find(self, agent: str, msg_id: str) -> _Entry | None:
        with self._lock:
            dseq = self._where.get((agent, msg_id))
        if dseq is not None:
            entry = self._probe(agent, msg_id, dseq)
            if entry is not None:
                return entry
        for entry in self._scan(agent):
            if entry.msg_id == msg_id:
                return entry
        return None

    def get(self, agent: str, msg_id: str) -> Stored:
        entry = self._find(agent, msg_id)
        stored = None if entry is None else self._load(agent, entry)
        if stored is None:
            raise UnknownMessage(agent, msg_id)
        return stored

    def thread(self, agent: str, thread_id: str) -> tuple[Stored, ...]:
        """Every message of ``thread_id`` in ``agent``'s inbox, in delivery order."""
        return self.list(agent, thread=thread_id).messages

    def mark_read(self, agent: str, msg_id: str) -> None:
        """Record that ``agent`` has read (acted on) the message: ``new/`` -> ``cur/:2,S``."""
        self._set_flag(agent, msg_id, FLAG_READ)

    def ack(self, agent: str, msg_id: str) -> None:
        """Record ``agent``'s acknowledgement of the message (Maildir flag ``A``)."""
        self._set_flag(agent, msg_id, FLAG_ACKED)

    def _set_flag(self, agent: str, msg_id: str, flag: str) -> None:
        stored = self.get(agent, msg_id)  # verifies (and quarantines a forgery) first
        if self.sealed(agent):
            raise ReadOnlyInbox(agent)
        box = self.maildir(agent)
        with locked(box / ".delivery"):
            entry = self._find_unlocked(agent, msg_id, stored.dseq)
            if entry is None:
                raise UnknownMessage(agent, msg_id)
            if flag in entry.flags:
                return
            flags = "".join(sorted(set(entry.flags + flag)))
            source = box / ("cur" if entry.in_cur else "new") / entry.name
            target = box / "cur" / f"{entry.dseq:0{DSEQ_WIDTH}d}.{msg_id}:2,{flags}"
            if entry.in_cur:
                source.rename(target)
            else:
                _move(source, target, before_unlink=lambda: fsync_dir(box / "cur"))
        fsync_dir(box / "cur")
        if not entry.in_cur:
            fsync_dir(box / "new")

    def _probe(self, agent: str, msg_id: str, dseq: int) -> _Entry | None:
        """The entry of a message whose ``dseq`` is known, by trying the usual names."""
        return ledger.probe(str(self.maildir(agent)), msg_id, dseq)

    def _find_unlocked(self, agent: str, msg_id: str, dseq: int) -> _Entry | None:
        box = str(self.maildir(agent))
        entry = ledger.probe(box, msg_id, dseq)
        if entry is None:  # flags another Maildir client wrote
            entry = ledger.probe(box, msg_id, dseq, os.listdir(f"{box}/cur"))  # noqa: PTH208
        return entry


def _about_stored(stored: Stored) -> tuple[bool, str, str | None, str]:
    env = stored.envelope
    return env.ack_required, env.type, env.thread_id, env.sender


def _about_doc(stored: StoredDoc) -> tuple[bool, str, str | None, str]:
    doc = stored.doc
    return doc["ack_required"], doc["type"], doc["thread_id"], doc["from"]


_SIG_AT: t.Final = b',"sig":"'
_SIGNED_TAIL: t.Final = len(_SIG_AT) + 64 + 2


def _signed_as_written(data: bytes, sig: str, key: bytes) -> bool:
    """Is ``data`` as the store writes a message (the signed bytes, then ``"sig"`` last) with
    ``sig`` a good signature of those very bytes? Then the parsed envelope is what the key's
    holder signed, and the canonical form need not be rebuilt from the model to check it (the
    slow way, which stays for any other layout)."""
    if len(data) <= _SIGNED_TAIL or data[-_SIGNED_TAIL:-66] != _SIG_AT or data[-2:] != b'"}':
        return False
    written = data[-66:-2]
    if written != sig.encode():
        return False
    expected = hmac.digest(key, data[:-_SIGNED_TAIL] + b"}", "sha256").hex()  # one C call
    return hmac.compare_digest(expected.encode(), written)


def _move(
    source: pathlib.Path,
    target: pathlib.Path,
    before_unlink: t.Callable[[], None] | None = None,
) -> None:
    """Move a file out of ``new/`` by link + unlink rather than rename.

    A rename out of a watched directory is an IN_MOVED_FROM event, which watchdog holds back
    0.5 s to pair it with an IN_MOVED_TO, and every event queued behind it waits too: one
    ``mark_read`` would delay the next wake-up by half a second. Link + unlink are plain
    IN_CREATE/IN_DELETE events. Directories (quarantined junk) are renamed.
    """
    try:
        os.link(source, target, follow_symlinks=False)
    except FileNotFoundError:
        raise
    except OSError:
        source.rename(target)
        return
    if before_unlink is not None:
        before_unlink()
    with contextlib.suppress(FileNotFoundError):
        source.unlink()


def _read_all(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size + 1
    while remaining > 0:
        chunk = os.read(fd, max(remaining, 65536))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
