"""Agent Mail side by side with MCP Agent Mail (PyPI ``mcp-agent-mail`` 0.1.0), opt-in.

    .venv/bin/python scripts/bench/mail_peers.py [--quick] [--json FILE] [--rounds N]

Installs the peer into a benchmark-only virtualenv (``~/.cache/swarm-runner/bench/``, never the
project's), starts its HTTP server on 127.0.0.1 with its archive and database in a temporary
directory, and runs the same workloads on both, alternating: one message end to end to a
waiting recipient (ours: the watcher; the peer has no push, so the recipient polls it as fast as
it answers), throughput with 1 and 8 sender processes (each for a fixed time), one send from a
fresh process (ours: ``swarm mail send``; theirs: ``curl`` to its endpoint), and listing an
inbox (the newest 50). Where the peer cannot do a workload, the row says why. Not in
``run_all --quick``: the install alone takes minutes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import typing as t
import urllib.request

import common

from agentmail.store import MailStore, Stored
from agentmail.watch import Watcher
from protocol.messages import Envelope

PEER: t.Final = "mcp-agent-mail==0.1.0"
VENV: t.Final = pathlib.Path.home() / ".cache" / "swarm-runner" / "bench" / "mcp-agent-mail-0.1.0"
SWARM: t.Final = str(pathlib.Path(sys.executable).with_name("swarm"))
SPAWN = multiprocessing.get_context("spawn")


def _install() -> pathlib.Path:
    python = VENV / "bin" / "python"
    probe = [str(python), "-c", "import mcp_agent_mail"]
    if python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
        return python
    print(f"==> installing {PEER} into {VENV} (benchmark only)", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", PEER], check=True)
    return python


class Peer:
    """The peer's server on a free local port, and its MCP tools over JSON-RPC (stateless)."""

    def __init__(self, python: pathlib.Path, work: pathlib.Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/mcp/"
        env = {
            **os.environ,
            "STORAGE_ROOT": str(work / "archive"),
            "DATABASE_URL": f"sqlite+aiosqlite:///{work / 'db.sqlite3'}",
            "LLM_ENABLED": "false",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no network fetch at start-up
            "HTTP_RATE_LIMIT_ENABLED": "false",
        }
        argv = [str(python), "-m", "mcp_agent_mail.cli", "serve-http", "--host", "127.0.0.1"]
        self.proc = subprocess.Popen(
            [*argv, "--port", str(self.port)],
            cwd=work,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / "server.log").open("w"),
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                health = f"http://127.0.0.1:{self.port}/health/liveness"
                with urllib.request.urlopen(health, timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"mail_peers: the peer did not start: see {work / 'server.log'}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def call(self, tool: str, **arguments: t.Any) -> t.Any:
        return call(self.url, tool, arguments)


def request_body(tool: str, arguments: t.Mapping[str, t.Any]) -> bytes:
    doc = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": dict(arguments)},
    }
    return json.dumps(doc).encode()


HEADERS: t.Final = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
}


def call(url: str, tool: str, arguments: t.Mapping[str, t.Any]) -> t.Any:
    req = urllib.request.Request(url, request_body(tool, arguments), HEADERS)
    with urllib.request.urlopen(req, timeout=300) as resp:
        doc = json.loads(resp.read())
    if "error" in doc:
        raise RuntimeError(f"{tool}: {doc['error']}")
    result = doc["result"]
    if result.get("isError"):
        raise RuntimeError(f"{tool}: {result.get('content')}")
    structured = result.get("structuredContent")
    if structured is not None:
        return structured.get("result", structured)
    return json.loads(result["content"][0]["text"])


def _ours_envelope(sender: str, to: str, body: str) -> Envelope:
    return Envelope.model_validate({"from": sender, "to": [to], "type": "NUDGE", "body_md": body})


# --------------------------------------------------------------------------------- workloads


def _ours_sender(root: str, sender: str, seconds: float, go: t.Any, out: t.Any) -> None:
    store = MailStore(pathlib.Path(root))
    go.wait()
    end, sent = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        store.send(_ours_envelope(sender, "sink", f"m{sent}"))
        sent += 1
    out.put(sent)


def _peer_sender(
    url: str, project: str, sender: str, to: str, seconds: float, go: t.Any, out: t.Any
) -> None:
    go.wait()
    end, sent = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        try:
            call(
                url,
                "send_message",
                {
                    "project_key": project,
                    "sender_name": sender,
                    "to": [to],
                    "subject": "m",
                    "body_md": f"m{sent}",
                },
            )
        except (OSError, RuntimeError):
            break  # a timeout on its archive lock: what it managed counts
        sent += 1
    out.put(sent)


def throughput(senders: int, seconds: float, target: t.Callable[..., None], *args: t.Any) -> float:
    """Messages per second from ``senders`` processes sending for ``seconds``."""
    go, out = SPAWN.Event(), SPAWN.Queue()
    procs = [
        SPAWN.Process(target=target, args=(*args[i], seconds, go, out)) for i in range(senders)
    ]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # let them import
    start = time.monotonic()
    go.set()
    total = sum(int(out.get(timeout=seconds + 600)) for _ in procs)
    elapsed = time.monotonic() - start
    for proc in procs:
        proc.join(timeout=60)
    return float(total / elapsed)


def ours_latency(root: pathlib.Path, count: int) -> list[float]:
    store = MailStore(root)
    got: queue.Queue[float] = queue.Queue()

    def seen(stored: Stored) -> None:
        got.put(time.monotonic())

    samples = []
    with Watcher(store, "waiter", seen):
        for i in range(count):
            start = time.monotonic()
            store.send(_ours_envelope("w1", "waiter", f"l{i}"))
            samples.append((got.get(timeout=30) - start) * 1000)
    return samples


def peer_latency(peer: Peer, project: str, sender: str, waiter: str, count: int) -> list[float]:
    samples = []
    for i in range(count):
        before = len(peer.call("fetch_inbox", project_key=project, agent_name=waiter, limit=1000))
        start = time.monotonic()
        peer.call(
            "send_message",
            project_key=project,
            sender_name=sender,
            to=[waiter],
            subject=f"l{i}",
            body_md="x",
        )
        while (
            len(peer.call("fetch_inbox", project_key=project, agent_name=waiter, limit=1000))
            <= before
        ):
            pass
        samples.append((time.monotonic() - start) * 1000)
    return samples


def _run(argv: t.Sequence[str], env: t.Mapping[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=True)
    return (time.perf_counter() - start) * 1000


# ------------------------------------------------------------------------------------ driver


def measure(quick: bool, rounds: int) -> tuple[list[common.Row], dict[str, t.Any]]:
    python = _install()
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-peers-"))
    peer = Peer(python, work)
    rows: list[common.Row] = []
    details: dict[str, t.Any] = {"peer": PEER, "load_avg": os.getloadavg()}
    try:
        project = str(work / "project")
        peer.call("ensure_project", human_key=project)
        names = [
            peer.call("register_agent", project_key=project, program="bench", model="none")["name"]
            for _ in range(10)
        ]
        root = work / "ours"
        store = MailStore(root)
        for agent in ("w1", "waiter", "sink", *(f"s{i}" for i in range(8))):
            store.register(agent)
        # one message end to end
        count = 10 if quick else 30
        ours = common.summary(ours_latency(root, count))
        theirs = common.summary(peer_latency(peer, project, names[0], names[1], count))
        rows.append(
            common.Row(
                "peers",
                "send -> in the waiting recipient's hand p50",
                ours["p50"],
                theirs["p50"],
                "ms",
                "baseline: the peer",
                None,
                "ours: watcher; the peer: polled as fast as it answers",
            )
        )
        # throughput, 1 and 8 senders
        seconds = 5.0 if quick else 20.0
        for n in (1, 8):
            ours_rate = throughput(
                n, seconds, _ours_sender, *[(str(root), f"s{i}") for i in range(n)]
            )
            peer_args = [(peer.url, project, names[2 + i], names[1]) for i in range(n)]
            peer_rate = throughput(n, seconds, _peer_sender, *peer_args)
            rows.append(
                common.Row(
                    "peers",
                    f"durable throughput, {n} sender process(es)",
                    ours_rate,
                    peer_rate,
                    "msg/s",
                    "baseline: the peer",
                    None,
                )
            )
        # one send from a fresh process
        env = {
            **os.environ,
            "SWARM_HOME": str(work),
            "SWARM_WORKER": "w1",
            "SWARM_KEY_FILE": str(store.key_path("w1")),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        (work / "mail").symlink_to(root)
        body = request_body(
            "send_message",
            {
                "project_key": project,
                "sender_name": names[0],
                "to": [names[1]],
                "subject": "c",
                "body_md": "x",
            },
        )
        curl = [
            "curl",
            "-s",
            "-X",
            "POST",
            peer.url,
            "-d",
            body.decode(),
            *(x for k, v in HEADERS.items() for x in ("-H", f"{k}: {v}")),
        ]
        fresh_ours, fresh_theirs = [], []
        for i in range(rounds):
            ours_argv = [
                SWARM,
                "mail",
                "send",
                "--to",
                "waiter",
                "--type",
                "NUDGE",
                "--body",
                f"f{i}",
            ]
            fresh_ours.append(_run(ours_argv, env))
            if shutil.which("curl"):
                fresh_theirs.append(_run(curl, env))
        o = common.summary(fresh_ours)
        c = common.summary(fresh_theirs) if fresh_theirs else None
        rows.append(
            common.Row(
                "peers",
                "one send from a fresh process p50",
                o["p50"],
                c["p50"] if c else None,
                "ms",
                "faster than the peer's curl",
                c is not None and o["p50"] < c["p50"],
                "ours: swarm mail send; the peer: curl",
            )
        )
        # listing: newest 50
        for i in range(10_000 - len(store.list("sink", newest=True, limit=1).messages)):
            store.send(_ours_envelope("w1", "sink", f"fill {i}"))
        start = time.perf_counter()
        MailStore(root).list("sink", newest=True, limit=50)
        ours_list = (time.perf_counter() - start) * 1000
        size = len(peer.call("fetch_inbox", project_key=project, agent_name=names[1], limit=100000))
        start = time.perf_counter()
        peer.call("fetch_inbox", project_key=project, agent_name=names[1], limit=50)
        theirs_list = (time.perf_counter() - start) * 1000
        rows.append(
            common.Row(
                "peers",
                "newest 50 of an inbox",
                ours_list,
                theirs_list,
                "ms",
                "baseline: the peer",
                None,
                f"ours: 10,000 messages; the peer: {size} (filling it with 10,000 "
                "at its measured rate would take hours)",
            )
        )
        details["peer_inbox_size"] = size
    finally:
        peer.close()
        shutil.rmtree(work, ignore_errors=True)
    return rows, details


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None, help="fresh-process sends (10/30)")
    args = p.parse_args(argv)
    rows, details = measure(args.quick, args.rounds or (10 if args.quick else 30))
    common.emit("peers", rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
