"""The remote half and its backend over a real sshd: sessions on another host's private tmux
server, one shared ssh connection per host, a reconnect after the connection is killed."""

from __future__ import annotations

import pathlib

from runner.hosts.remote import HostsBackend, RemoteBackend
from runner.sessions import SessionBackend, SessionSpec
from runner.sessions.process import ProcessBackend
from tests.hosts.sshd import SshHosts
from tests.runner.faults import wait_until


def test_a_remote_session_runs_in_the_hosts_own_tmux_and_home(ssh_hosts: SshHosts) -> None:
    backend: SessionBackend = RemoteBackend(ssh_hosts.spec("hostA"))  # the same protocol
    assert isinstance(backend, RemoteBackend)
    root = ssh_hosts.root("hostA")
    try:
        hello = backend.link.request("hello")
        assert hello["root"] == str(root)
        spec = SessionSpec(
            name="swarm-r1-T1",
            argv=("sh", "-c", 'echo "home=$HOME"; sleep 600'),
            cwd=root,
            env={},
            log_path=root / "t1.log",
        )
        backend.start(spec)
        wait_until(lambda: "home=" in backend.capture("swarm-r1-T1"), 20, "its output")
        assert f"home={ssh_hosts.home('hostA')}" in backend.capture("swarm-r1-T1")
        status = backend.statuses("swarm-r1-")["swarm-r1-T1"]
        assert status.exists and status.alive
        assert backend.link.ssh.check()  # one master connection, shared
        backend.kill("swarm-r1-T1")
        assert "swarm-r1-T1" not in backend.statuses("swarm-r1-")
    finally:
        backend.close()


def test_a_killed_connection_is_reconnected_and_the_session_lives_on(
    ssh_hosts: SshHosts,
) -> None:
    backend = RemoteBackend(ssh_hosts.spec("hostA"))
    root = ssh_hosts.root("hostA")
    try:
        backend.link.request("hello")
        backend.start(
            SessionSpec("swarm-r1-T2", ("sleep", "600"), pathlib.Path(root), {}, root / "t2.log")
        )
        first = backend.link.hello["pid"]
        ssh_hosts.kill_masters()
        wait_until(lambda: not backend.link.connected, 20, "the cut")  # the channel noticed
        status = backend.status("swarm-r1-T2")  # reconnects: a new serve, the same tmux
        assert status.alive
        assert backend.link.hello["pid"] != first
        assert backend.link.down_since is None
    finally:
        backend.kill("swarm-r1-T2")
        backend.close()


def test_a_session_a_host_still_runs_for_a_re_placed_task_is_reaped(
    ssh_hosts: SshHosts,
) -> None:
    remote = RemoteBackend(ssh_hosts.spec("hostA"))
    hosts = HostsBackend(ProcessBackend(), [remote], where={"swarm-r1-T9": "hostA"})
    root = ssh_hosts.root("hostA")
    try:
        remote.start(SessionSpec("swarm-r1-T9", ("sleep", "600"), root, {}, root / "t9.log"))
        assert hosts.statuses("swarm-r1-")["swarm-r1-T9"].alive
        assert hosts.reap() == []  # where it belongs
        hosts.where["swarm-r1-T9"] = "local"  # re-placed while the host was away
        assert "swarm-r1-T9" not in hosts.statuses("swarm-r1-")  # not the local one's
        assert hosts.reap() == ["swarm-r1-T9"]
        assert "swarm-r1-T9" not in remote.statuses("swarm-r1-")
    finally:
        hosts.close()
