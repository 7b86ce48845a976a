"""The mayor's end of one host: a ``swarm host serve`` over ssh, restarted when it is lost.

:meth:`HostLink.request` sends one JSON line and waits for its reply; a connection that died
(the master killed, the network gone, sshd stopped) is reconnected on the next request, and
until that succeeds the host counts as down since the first failure (:attr:`down_since`):
the mayor re-places its tasks only after a grace period (:mod:`runner.hosts.remote`).
Requests are idempotent (see :mod:`runner.hosts.agent`), so one cut mid-request is retried
on the new connection.
"""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
import typing as t

from protocol.hosts import HOST_PROTOCOL, HostSpec
from runner.errors import RunnerError
from runner.hosts.ssh import Ssh

logger = logging.getLogger(__name__)

TIMEOUT: t.Final = 30.0
RETRY_AFTER: t.Final = 1.0
"""Seconds between two connection attempts to a host that is down."""


class HostUnreachable(RunnerError):
    def __init__(self, host: str, why: str) -> None:
        self.host = host
        self.why = why
        super().__init__(f"host {host} unreachable: {why}")


class HostRefused(RunnerError):
    """The host answered with an error (``kind``: ``exists``, ``usage``, ``error``)."""

    def __init__(self, host: str, op: str, message: str, kind: str) -> None:
        self.host = host
        self.kind = kind
        super().__init__(f"host {host}: {op}: {message}")


class HostLink:
    def __init__(self, host: HostSpec, on_event: t.Callable[[], None] | None = None) -> None:
        self.host = host
        self.ssh = Ssh.of(host)
        self.on_event = on_event
        self.down_since: float | None = None
        self.hello: dict[str, t.Any] = {}
        self.connects = 0
        self._lock = threading.Lock()  # one request at a time on the channel
        self._cond = threading.Condition()
        self._replies: dict[int, dict[str, t.Any]] = {}
        self._next = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._alive = False
        self._last_try = 0.0

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def connected(self) -> bool:
        """Is a ``serve`` channel open (as far as its reader knows)?"""
        return self._alive

    def request(self, op: str, *, timeout: float = TIMEOUT, **args: t.Any) -> dict[str, t.Any]:
        """``op``'s reply; :class:`HostUnreachable` when the host cannot be reached (after one
        reconnect), :class:`HostRefused` when it answered with an error."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    if not self._alive:
                        self._connect()
                    reply = self._ask(op, args, timeout)
                except HostUnreachable:
                    self._drop()
                    if attempt == 2 or self.down_since is not None:
                        self.down_since = self.down_since or time.time()
                        raise
                    continue
                self.down_since = None
                if "error" in reply:
                    raise HostRefused(
                        self.name, op, str(reply["error"]), str(reply.get("kind", "error"))
                    )
                ok: dict[str, t.Any] = reply.get("ok") or {}
                return ok
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self, *, master: bool = True) -> None:
        with self._lock:
            self._drop()
        if master:
            self.ssh.exit_master()

    # -- the channel -----------------------------------------------------------------------

    def _connect(self) -> None:
        now = time.monotonic()
        if self.down_since is not None and now - self._last_try < RETRY_AFTER:
            raise HostUnreachable(self.name, "still down (retrying each second)")
        self._last_try = now
        argv = self.ssh.serve_argv()
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # a Ctrl-C of whoever follows the run is not ours
            )
        except OSError as exc:
            raise HostUnreachable(self.name, f"cannot run ssh: {exc}") from exc
        self._proc = popen
        self._alive = True
        threading.Thread(
            target=self._read, args=(popen,), name=f"swarm-host-{self.name}", daemon=True
        ).start()
        self.connects += 1
        hello = self._ask("hello", {}, TIMEOUT)
        if hello.get("ok", {}).get("protocol") != HOST_PROTOCOL:
            self._drop()
            raise HostUnreachable(self.name, f"swarm host serve answered {hello!r}")
        self.hello = hello["ok"]
        logger.info("connected to host %s", self.name, extra={"host": self.name})

    def _ask(self, op: str, args: t.Mapping[str, t.Any], timeout: float) -> dict[str, t.Any]:
        popen = self._proc
        if popen is None or popen.stdin is None:
            raise HostUnreachable(self.name, "not connected")
        self._next += 1
        rid = self._next
        line = json.dumps({"id": rid, "op": op, **args}, separators=(",", ":")).encode() + b"\n"
        try:
            popen.stdin.write(line)
            popen.stdin.flush()
        except (OSError, ValueError) as exc:
            raise HostUnreachable(self.name, f"connection lost: {exc}") from exc
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._replies:
                left = deadline - time.monotonic()
                if not self._alive or popen.poll() is not None:
                    raise HostUnreachable(self.name, self._why(popen))
                if left <= 0:
                    raise HostUnreachable(self.name, f"no answer to {op} in {timeout:g}s")
                self._cond.wait(min(left, 0.5))
            return self._replies.pop(rid)

    def _read(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        for raw in iter(popen.stdout.readline, b""):
            try:
                doc = json.loads(raw)
            except ValueError:
                logger.warning("host %s wrote a line that is not JSON", self.name)
                continue
            if isinstance(doc, dict) and "event" in doc:
                if self.on_event is not None:
                    self.on_event()
                continue
            with self._cond:
                if isinstance(doc, dict) and isinstance(doc.get("id"), int):
                    self._replies[doc["id"]] = doc
                self._cond.notify_all()
        with self._cond:
            if self._proc is popen:
                self._alive = False
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event()  # the mayor looks again (and finds the host down)

    def _why(self, popen: subprocess.Popen[bytes]) -> str:
        code = popen.poll()
        err = b""
        if code is not None and popen.stderr is not None:
            try:
                err = popen.stderr.read() or b""
            except (OSError, ValueError):
                err = b""
        lines = err.decode(errors="replace").strip().splitlines()
        return f"ssh exited {code}" + (f": {lines[-1]}" if lines else "")

    def _drop(self) -> None:
        popen, self._proc = self._proc, None
        self._alive = False
        with self._cond:
            self._replies.clear()
        if popen is None:
            return
        for pipe in (popen.stdin,):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:
                pass
        try:
            popen.wait(timeout=3)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait()
