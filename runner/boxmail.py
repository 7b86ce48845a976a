"""What sandboxed workers send, verified and delivered by the mayor (``--isolation sandbox``).

A sandboxed worker can write no mailbox but its box's outbox (:class:`runner.sandbox.Box`):
``swarm worker`` delivers its mail there, its results file and its scope-escape lines too. On
every step the mayor takes them (:meth:`Collector.collect`):

- **mail**: each message file must be a regular file holding an envelope *from this worker*,
  signed with this worker's real key; it is then delivered to the real mailbox as that worker
  (a fresh id, idempotent by the outbox id, so a mayor killed between delivery and removal
  delivers it once) and removed. Anything else is moved to the outbox's ``quarantine/`` with
  a ``.reason`` and recorded as ``mail_ignored``: a message claiming another sender is never
  delivered, so forging one is impossible, not only detectable.
- **scope escapes**: complete new lines of the box's ``scope-escapes.jsonl`` (from an offset
  the mayor keeps outside the box) whose ``worker`` and ``task_id`` are this worker's are
  appended to the real ``scope-escapes.jsonl``; others are recorded as ``mail_ignored``.
- **results**: ``results/<task>.json`` for this task only, copied and removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hmac
import logging
import os
import pathlib
import stat
import typing as t

from pydantic import ValidationError
from watchdog.observers.api import BaseObserver

from agentmail.errors import AgentMailError
from agentmail.fs import O_CLOEXEC, O_NOFOLLOW, append_line, write_atomic
from agentmail.store import MailStore, load_key, sign
from agentmail.watch import Wake, start_observer
from protocol.messages import Envelope
from protocol.results import ScopeEscape, WorkerResult
from protocol.state import RunState
from runner.actions import MAYOR, worker_name
from runner.paths import RunPaths, SwarmPaths
from runner.sandbox import Box
from runner.state import RunLog

logger = logging.getLogger(__name__)

FILE_MAX: t.Final = 8 << 20
"""Largest file taken from a box (a message is at most ~1.3 MB: see agentmail.store)."""
GONE: t.Final = "gone"
_READ: t.Final = os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | os.O_NONBLOCK


class Collector:
    def __init__(self, *, store: MailStore, swarm: SwarmPaths, run: RunPaths, log: RunLog) -> None:
        self.store = store
        self.swarm = swarm
        self.run = run
        self.log = log
        self._observer: BaseObserver | None = None
        self._wake: Wake | None = None
        self._watched: set[tuple[str, int]] = set()

    def watch(self, wake: t.Callable[[], None]) -> BaseObserver | None:
        """A started watchdog observer calling ``wake`` on any change in what the run's boxes
        send (their ``swarm/`` folders: a wake-up, :meth:`collect` rescans) and on a new box;
        None when the run sandboxes no worker. Not the boxes' private homes: an agent CLI
        writes there all the time (session logs, caches), and that is nothing to collect."""
        if self.log.state.isolation != "sandbox":
            return None
        root = self.run.dir / "sandbox"
        root.mkdir(parents=True, exist_ok=True)
        self._wake = Wake(wake)
        self._observer = start_observer(self._wake, root)  # a new box: watched at the collect
        self._watch_boxes()
        return self._observer

    def _watch_boxes(self) -> None:
        """Watch each box's ``swarm/`` folder not watched yet (a box remade at a start is a new
        folder: watched again). A link there is the worker's and never followed."""
        if self._observer is None or self._wake is None:
            return
        with contextlib.suppress(FileNotFoundError), os.scandir(self.run.dir / "sandbox") as it:
            for entry in it:
                sent = pathlib.Path(entry.path, "swarm")
                try:
                    info = sent.lstat()
                except OSError:
                    continue
                key = (entry.name, info.st_ino)
                if key in self._watched or not stat.S_ISDIR(info.st_mode):
                    continue
                try:
                    self._observer.schedule(self._wake, str(sent), recursive=True)
                except OSError as exc:  # the next collect tries again; the timer still polls
                    logger.warning("cannot watch a box: %s", exc, extra={"task_id": entry.name})
                    continue
                self._watched.add(key)

    def collect(self) -> None:
        """Take what every sandboxed worker's box holds (see the module docstring)."""
        state = self.log.state
        if state.isolation != "sandbox":
            return
        self._watch_boxes()
        for record in state.tasks.values():
            if record.worktree:  # else never started: no box
                self.collect_task(record.id)

    def collect_task(self, task_id: str) -> None:
        """Take what one worker's box holds (a sandboxed worker's, or the local copy of a
        remote worker's that :mod:`runner.hosts.remote` relayed)."""
        box = Box.of(self.run, task_id, worker_name(task_id))
        if not box.root.is_dir():
            return
        try:
            self._escapes(self.log.state, box, task_id)
            self._result(box, task_id)
            self._mail(box, task_id)
        except (OSError, ValueError, AgentMailError) as exc:  # a box is the worker's
            logger.warning("could not take a box: %s", exc, extra={"task_id": task_id})

    # -- mail ------------------------------------------------------------------------------

    def _mail(self, box: Box, task_id: str) -> None:
        with _folder(box.root, "swarm", "mail", MAYOR, "new") as new:
            if new is None:
                return
            key: bytes | None = None
            for name in sorted(os.listdir(new)):  # noqa: PTH208 - a folder descriptor
                data, why = _read_regular(new, name)
                if why == GONE:
                    continue
                env: Envelope | None = None
                if not why:
                    try:
                        env = Envelope.model_validate_json(data)
                    except (ValidationError, ValueError) as exc:
                        why = f"malformed: {str(exc).splitlines()[0]}"
                if env is not None and not why:
                    key = key or load_key(self.store.key_path(box.worker))
                    why = _refusal(env, box.worker, key)
                if env is not None and not why:
                    why = self._deliver(env, key or b"")
                if why:
                    self._quarantine(box, new, name, why, task_id)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=new)

    def _deliver(self, env: Envelope, key: bytes) -> str:
        fresh = env.model_copy(
            update={"id": "", "seq": 0, "sig": "", "idempotency_key": f"box:{env.id}"[:200]}
        )
        try:
            self.store.send(fresh, key=key)
        except AgentMailError as exc:
            return f"not delivered: {exc}"
        logger.debug("delivered a sandboxed worker's mail", extra={"msg_id": env.id})
        return ""

    def _quarantine(self, box: Box, new: int, name: str, why: str, task_id: str) -> None:
        """Move ``name`` to the outbox's ``quarantine/`` with a ``.reason`` beside it (by
        folder descriptor: a link the worker planted is moved as a link, never followed)."""
        with _folder(box.root, "swarm", "mail", MAYOR, "quarantine") as qdir:
            target = name.replace(":", "_")
            with contextlib.suppress(OSError):
                if qdir is None:
                    os.unlink(name, dir_fd=new)
                else:
                    os.rename(name, target, src_dir_fd=new, dst_dir_fd=qdir)
                    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_NOFOLLOW | O_CLOEXEC
                    fd = os.open(f"{target}.reason", flags, 0o600, dir_fd=qdir)
                    with os.fdopen(fd, "w") as out:
                        out.write(why + "\n")
        logger.warning("refused a sandboxed worker's mail: %s", why, extra={"task_id": task_id})
        self.log.record("mail_ignored", task_id, sender=box.worker, reason=why, outbox=name[:100])

    # -- scope escapes and results ---------------------------------------------------------

    def _escapes(self, state: RunState, box: Box, task_id: str) -> None:
        offset_file = self.run.task_dir(task_id) / "box-escapes.offset"
        try:
            offset = int(offset_file.read_text() or 0)
        except (FileNotFoundError, ValueError):
            offset = 0
        with _folder(box.root, "swarm") as home:
            if home is None:
                return
            try:
                fd = os.open(box.escapes.name, _READ, dir_fd=home)
            except OSError:
                return  # none yet (or a planted link: ignored)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size == offset:
                return
            if info.st_size < offset:
                offset = 0  # the worker rewrote its file: take it again (ingest dedups)
            fcntl.flock(fd, fcntl.LOCK_SH)  # no append is half-written meanwhile
            data = os.pread(fd, min(info.st_size - offset, FILE_MAX), offset)
        finally:
            os.close(fd)
        complete = data[: data.rfind(b"\n") + 1]
        for line in complete.splitlines():
            why = self._escape(state, box, task_id, line)
            if why:
                self.log.record("mail_ignored", task_id, sender=box.worker, reason=why)
        offset_file.parent.mkdir(parents=True, exist_ok=True)
        offset_file.write_text(str(offset + len(complete)))

    def _escape(self, state: RunState, box: Box, task_id: str, line: bytes) -> str:
        if not line.strip():
            return ""
        try:
            escape = ScopeEscape.model_validate_json(line)
        except (ValidationError, ValueError):
            return "a scope-escape line that is not one (malformed)"
        if escape.worker != box.worker or escape.task_id not in (None, task_id):
            return (
                f"a scope-escape line claiming to be from {escape.worker!r} "
                f"(task {escape.task_id!r}): a box carries only its own worker's lines"
            )
        own = escape.model_copy(update={"task_id": task_id, "run_id": state.run_id})
        append_line(self.swarm.escapes, own.model_dump_json())
        return ""

    def _result(self, box: Box, task_id: str) -> None:
        name = f"{task_id}.json"
        with _folder(box.root, "swarm", "results") as results:
            if results is None:
                return
            data, why = _read_regular(results, name)
            if why:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=results)
        try:
            result = WorkerResult.model_validate_json(data)
        except (ValidationError, ValueError):
            return
        if result.issue_id == task_id:
            self.swarm.results.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.swarm.result(task_id), data)


@contextlib.contextmanager
def _folder(root: pathlib.Path, *parts: str) -> t.Iterator[int | None]:
    """A descriptor of ``root/<parts...>``, each part opened without following a link (the box
    is the worker's: a folder it replaced by a link to elsewhere is not entered); None when a
    part is missing or is not a real folder."""
    flags = os.O_RDONLY | os.O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC
    try:
        fd = os.open(root, flags)
    except OSError:
        yield None
        return
    try:
        for part in parts:
            try:
                child = os.open(part, flags, dir_fd=fd)
            except OSError:
                yield None
                return
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _refusal(env: Envelope, worker: str, key: bytes) -> str:
    """Why ``env`` from ``worker``'s box is not delivered ("" when it is)."""
    if env.sender != worker:
        return (
            f"claims to be from {env.sender!r}: a box carries only its own worker's mail "
            f"({worker!r})"
        )
    if not env.sig or not hmac.compare_digest(sign(env, key), env.sig):
        return f"bad signature: not signed with the key of {worker!r}"
    return ""


def _read_regular(folder: int, name: str) -> tuple[bytes, str]:
    """The bytes of regular file ``name`` in ``folder`` of at most :data:`FILE_MAX`, else why
    not (links are not followed: the box is the worker's)."""
    try:
        fd = os.open(name, _READ, dir_fd=folder)
    except FileNotFoundError:
        return b"", GONE
    except OSError as exc:
        return b"", f"cannot open: {exc.strerror} (a link or a special file)"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return b"", "not a regular file"
        if info.st_size > FILE_MAX:
            return b"", f"oversize: {info.st_size} bytes"
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), ""
    finally:
        os.close(fd)
