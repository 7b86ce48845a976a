"""Two "remote" hosts on this machine: a private ``sshd`` on 127.0.0.1 (a free port, a
generated host key and client key, its own config), an ssh client config naming ``hostA``
and ``hostB``, and for each a work root and a HOME of its own, so a remote worker really
lives at another path. Used by the tests (``tests/hosts/conftest.py``) and the benchmark
(``scripts/bench/hosts.py``)."""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import typing as t

from protocol.hosts import HostSpec
from runner.hosts.layout import Layout
from runner.hosts.ssh import Ssh

SSHD: t.Final = shutil.which("sshd") or "/usr/sbin/sshd"
NAMES: t.Final = ("hostA", "hostB")
SWARM: t.Final = str(pathlib.Path(sys.executable).parent / "swarm")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: pathlib.Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@dataclasses.dataclass
class SshHosts:
    """The running sshd and what reaches it."""

    base: pathlib.Path
    port: int
    sshd: subprocess.Popen[bytes] | None = None
    grace: float = 60.0

    @property
    def ssh_config(self) -> pathlib.Path:
        return self.base / "ssh_config"

    def root(self, name: str) -> pathlib.Path:
        return self.base / name / "root"

    def home(self, name: str) -> pathlib.Path:
        return self.base / name / "home"

    def spec(self, name: str, slots: int = 2) -> HostSpec:
        return HostSpec(
            name=name,
            ssh=name,
            slots=slots,
            root=str(self.root(name)),
            swarm=SWARM,
            ssh_config=str(self.ssh_config),
            env={"HOME": str(self.home(name))},
            grace=self.grace,
        )

    def toml(
        self,
        *,
        local_slots: int = 2,
        slots: int = 2,
        grace: float | None = None,
        agents: t.Mapping[str, str] | None = None,
    ) -> str:
        """``.swarm.toml`` entries for ``local`` and both hosts (``agents``: a host's preset)."""
        out = f'[[hosts]]\nname = "local"\nslots = {local_slots}\n'
        for name in NAMES:
            spec = self.spec(name, slots)
            out += (
                f'\n[[hosts]]\nname = "{name}"\nssh = "{name}"\nslots = {slots}\n'
                f'root = "{spec.root}"\nswarm = "{SWARM}"\nssh_config = "{self.ssh_config}"\n'
                f"grace = {grace or self.grace}\n"
                f'env = {{ HOME = "{self.home(name)}" }}\n'
            )
            if agents and name in agents:
                out += f'agent = "{agents[name]}"\n'
        return out

    def start(self) -> None:
        """Start sshd (again, on the same port: a host that comes back)."""
        self.sshd = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.base / "sshd_config")],
            stdout=subprocess.DEVNULL,
            stderr=(self.base / "sshd.log").open("ab"),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.sshd.poll() is not None:
                raise RuntimeError((self.base / "sshd.log").read_text())
            time.sleep(0.02)
        raise RuntimeError("sshd did not listen in 10s")

    def stop(self) -> None:
        """Stop sshd and drop every connection it holds (the host is gone)."""
        if self.sshd is not None and self.sshd.poll() is None:
            # each connection has a child of our sshd, which outlives the listener: end those
            # too, by pid, as a host that went away ends every connection
            children = _children(self.sshd.pid)
            self.sshd.terminate()
            self.sshd.wait(timeout=10)
            for pid in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for name in NAMES:
            Ssh.of(self.spec(name)).exit_master()

    def kill_masters(self) -> list[int]:
        """Kill each host's ssh master connection (as a dropped network would); the pids."""
        killed = []
        for name in NAMES:
            pid = Ssh.of(self.spec(name)).master_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
        return killed

    def sessions(self, name: str) -> list[str]:
        """The sessions of ``name``'s private tmux server."""
        socket_name = Layout.of(self.root(name)).socket
        out = subprocess.run(
            ["tmux", "-L", socket_name, "list-sessions", "-F", "#{session_name}"],
            capture_output=True,
            text=True,
        )
        return out.stdout.split()

    def ssh(self, name: str, *remote: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            Ssh.of(self.spec(name)).argv(*remote), capture_output=True, text=True, timeout=30
        )


def _children(pid: int) -> list[int]:
    try:
        text = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def make(base: pathlib.Path) -> SshHosts:
    base.mkdir(parents=True, exist_ok=True)
    hosts = SshHosts(base=base, port=_free_port())
    _keygen(base / "host_key")
    _keygen(base / "client_key")
    shutil.copyfile(base / "client_key.pub", base / "authorized_keys")
    (base / "sshd_config").write_text(
        f"Port {hosts.port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
        f"AuthorizedKeysFile {base / 'authorized_keys'}\nPidFile none\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin yes\n"
        "LogLevel ERROR\nMaxSessions 100\nMaxStartups 100\n"
        "PrintMotd no\nPrintLastLog no\nUseDNS no\n"
    )
    user = getpass.getuser()
    entries = []
    for name in NAMES:
        hosts.root(name).parent.mkdir(parents=True, exist_ok=True)
        hosts.home(name).mkdir(parents=True, exist_ok=True)
        entries.append(
            f"Host {name}\n  HostName 127.0.0.1\n  Port {hosts.port}\n  User {user}\n"
            f"  IdentityFile {base / 'client_key'}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {base / 'known_hosts'}\n"
            "  StrictHostKeyChecking accept-new\n  LogLevel ERROR\n"
        )
    hosts.ssh_config.write_text("\n".join(entries))
    return hosts


def available() -> str | None:
    """Why no sshd can be started here (None: it can)."""
    if not pathlib.Path(SSHD).is_file():
        return "sshd is not installed (Debian: apt-get install openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the OpenSSH client (ssh, ssh-keygen) is not installed"
    if os.geteuid() == 0 and not pathlib.Path("/run/sshd").is_dir():
        # sshd run as root wants its privilege-separation folder (the package's service
        # makes it at boot; a container that never started the service has none)
        pathlib.Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return None


def cleanup(hosts: SshHosts) -> None:
    """Kill the hosts' tmux servers (ours: named after their roots) and stop sshd."""
    for name in NAMES:
        socket_name = Layout.of(hosts.root(name)).socket
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True)
    hosts.stop()
