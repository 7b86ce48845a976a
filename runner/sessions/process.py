"""The plain-process backend (``--mode=local``): see :mod:`runner.sessions`."""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import signal
import subprocess
import threading

from runner import proc
from runner.errors import UsageError
from runner.sessions.base import (
    MISSING,
    ExitCallback,
    SessionExists,
    SessionSpec,
    SessionStatus,
    _notify,
    _tail,
    check_session_name,
    find_executable,
)

logger = logging.getLogger(__name__)

# --- plain processes ---------------------------------------------------------------------------


class _Child:
    def __init__(self, popen: subprocess.Popen[bytes] | None, log_path: pathlib.Path) -> None:
        self.popen = popen
        self.log_path = log_path
        self.waiter: threading.Thread | None = None
        self.missing_status: int | None = None


class ProcessBackend:
    """Agents as plain child processes (``--mode=local``): each in its own process group, output
    appended to the log, a waiter thread per child calling the exit callback. ``kill`` sends
    SIGTERM to the group, then SIGKILL after ``grace`` seconds."""

    def __init__(self, *, grace: float = 5.0) -> None:
        self.grace = grace
        self._lock = threading.Lock()
        self._children: dict[str, _Child] = {}
        self._callback: ExitCallback | None = None

    def start(self, spec: SessionSpec, *, check_binary: bool = True) -> None:
        name = check_session_name(spec.name)
        if not spec.cwd.is_dir():
            raise UsageError(
                f"cannot start session {name}: working directory {spec.cwd} is missing"
            )
        if check_binary or not spec.argv:
            find_executable(spec.argv, spec.cwd, spec.env)
        with self._lock:
            old = self._children.get(name)
        if old is not None:
            if old.popen is not None and old.popen.poll() is None:
                raise SessionExists(name)
            self.kill(name)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = proc.clean_env(spec.env)
        with spec.log_path.open("ab") as log:
            try:
                popen: subprocess.Popen[bytes] | None = subprocess.Popen(
                    list(spec.argv),
                    cwd=spec.cwd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except (FileNotFoundError, PermissionError) as exc:
                log.write(f"{spec.argv[0]}: {exc.strerror or 'command not found'}\n".encode())
                popen = None
        child = _Child(popen, spec.log_path)
        with self._lock:
            self._children[name] = child
        if popen is None:
            child.missing_status = 127  # like a shell: dead at once, status 127, reported
            self._notify(name)
        else:
            child.waiter = threading.Thread(
                target=self._wait, args=(name, popen), name=f"swarm-wait-{name}", daemon=True
            )
            child.waiter.start()
        logger.info("started process", extra={"session": name, "pid": popen and popen.pid})

    def _wait(self, name: str, popen: subprocess.Popen[bytes]) -> None:
        popen.wait()
        self._notify(name)

    def _notify(self, name: str) -> None:
        _notify(self._callback, name)

    def status(self, name: str) -> SessionStatus:
        with self._lock:
            child = self._children.get(name)
        if child is None:
            return MISSING
        if child.popen is None:
            return SessionStatus(True, False, child.missing_status, None)
        code = child.popen.poll()
        if code is None:
            return SessionStatus(True, True, None, child.popen.pid)
        return SessionStatus(True, False, code if code >= 0 else None, child.popen.pid)

    def statuses(self, prefix: str) -> dict[str, SessionStatus]:
        with self._lock:
            names = sorted(n for n in self._children if n.startswith(prefix))
        found = {name: self.status(name) for name in names}
        return {name: status for name, status in found.items() if status.exists}

    def list_sessions(self, prefix: str) -> list[str]:
        with self._lock:
            return sorted(n for n in self._children if n.startswith(prefix))

    def kill(self, name: str) -> None:
        with self._lock:
            child = self._children.pop(name, None)
        if child is None or child.popen is None:
            return
        popen = child.popen
        if popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(self.grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()
        # the agent may have left children in its group behind
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(popen.pid, signal.SIGKILL)
        if child.waiter is not None:
            child.waiter.join()
        logger.debug("killed process", extra={"session": name})

    def capture(self, name: str, lines: int = 50) -> str:
        with self._lock:
            child = self._children.get(name)
        if child is None:
            return ""
        try:
            data = _read_tail(child.log_path, 64 * 1024 + 200 * max(lines, 0))
        except FileNotFoundError:
            return ""
        return _tail(data, lines)

    def screen(self, name: str) -> str:
        return ""  # a plain process has no screen: its output is only a log

    def send_text(self, name: str, text: str) -> bool:
        return False  # stdin is /dev/null: nothing can be typed to a plain process

    def set_exit_callback(self, callback: ExitCallback) -> None:
        self._callback = callback
        with self._lock:
            dead = [n for n, c in self._children.items() if c.popen is None]
        for name in dead:
            self._notify(name)

    def close(self) -> None:
        """Forget the callback and join the waiters of children that have exited (a waiter of a
        live child keeps reaping it; :meth:`kill` ends both)."""
        self._callback = None
        with self._lock:
            children = list(self._children.values())
        for child in children:
            if (
                child.waiter is not None
                and child.popen is not None
                and child.popen.poll() is not None
            ):
                child.waiter.join()


def _read_tail(path: pathlib.Path, size: int) -> str:
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        end = fh.tell()
        fh.seek(max(0, end - size))
        return fh.read().decode("utf-8", errors="replace")
