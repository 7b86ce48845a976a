"""The ``ssh_hosts`` fixture: hostA and hostB over a private sshd (:mod:`tests.hosts.sshd`);
skipped, with the reason, only when sshd is not installed."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from tests.hosts.sshd import SshHosts, available, cleanup, make

__all__ = ["SshHosts"]


@pytest.fixture
def ssh_hosts(tmp_path: pathlib.Path) -> t.Iterator[SshHosts]:
    """hostA and hostB over a private sshd on 127.0.0.1 (see :mod:`tests.hosts.sshd`)."""
    why = available()
    if why is not None:
        pytest.skip(why)
    hosts = make(tmp_path / "ssh")
    hosts.start()
    try:
        yield hosts
    finally:
        cleanup(hosts)
