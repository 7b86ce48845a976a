"""OpenSSH, one connection per host: every ssh the mayor runs to a host (the ``swarm host
serve`` channel, ``git push``/``git fetch``, ``swarm attach``) shares one master connection
(``ControlMaster=auto``, ``ControlPersist``), so a host costs one TCP connection and one
authentication however many workers run there. Plain OpenSSH rather than a Python library:
it reads the user's ``~/.ssh/config`` (jump hosts, agents, keys, known hosts) exactly as the
user's own ssh does, git already speaks it, and ``swarm attach`` needs a real ssh with a tty.
"""

from __future__ import annotations

import os
import pathlib
import shlex
import stat
import tempfile
import typing as t

from protocol.hosts import HostSpec
from runner import proc
from runner.errors import CommandError, UsageError

PERSIST: t.Final = "600"
"""Seconds the master connection outlives its last client."""


def control_dir() -> pathlib.Path:
    """Where the masters' sockets live: short (a socket path has ~104 bytes), private."""
    path = pathlib.Path(tempfile.gettempdir()) / f"swarm-ssh-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    info = path.lstat()  # in a shared /tmp another user may have made it first: never use theirs
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise UsageError(
            f"{path} is not a private folder of yours (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):o}): ssh control sockets cannot live there; remove it, "
            "or set TMPDIR to a private folder"
        )
    return path


class Ssh(t.NamedTuple):
    host: HostSpec
    control: pathlib.Path

    @classmethod
    def of(cls, host: HostSpec) -> Ssh:
        return cls(host, control_dir())

    @property
    def destination(self) -> str:
        assert self.host.ssh is not None
        return self.host.ssh

    def options(self, *, batch: bool = True) -> list[str]:
        """The ssh options before the destination (``-F``, the shared master, timeouts)."""
        opts = ["-F", self.host.ssh_config] if self.host.ssh_config else []
        opts += [
            "-o",
            "ControlMaster=auto",
            "-o",
            f"ControlPath={self.control}/%n-%C",  # %n: two aliases of one address differ
            "-o",
            f"ControlPersist={PERSIST}",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
        ]
        if batch:
            opts += ["-o", "BatchMode=yes"]
        return opts

    def argv(self, *remote: str, tty: bool = False) -> list[str]:
        """``ssh ... DEST -- <remote command>``: ``remote`` quoted word by word (ssh joins its
        arguments into one shell string on the far side)."""
        head = ["ssh", *self.options(batch=not tty), *(["-t"] if tty else ["-T"])]
        return [*head, self.destination, "--", " ".join(shlex.quote(w) for w in remote)]

    def serve_argv(self) -> list[str]:
        """The ssh command that starts ``swarm host serve`` there, with the host's ``env``."""
        assert self.host.root is not None
        env = [f"{k}={v}" for k, v in sorted(self.host.env.items())]
        head = ["env", *env] if env else []
        return self.argv(*head, self.host.swarm, "host", "serve", "--root", self.host.root)

    def git_env(self) -> dict[str, str]:
        """``GIT_SSH_COMMAND`` for git over this host's master connection."""
        return {"GIT_SSH_COMMAND": shlex.join(["ssh", *self.options()])}

    def url(self, path: str | os.PathLike[str]) -> str:
        return f"ssh://{self.destination}{path}"

    def check(self) -> bool:
        """Is the master connection up (``ssh -O check``)?"""
        result = proc.run(*self._control("check"), check=False, timeout=10)
        return result.returncode == 0

    def exit_master(self) -> None:
        """Close the master connection (every channel on it ends); idempotent."""
        try:
            proc.run(*self._control("exit"), check=False, timeout=10)
        except CommandError:
            pass

    def master_pid(self) -> int | None:
        try:
            result = proc.run(*self._control("check"), check=False, timeout=10)
        except CommandError:
            return None
        text = result.stderr + result.stdout
        start = text.find("pid=")
        if start < 0:
            return None
        digits = text[start + 4 :].split(")")[0]
        return int(digits) if digits.isdigit() else None

    def _control(self, command: str) -> list[str]:
        return ["ssh", *self.options(), "-O", command, self.destination]
