"""The sending half of the mailbox, without pydantic: the sender's lock and sequence, the
signature, the idempotency record, and delivery into each inbox (``tmp/`` then a hard link per
``new/``, numbered by the inbox's ``.delivery`` counter).

:class:`agentmail.store.MailStore` sends through :func:`send_doc` after validating the envelope
with pydantic; the fast path of ``swarm worker`` (``agentmail.wire``) sends the same dictionary
without ever importing pydantic, so one report costs an interpreter start-up and little more.
Both produce the same bytes: the signed document is the envelope's JSON dump (``model_dump(
mode="json")``), signed over its compact key-sorted form (``Envelope.canonical_bytes``).

The file formats are described in :mod:`agentmail.store`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import threading
import typing as t

from agentmail.errors import BadInput, BodyTooLarge, IdempotencyConflict, UnknownAgent
from agentmail.fs import O_CLOEXEC, O_NOFOLLOW, fsync_dir, locked, write_atomic
from protocol.ids import check_id

DEFAULT_MAX_BODY: t.Final = 1 << 20
ENVELOPE_OVERHEAD: t.Final = 256 << 10  # headers and fields around the body
DSEQ_WIDTH: t.Final = 12
COUNTER_WIDTH: t.Final = 20
RECORDS_FROM_AT: t.Final = 20  # where .delivery keeps the first dseq that has a record
RECORDS_AT: t.Final = 64
RECORD_WIDTH: t.Final = DSEQ_WIDTH + 1 + 26 + 1  # "<dseq>.<ulid>\n"

Doc = dict[str, t.Any]

try:  # the builtin SHA-256: hashlib and hmac load OpenSSL first, which a report cannot afford
    from _sha256 import sha256  # type: ignore[import-not-found]  # CPython's, without stubs
except ImportError:  # pragma: no cover - an interpreter built without it
    from hashlib import sha256
_IPAD: t.Final = bytes(x ^ 0x36 for x in range(256))
_OPAD: t.Final = bytes(x ^ 0x5C for x in range(256))


def sha256_hex(data: bytes) -> str:
    return str(sha256(data).hexdigest())


def hmac_sha256(key: bytes, msg: bytes) -> str:
    """HMAC-SHA256 of ``msg`` (RFC 2104, what ``hmac.new(key, msg, "sha256")`` computes; the
    test compares them) as hex."""
    if len(key) > 64:
        key = sha256(key).digest()
    key = key.ljust(64, b"\0")
    inner = sha256(key.translate(_IPAD) + msg).digest()
    return str(sha256(key.translate(_OPAD) + inner).hexdigest())


def check_agent(agent: str) -> str:
    """``agent`` if it is a valid agent name (an id: no ``/``, no ``..``), else BadInput."""
    try:
        return check_id(agent)
    except ValueError as exc:
        raise BadInput(f"agent name: {exc}") from None


def read_counter(fd: int) -> int:
    raw = os.pread(fd, COUNTER_WIDTH, 0).strip()
    return int(raw) if raw else 0


def write_counter(fd: int, value: int) -> None:
    os.pwrite(fd, f"{value:0{COUNTER_WIDTH}d}".encode(), 0)


def records_from(fd: int) -> int:
    """The first dseq with a delivery record (0: none yet, an inbox from before records)."""
    raw = os.pread(fd, COUNTER_WIDTH, RECORDS_FROM_AT).strip(b"\0 ")
    return int(raw) if raw.isdigit() else 0


def record(dseq: int, msg_id: str) -> bytes:
    return f"{dseq:0{DSEQ_WIDTH}d}.{msg_id}\n".encode()


def write_record(fd: int, dseq: int, msg_id: str) -> None:
    """Record delivery ``dseq`` (exclusive inbox lock held); start the records if need be."""
    if records_from(fd) == 0:
        os.pwrite(fd, f"{dseq:0{COUNTER_WIDTH}d}".encode(), RECORDS_FROM_AT)
    os.pwrite(fd, record(dseq, msg_id), RECORDS_AT + RECORD_WIDTH * (dseq - 1))


def read_records(fd: int, first: int, last: int) -> dict[int, str]:
    """The message id recorded for each dseq in ``first..last`` (both included) that has a
    well-formed record; one ``pread``."""
    if last < first:
        return {}
    raw = os.pread(fd, RECORD_WIDTH * (last - first + 1), RECORDS_AT + RECORD_WIDTH * (first - 1))
    out: dict[int, str] = {}
    for i in range(len(raw) // RECORD_WIDTH):
        chunk = raw[i * RECORD_WIDTH : (i + 1) * RECORD_WIDTH]
        dseq = first + i
        if chunk[:DSEQ_WIDTH] == b"%012d" % dseq and chunk[-1:] == b"\n":
            out[dseq] = chunk[DSEQ_WIDTH + 1 : -1].decode("ascii", "replace")
    return out


def read_key_text(text: str) -> bytes:
    """A key file's content (hex) as bytes."""
    text = text.strip()
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode()


def load_key(path: pathlib.Path) -> bytes:
    """Read an HMAC key file (as written by :meth:`agentmail.store.MailStore.register`)."""
    fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    try:
        return read_key_text(os.read(fd, 4096).decode("ascii", "replace"))
    finally:
        os.close(fd)


def registered_box(root: pathlib.Path, agent: str) -> str:
    """The Maildir of a registered ``agent`` as a string, else UnknownAgent."""
    box = f"{root}/{check_agent(agent)}"
    if not (os.path.isdir(f"{box}/new") and os.path.isfile(f"{root}/.keys/{agent}.key")):  # noqa: PTH112, PTH113 - str paths on the hot path
        raise UnknownAgent(agent, root)
    return box


def dumps(doc: t.Mapping[str, t.Any]) -> bytes:
    """Compact, key-sorted JSON: the form a signature is computed over."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def canonical(doc: t.Mapping[str, t.Any]) -> bytes:
    """The signed bytes of an envelope document (``Envelope.canonical_bytes``)."""
    return dumps({k: v for k, v in doc.items() if k != "sig"})


def content_digest(doc: t.Mapping[str, t.Any], *, skip: t.Sequence[str] = ()) -> str:
    """What an idempotent retry must repeat: everything but the store-assigned parts (and
    ``skip``)."""
    skip = ("id", "seq", "created", "sig", *skip)
    return sha256_hex(dumps({k: v for k, v in doc.items() if k not in skip}))


def recipients(doc: t.Mapping[str, t.Any]) -> tuple[str, ...]:
    """``to`` then ``cc``, without duplicates, in order."""
    return tuple(dict.fromkeys((*doc["to"], *doc.get("cc", ()))))


class Delivered(t.NamedTuple):
    """A sent message: its signed document and file bytes; ``retried`` when an earlier send
    with the same idempotency key had sent it already (nothing new was delivered)."""

    doc: Doc
    data: bytes
    retried: bool = False


Redeliver = t.Callable[[Doc], None]
"""Called (sender lock held) with the idempotency record of a key already used for the same
message: make sure every inbox has it (a crash may have come between the record and a link)."""
Present = t.Callable[[str, str], bool]
"""Is message ``id`` already in ``agent``'s inbox (a retry skips those)?"""


def send_doc(
    root: pathlib.Path,
    doc: Doc,
    key: bytes,
    *,
    new_id: t.Callable[[], str],
    redeliver: Redeliver,
    max_body: int = DEFAULT_MAX_BODY,
    digest_skip: t.Sequence[str] = (),
) -> Delivered:
    """Sign and deliver the envelope document ``doc`` (``id`` filled if empty, the sender's
    next ``seq``) to every recipient.

    A document whose ``idempotency_key`` was used before delivers nothing new: the same message
    (compared without the store's parts and ``digest_skip``) is completed with ``redeliver``
    and returned; another one raises :class:`IdempotencyConflict`.
    """
    sender = check_agent(doc["from"])
    for agent in recipients(doc):
        registered_box(root, agent)
    size = len(doc["body_md"].encode())
    if size > max_body:
        raise BodyTooLarge(size, max_body)
    sdir = root / ".senders" / sender
    sdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The sender lock covers seq assignment and delivery, so a sender's messages reach
    # every inbox in seq order (per-sender FIFO) even with several sending processes.
    with locked(sdir / "seq") as fd:
        idem_path: pathlib.Path | None = None
        digest = ""
        if doc.get("idempotency_key") is not None:
            digest = content_digest(doc, skip=digest_skip)
            name = sha256_hex(doc["idempotency_key"].encode())
            idem_path = sdir / "idem" / f"{name}.json"
            try:
                previous = json.loads(idem_path.read_bytes())
            except FileNotFoundError:
                pass
            else:
                if previous.get("digest") != digest:
                    raise IdempotencyConflict(sender, doc["idempotency_key"], str(previous["id"]))
                redeliver(previous)
                data = str(previous["data"]).encode()
                stored = _ordered_like(doc, json.loads(data))  # the file is key-sorted
                return Delivered(stored, data, retried=True)
        seq = read_counter(fd) + 1
        write_counter(fd, seq)
        doc = {**doc, "id": doc["id"] or new_id(), "seq": seq}
        signed = canonical(doc)
        doc["sig"] = hmac_sha256(key, signed)
        data = signed[:-1] + b',"sig":"' + doc["sig"].encode() + b'"}'
        if len(data) > max_body + ENVELOPE_OVERHEAD:
            raise BodyTooLarge(len(data) - ENVELOPE_OVERHEAD, max_body)
        if idem_path is not None:
            idem_path.parent.mkdir(mode=0o700, exist_ok=True)
            entry = {"digest": digest, "id": doc["id"], "data": data.decode()}
            write_atomic(idem_path, json.dumps(entry).encode())
        deliver(root, doc["id"], data, recipients(doc))
    return Delivered(doc, data)


def _ordered_like(template: t.Any, value: t.Any) -> t.Any:
    """``value`` with the keys of its dictionaries in ``template``'s order (then the rest)."""
    if not isinstance(value, dict) or not isinstance(template, dict):
        return value
    keys = [k for k in template if k in value] + [k for k in value if k not in template]
    return {k: _ordered_like(template.get(k), value[k]) for k in keys}


def send_sequenced(
    root: pathlib.Path,
    doc: Doc,
    key: bytes,
    stream: str,
    *,
    new_id: t.Callable[[], str],
    redeliver: Redeliver,
    max_body: int = DEFAULT_MAX_BODY,
    digest_skip: t.Sequence[str] = (),
) -> Delivered:
    """Send ``doc`` as the next message of the sender's ``stream``, idempotently.

    Its idempotency key is ``<stream>:<n>``, counted in ``.senders/<agent>/streams/<sha256>``
    (the count, then the digest of the last message counted) only once the message is in every
    inbox. A sender killed at any point and run again therefore reuses the same key, and the
    retry delivers nothing twice: killed before the count, it finds the key's record; killed
    after it (on its way out), it is the same message as the last one counted, which is that
    same report, not a new one. If the key went out with another message (the sender died
    before counting it, and what runs now is something else), the next number is taken."""
    sdir = root / ".senders" / check_agent(doc["from"]) / "streams"
    sdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest = content_digest(doc, skip=(*digest_skip, "idempotency_key")).encode()
    with locked(sdir / sha256_hex(stream.encode())[:40]) as fd:
        n = read_counter(fd)
        if n == 0 or os.pread(fd, len(digest), COUNTER_WIDTH) != digest:
            n += 1  # not the last message again: the next one
        while True:
            try:
                sent = send_doc(
                    root,
                    {**doc, "idempotency_key": f"{stream}:{n}"},
                    key,
                    new_id=new_id,
                    redeliver=redeliver,
                    max_body=max_body,
                    digest_skip=digest_skip,
                )
            except IdempotencyConflict:
                n += 1
                continue
            os.pwrite(fd, digest, COUNTER_WIDTH)  # the digest first: a kill between the two
            write_counter(fd, n)  # writes leaves a digest the old count never matches
            return sent


def deliver(
    root: pathlib.Path,
    msg_id: str,
    data: bytes,
    agents: t.Sequence[str],
    *,
    present: Present | None = None,
) -> None:
    """Write ``data`` once to a ``tmp/``, hard-link it into each ``new/``, make it durable.

    A link is atomic, and the data is complete in the file before the first link, so a
    reader (or a sender killed at any instant) never sees a partial message. The file fsync
    comes after the links: on a journaling filesystem it commits them in the same
    transaction, which makes the directory fsyncs that POSIX asks for nearly free.
    """
    first = registered_box(root, agents[0])
    fd, tmp = _open_tmp(f"{first}/tmp", msg_id)
    linked: list[str] = []
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        for agent in agents:
            box = registered_box(root, agent)
            if present is not None and present(agent, msg_id):
                continue
            lock_fd = os.open(f"{box}/.delivery", os.O_RDWR | os.O_CREAT | O_CLOEXEC, 0o600)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                # count first: a crash before the link leaves a gap, never a reused number
                dseq = read_counter(lock_fd) + 1
                write_counter(lock_fd, dseq)
                write_record(lock_fd, dseq, msg_id)
                _link(fd, tmp, f"{box}/new/{dseq:0{DSEQ_WIDTH}d}.{msg_id}")
            finally:
                os.close(lock_fd)
            linked.append(box)
        os.fsync(fd)
    finally:
        os.close(fd)
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # noqa: PTH108 - str paths on the hot path
    for box in linked:
        fsync_dir(pathlib.Path(box, "new"))


def _open_tmp(tmp_dir: str, msg_id: str) -> tuple[int, str | None]:
    """A new file in ``tmp_dir``: anonymous (``O_TMPFILE``, so a killed sender leaves no
    garbage) where the kernel and filesystem allow it, else a unique name."""
    if hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd"):  # noqa: PTH112
        try:
            return os.open(tmp_dir, os.O_TMPFILE | os.O_WRONLY | O_CLOEXEC, 0o600), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    path = f"{tmp_dir}/{msg_id}.{os.getpid()}.{threading.get_ident()}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC
    return os.open(path, flags, 0o600), path


def _link(fd: int, tmp: str | None, target: str) -> None:
    """Hard-link the file open as ``fd`` (named ``tmp``, or anonymous) to ``target``."""
    if tmp is not None:
        os.link(tmp, target)
    else:
        # linkat(AT_SYMLINK_FOLLOW) through /proc names an O_TMPFILE; Python only calls linkat
        # when given a directory descriptor (ignored here: the source path is absolute)
        dir_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
        try:
            os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=dir_fd, follow_symlinks=True)
        finally:
            os.close(dir_fd)
