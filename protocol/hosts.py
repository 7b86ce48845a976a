"""Hosts a run places workers on (``[[tool.swarm.hosts]]``), as the config names them and as
``run_created`` records them (so ``swarm resume`` reaches the same hosts).

``local`` is a host too: the mayor's own machine, always present, reached without ssh. A
remote host is an ssh destination as in ``~/.ssh/config``, with a work root there and the path
of ``swarm`` there. The wire format the mayor and ``swarm host serve`` speak is JSON lines
(one request ``{"id", "op", ...}``, one reply ``{"id", "ok", ...}`` or ``{"id", "error"}``;
unsolicited ``{"event": "changed"}`` lines are wake-ups), kept in :mod:`runner.hosts.agent`.
"""

from __future__ import annotations

import typing as t

from pydantic import Field, field_validator

from protocol.base import Id, Model

LOCAL: t.Final = "local"
HOST_PROTOCOL: t.Final = 1
"""Version of the JSON-lines protocol of ``swarm host serve`` (``hello`` says it)."""


class HostSpec(Model):
    """One host of ``[[tool.swarm.hosts]]``."""

    name: Id
    ssh: str | None = None
    """The ssh destination (a ``Host`` of ``~/.ssh/config``, or ``user@host``); None: local."""
    slots: int = Field(default=2, ge=1)
    """How many workers run there at once."""
    root: str | None = None
    """The work root on the host (absolute): its bare repository, clones and worker boxes."""
    swarm: str = "swarm"
    """The ``swarm`` executable on the host (``pipx install swarm-runner``: ``swarm``)."""
    ssh_config: str | None = None
    """An ssh client config file (``ssh -F``); None: the user's own ``~/.ssh/config``."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment of ``swarm host serve`` there (and so of its workers), e.g. ``HOME``."""
    agent: str | None = None
    """The agent preset of tasks placed there (None: the run's)."""
    grace: float = Field(default=60.0, gt=0)
    """Seconds the host may stay unreachable before its running tasks are re-placed."""

    @field_validator("ssh")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or value.startswith("-") or " " in value):
            raise ValueError(f"{value!r}: give an ssh destination such as 'build1' or 'me@build1'")
        return value

    @field_validator("root")
    @classmethod
    def _root(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"{value!r}: give the work root as an absolute path on the host")
        return value

    @property
    def remote(self) -> bool:
        return self.name != LOCAL

    def check(self) -> HostSpec:
        """Self, once a remote host names its ssh destination and root (ValueError else)."""
        if self.remote and (self.ssh is None or self.root is None):
            missing = "ssh" if self.ssh is None else "root"
            raise ValueError(f"host {self.name!r} needs {missing!r} (an ssh host needs both)")
        return self
