"""Hosts: dispatch overhead of a worker on another host over ssh against a local one, in the
same run of the same plan (``--hosts local,hostA``, half the tasks placed on each), on this
machine: a private sshd on 127.0.0.1 (``tests/hosts/sshd.py``). Each figure is a median over
that host's tasks: dispatch (``task_dispatched`` to the agent's first instruction), report
(the agent's start to its offer being recorded: the relay's round trips) and the whole task
(dispatch to merge). Skipped, with the reason, without sshd.

    .venv/bin/python scripts/bench/hosts.py [--quick] [--json FILE] [--tasks N]
"""

from __future__ import annotations

import statistics
import sys
import typing as t

import common
from common import Row, Workspace

from tests.hosts import sshd

BENCH: t.Final = "hosts"


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--tasks", type=int, default=16)
    args = p.parse_args(argv)
    tasks = 8 if args.quick else args.tasks
    why = sshd.available()
    if why is not None:
        print(f"hosts: skipped: {why}", file=sys.stderr)
        common.emit(BENCH, [Row(BENCH, "skipped", None, None, "", note=why)], {}, args.json)
        return 0
    with Workspace(BENCH, keep=args.keep) as ws:
        hosts = sshd.make(ws.dir / "ssh")
        hosts.start()
        try:
            figures = measure(ws, hosts, tasks, args.profile)
        finally:
            sshd.cleanup(hosts)
    rows = []
    for metric, note in (
        ("first dispatch", "the host's first start: ssh connect, swarm host serve, bare repo"),
        ("dispatch", "task_dispatched -> agent start (push, clone, start over ssh)"),
        ("report", "agent start -> offer recorded (relay round trips)"),
        ("task", "task_dispatched -> task_merged"),
    ):
        remote, local = figures[metric]["hostA"], figures[metric]["local"]
        rows.append(Row(BENCH, f"remote {metric} (median)", remote, local, "ms",
                        note=f"baseline: local; {note}"))  # fmt: skip
    common.emit(BENCH, rows, {"tasks": tasks, **figures}, args.json)
    return 0


def measure(
    ws: Workspace, hosts: sshd.SshHosts, count: int, profile: bool
) -> dict[str, dict[str, float]]:
    repo = ws.repo()
    (repo / ".swarm.toml").write_text(hosts.toml(local_slots=2, slots=2))
    ws.git(repo, "add", "-A")
    ws.git(repo, "commit", "-q", "-m", "hosts")
    tasks = [
        {
            "id": f"T{i:02d}",
            "subject": f"task T{i:02d}",
            "files": [f"out/T{i:02d}.txt"],
            "script": [{"write": {"path": f"out/T{i:02d}.txt", "content": "x\n"}}],
        }
        for i in range(count)
    ]
    plan = common.write_plan(ws.dir / "plan.json", tasks, max_workers=4)
    result = ws.swarm(
        *ws.run_args(repo, plan, "bench", "--hosts", "local,hostA", "--timeout", "300s"),
        profile=common.profile_path(BENCH, profile),
    )
    common.check_run(result, "the hosts run")
    events = common.run_events(repo, "bench")
    stamps = common.read_stamps(ws.stamps)
    samples: dict[str, dict[str, list[float]]] = {
        m: {"local": [], "hostA": []} for m in ("first dispatch", "dispatch", "report", "task")
    }
    for tid, started in sorted(stamps.items(), key=lambda item: item[1]):
        dispatched = common.first(events, "task_dispatched", tid)
        offered = common.first(events, "task_offered", tid)
        merged = common.first(events, "task_merged", tid)
        if dispatched is None or offered is None or merged is None:
            continue
        host = str(dispatched.data.get("host") or "local")
        # a host's first start pays for its connection (ssh, swarm host serve, the bare repo)
        first = not samples["first dispatch"][host]
        kind = "first dispatch" if first else "dispatch"
        samples[kind][host].append((started - common.ts(dispatched)) * 1000)
        samples["report"][host].append((common.ts(offered) - started) * 1000)
        samples["task"][host].append((common.ts(merged) - common.ts(dispatched)) * 1000)
    return {
        metric: {host: statistics.median(values) for host, values in by_host.items() if values}
        for metric, by_host in samples.items()
    }


if __name__ == "__main__":
    sys.exit(main())
