"""Durable file primitives shared by the store, the leases and the worker verbs."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import secrets
import typing as t

O_NOFOLLOW: t.Final = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC: t.Final = getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: pathlib.Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` all-or-nothing: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked(path: pathlib.Path, operation: int = fcntl.LOCK_EX) -> t.Iterator[int]:
    """Open (creating) ``path`` and hold ``flock(operation)`` on it; yields the descriptor."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, operation)
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


def append_line(path: pathlib.Path, line: str) -> None:
    """Append one line with a single ``write()`` under ``flock``, then fsync.

    Concurrent appenders (several processes) never interleave: each line lands whole.
    """
    data = (line.rstrip("\n") + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        written = os.write(fd, data)
        if written != len(data):  # pragma: no cover - regular files write whole on Linux
            raise OSError(f"short write to {path}: {written} of {len(data)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)
