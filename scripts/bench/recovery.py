"""Recovery: SIGKILL the mayor mid-run, then time ``swarm resume`` from its start to the next
dispatch (and to that task's agent running), against a fresh ``swarm run`` of a one-task plan
from its start to its first dispatch (the same CLI start-up, run creation instead of recovery).

Plan: A (sleeps, then writes a file) and B (blocked by A). The mayor is killed while A works; A
finishes and offers with no mayor alive; ``swarm resume --foreground`` must read A's offer,
merge it, and dispatch B.

    .venv/bin/python scripts/bench/recovery.py [--quick] [--json FILE]
"""

from __future__ import annotations

import os
import pathlib
import signal
import sys
import time
import typing as t

import common
from common import Row, Workspace

from agentmail.store import MailStore
from protocol.messages import MessageType
from runner.paths import SwarmPaths

BENCH: t.Final = "recovery"


def write(path: str) -> dict[str, t.Any]:
    return {"write": {"path": path, "content": "x\n"}}


def kill_and_resume(ws: Workspace, profile: pathlib.Path | None) -> dict[str, float]:
    repo = ws.repo()
    tasks = [
        {"id": "A", "subject": "before the crash", "files": ["a.txt"],
         "script": [{"sleep": 2.0}, write("a.txt")]},
        {"id": "B", "subject": "after the resume", "files": ["b.txt"], "blocked_by": ["A"],
         "script": [write("b.txt")]},
    ]  # fmt: skip
    plan = common.write_plan(ws.dir / "recovery.json", tasks)
    mayor = ws.swarm_popen(*ws.run_args(repo, plan, "rec"))
    events = SwarmPaths.for_repo(repo).run("rec").events
    try:
        common.wait_for(lambda: (ws.stamps / "A").exists(), 60, "task A's agent to start")
    finally:
        os.kill(mayor.pid, signal.SIGKILL)  # the mayor we started, by its pid
        mayor.wait()
    store = MailStore(SwarmPaths.for_repo(repo).mail)

    def offered() -> bool:
        return any(
            s.envelope.type is MessageType.OFFERING_READY for s in store.list("mayor").messages
        )

    common.wait_for(offered, 60, "task A to offer with no mayor running", interval=0.05)
    start = time.time()
    result = ws.swarm("resume", "rec", "--foreground", "--repo", str(repo), profile=profile)
    common.check_run(result, "swarm resume")
    evs = common.run_events(repo, "rec")
    b = common.first(evs, "task_dispatched", "B")
    assert b is not None and events.exists()
    return {
        "to_dispatch_s": common.ts(b) - start,
        "to_agent_s": common.read_stamps(ws.stamps)["B"] - start,
    }


def fresh_run(ws: Workspace) -> dict[str, float]:
    repo = ws.repo("fresh-repo")
    plan = common.write_plan(
        ws.dir / "fresh.json", [{"id": "C", "subject": "fresh", "files": ["c.txt"],
                                 "script": [write("c.txt")]}]
    )  # fmt: skip
    start = time.time()
    result = ws.swarm(*ws.run_args(repo, plan, "fresh", socket=ws.new_socket()))
    common.check_run(result, "swarm run (fresh)")
    c = common.first(common.run_events(repo, "fresh"), "task_dispatched", "C")
    assert c is not None
    return {
        "to_dispatch_s": common.ts(c) - start,
        "to_agent_s": common.read_stamps(ws.stamps)["C"] - start,
    }


def main(argv: t.Sequence[str] | None = None) -> int:
    args = common.parser(__doc__).parse_args(argv)
    rounds = 1 if args.quick else 3
    profile = common.profile_path(BENCH, args.profile)
    ours: list[dict[str, float]] = []
    base: list[dict[str, float]] = []
    for _ in range(rounds):
        with Workspace(BENCH, keep=args.keep) as ws:
            ours.append(kill_and_resume(ws, profile))
            base.append(fresh_run(ws))

    def p50(samples: list[dict[str, float]], key: str) -> float:
        return common.percentile([s[key] for s in samples], 0.5)

    rows = [
        Row(BENCH, "swarm resume -> next dispatch", p50(ours, "to_dispatch_s"),
            p50(base, "to_dispatch_s"), "s", note="baseline: fresh swarm run -> first dispatch"),
        Row(BENCH, "swarm resume -> next agent running", p50(ours, "to_agent_s"),
            p50(base, "to_agent_s"), "s"),
    ]  # fmt: skip
    common.emit(BENCH, rows, {"rounds": rounds, "resume": ours, "fresh_run": base}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
