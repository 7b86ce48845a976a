"""Durable file primitives: the one place for atomic writes, directory fsync, appends under
``flock``, and the exclusive / shared / probing locks.

Everything above this module (the store, the leases, the worker verbs, the runner's state, run
and report files) writes files through these functions, so "how is a file made durable" has one
answer (STYLE.md "Durability"): a temp file in the same directory, fsync, ``os.replace``, fsync
the directory; appends that several processes share are one ``write()`` of one line under
``fcntl.flock``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import typing as t

O_NOFOLLOW: t.Final = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC: t.Final = getattr(os, "O_CLOEXEC", 0)
PRIVATE: t.Final = 0o600
"""Mode of mail, keys, results and leases (only the owner reads them)."""
PUBLIC: t.Final = 0o666
"""Mode before the umask: what ``open(path, "w")`` gives (run state, plans, reports)."""


def fsync_dir(path: pathlib.Path) -> None:
    """Make the entries of directory ``path`` (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: pathlib.Path, data: bytes, *, mode: int = PRIVATE) -> None:
    """Write ``data`` to ``path`` all-or-nothing: temp file, fsync, rename, fsync the directory.

    Readers see the old content or the new one, never a part; on any error the temp file is
    removed and ``path`` is left as it was. ``mode`` applies to a new file (less the umask).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text_atomic(path: pathlib.Path, text: str, *, mode: int = PUBLIC) -> None:
    """:func:`write_atomic` for text (UTF-8); by default with the mode ``open()`` would give."""
    write_atomic(path, text.encode(), mode=mode)


@contextlib.contextmanager
def locked(path: pathlib.Path, operation: int = fcntl.LOCK_EX) -> t.Iterator[int]:
    """Open (creating) ``path`` and hold ``flock(operation)`` on it, waiting for it; yields the
    descriptor. Closing it at the end of the block releases the lock."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW | O_CLOEXEC, PRIVATE)
    except OSError as exc:
        if exc.errno != errno.EROFS or operation & fcntl.LOCK_EX:
            raise
        # a read-only mount (a sandboxed worker's inbox): a shared lock needs no write access
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
    try:
        fcntl.flock(fd, operation)
        yield fd
    finally:
        os.close(fd)


def shared_lock(path: pathlib.Path) -> t.ContextManager[int]:
    """Hold a shared ``flock`` on ``path`` (waiting for an exclusive holder to let go)."""
    return locked(path, fcntl.LOCK_SH)


@contextlib.contextmanager
def exclusive_lock(path: pathlib.Path) -> t.Iterator[bool]:
    """Try to hold an exclusive ``flock`` on ``path`` for the block, without waiting.

    Yields True when this process holds it (the file then names our pid, for a human looking),
    False when another process does. One mayor per run is this lock on the run's lock file.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | O_CLOEXEC, PRIVATE)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield True
    finally:
        os.close(fd)


def lock_held(path: pathlib.Path) -> bool:
    """Does a process hold the ``flock`` on ``path``? A shared, non-blocking probe that writes
    nothing and creates nothing (a missing file is not held)."""
    try:
        fd = os.open(path, os.O_RDONLY | O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock too
    return False


def append_line(path: pathlib.Path, line: str, *, mode: int = PRIVATE) -> None:
    """Append one line with a single ``write()`` under ``flock``, then fsync.

    Concurrent appenders (several processes) never interleave: each line lands whole.
    """
    append_bytes(path, (line.rstrip("\n") + "\n").encode(), mode=mode)


def append_bytes(path: pathlib.Path, data: bytes, *, mode: int = PRIVATE) -> None:
    """Append ``data`` (whole lines) with a single ``write()`` under ``flock``, then fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | O_NOFOLLOW | O_CLOEXEC, mode)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - regular files write whole on Linux
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)
