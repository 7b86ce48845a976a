"""Scale, each row against a baseline measured in the same run:

- **idle workers**: 64 concurrent workers on this machine. Time to dispatch all 64 (against a
  raw loop of ``git worktree add`` + ``tmux new-session``), then, while every worker idles, the
  mayor's CPU (own, and with the tmux/git clients it ran) and its RSS (against a bare Python
  that imports the runner).
- **layered plan**: 200 tasks in 20 layers run live with 16 workers (quick too); makespan
  against the lower bound max(critical path, work / workers) with each task lengthened by its
  own measured cost beyond its sleep (dispatch to merge), and for reference by the median cost.
- **merge queue**: 100 offers waiting at once, merged by one mayor step (merges/s against a raw
  ``git merge --no-ff`` loop over the same branches).
- **big log**: a run whose ``events.jsonl`` holds 100,000 events: ``swarm status`` and ``swarm
  resume`` -> next dispatch, against the same commands on a run of a few events (and the resume
  again without its snapshot: the full replay it saves).

    .venv/bin/python scripts/bench/scale.py [--quick] [--json FILE] [--workers N]
        [--only idle,layered,queue,log]
"""

from __future__ import annotations

import os
import pathlib
import random
import shlex
import signal
import subprocess
import sys
import time
import typing as t

import arbiter
import common
import scheduling
from common import Row, Workspace

from protocol.plan import Plan
from runner import launch
from runner.paths import SwarmPaths
from runner.state import snapshot_path

BENCH: t.Final = "scale"


def hang_plan(ws: Workspace, workers: int) -> t.Any:
    tasks = [
        {"id": f"W{i:02d}", "subject": f"idle worker {i}", "files": [f"idle/W{i:02d}.txt"],
         "script": [{"hang": True}]}
        for i in range(workers)
    ]  # fmt: skip
    return common.write_plan(ws.dir / "idle.json", tasks)


def raw_dispatch(ws: Workspace, workers: int) -> float:
    """Seconds for the floor of dispatching ``workers`` tasks: worktree add + new-session."""
    repo = ws.repo("raw-repo")
    socket = ws.new_socket()
    stamps = ws.dir / "raw-stamps"
    stamps.mkdir()
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "keepalive"], env=ws.env,
                   check=True)  # fmt: skip
    start = time.time()
    for i in range(workers):
        name = f"raw{i:02d}"
        worktree = ws.dir / "raw-wt" / name
        subprocess.run(["git", "worktree", "add", "-q", "-b", f"raw/{name}", str(worktree), "main"],
                       cwd=repo, env=ws.env, check=True, capture_output=True)  # fmt: skip
        command = shlex.join(common.stamp_argv(stamps, name, "sleep", "600"))
        subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", name, "-c",
                        str(worktree), command], env=ws.env, check=True)  # fmt: skip
    common.wait_for(lambda: len(list(stamps.iterdir())) >= workers, 60, "raw sessions")
    last = max(common.read_stamps(stamps).values())
    return last - start


IDLE_CPU_PCT: t.Final = 2.0
IDLE_RSS_MB: t.Final = 200.0
DISPATCH_RATIO: t.Final = 3.0
MAKESPAN_RATIO: t.Final = 1.10
LOG_SECONDS: t.Final = 1.0


def sleep_dispatch(ws: Workspace, workers: int) -> float:
    """Seconds from run start to the last of ``workers`` agents running, when each agent is
    the raw loop's stamped ``sleep`` (the mayor's own dispatch work, not 64 Pythons starting
    on two cores)."""
    repo = ws.repo("sleep-repo")
    plan = hang_plan(ws, workers)
    stamps = ws.dir / "sleep-stamps"
    stamps.mkdir()
    head = shlex.join(["/bin/sh", "-c", common.STAMP_SCRIPT, str(stamps)])
    run_args = [*ws.run_args(repo, plan, "sleepers", "--max-workers", str(workers),
                             socket=ws.new_socket(), stamped=False),
                "--agent-cmd", f"{head} {{task}} sleep 600"]  # fmt: skip
    mayor = ws.swarm_popen(*run_args)
    try:
        common.wait_for(lambda: len(list(stamps.iterdir())) >= workers, 300,
                        f"{workers} sleeping agents", interval=0.2)  # fmt: skip
        created = common.ts(common.run_events(repo, "sleepers")[0])
        return max(common.read_stamps(stamps).values()) - created
    finally:
        os.kill(mayor.pid, signal.SIGTERM)
        try:
            mayor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(mayor.pid, signal.SIGKILL)
            mayor.wait()


def idle_workers(
    ws: Workspace, workers: int, window: float, profile: pathlib.Path | None
) -> tuple[list[Row], dict[str, t.Any]]:
    sleepers = sleep_dispatch(ws, workers)
    repo = ws.repo()
    plan = hang_plan(ws, workers)
    run_args = ws.run_args(repo, plan, "scale", "--max-workers", str(workers))
    mayor = ws.swarm_popen(*run_args, profile=profile)
    try:
        events_path = SwarmPaths.for_repo(repo).run("scale").events

        def count(kind: str, **match: str) -> int:
            if not events_path.exists():
                return 0
            return sum(
                1 for e in common.run_events(repo, "scale")
                if e.kind == kind and all(e.data.get(k) == v for k, v in match.items())
            )  # fmt: skip

        common.wait_for(lambda: count("task_dispatched") >= workers, 300,
                        f"{workers} dispatches", interval=0.2)  # fmt: skip
        events = common.run_events(repo, "scale")
        created = common.ts(events[0])
        dispatched = [common.ts(e) for e in events if e.kind == "task_dispatched"]
        ours_dispatch = max(dispatched) - created
        stamps_ready = lambda: len(common.read_stamps(ws.stamps)) >= workers  # noqa: E731
        common.wait_for(stamps_ready, 300, f"{workers} agents running", interval=0.2)
        common.wait_for(lambda: count("task_message", type="BEAD_ACCEPTED") >= workers,
                        400, f"{workers} accepted reports", interval=0.5)  # fmt: skip
        time.sleep(1.0)  # let the last reports' effects settle
        own0, kids0 = common.cpu_seconds(mayor.pid)
        t0 = time.monotonic()
        time.sleep(window)
        own1, kids1 = common.cpu_seconds(mayor.pid)
        elapsed = time.monotonic() - t0
        memory = common.memory_mb(mayor.pid)
        alive = mayor.poll() is None
    finally:
        if mayor.poll() is None:
            os.kill(mayor.pid, signal.SIGTERM)
            try:
                mayor.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(mayor.pid, signal.SIGKILL)
                mayor.wait()
    raw = raw_dispatch(ws, workers)
    bare = subprocess.Popen([common.PYTHON, "-c",
                             "import runner.launch, runner.cli.main, time; time.sleep(30)"],
                            cwd=common.ROOT, env=ws.env)  # fmt: skip
    try:
        time.sleep(3.0)
        bare_mb = common.memory_mb(bare.pid)["VmRSS"]
    finally:
        bare.kill()
        bare.wait()
    own_pct = (own1 - own0) / elapsed * 100
    all_pct = (own1 - own0 + kids1 - kids0) / elapsed * 100
    ratio = sleepers / raw
    rows = [
        Row(BENCH, f"time to dispatch {workers} workers, agents = sleep", sleepers, raw, "s",
            f"ratio <= {DISPATCH_RATIO:g}", ratio <= DISPATCH_RATIO,
            "baseline: worktree add + new-session loop, the same stamped sleep"),
        Row(BENCH, f"time to dispatch {workers} scripted (Python) agents", ours_dispatch, raw,
            "s", note="they start on two cores while the mayor dispatches"),
        Row(BENCH, f"mayor CPU, {workers} idle workers", own_pct, None, "% of a core",
            f"< {IDLE_CPU_PCT:g}%", own_pct < IDLE_CPU_PCT, f"over {elapsed:.0f} s"),
        Row(BENCH, f"mayor CPU incl. its tmux/git clients, {workers} idle", all_pct, None,
            "% of a core", f"< {IDLE_CPU_PCT:g}%", all_pct < IDLE_CPU_PCT),
        Row(BENCH, f"mayor RSS, {workers} workers", memory["VmRSS"], bare_mb, "MB",
            f"< {IDLE_RSS_MB:g} MB", memory["VmRSS"] < IDLE_RSS_MB,
            "baseline: bare python importing the runner"),
    ]  # fmt: skip
    details = {"workers": workers, "window_s": elapsed, "mayor_alive": alive,
               "dispatch_s": ours_dispatch, "sleep_dispatch_s": sleepers, "raw_dispatch_s": raw,
               "cpu_own_pct": own_pct,
               "cpu_with_children_pct": all_pct, "memory_mb": memory, "bare_rss_mb": bare_mb,
               "profiled": profile is not None}  # fmt: skip
    return rows, details


def layered_plan(
    ws: Workspace, tasks: int, workers: int, profile: pathlib.Path | None
) -> tuple[list[Row], dict[str, t.Any]]:
    """The 200-task layered DAG run live; the bound includes the measured per-task cost."""
    width = 10 if tasks >= 200 else 8
    nodes = scheduling.layered(random.Random("swarm-bench-scale"), tasks // width, width)
    repo = ws.repo("layered-repo")
    live = scheduling.live_makespan(
        ws, repo, "layered200", nodes, workers, common.MINUTE_S, False, profile
    )
    adjusted = [
        n._replace(minutes=n.minutes + live["task_overhead_s"] / common.MINUTE_S) for n in nodes
    ]
    bound = scheduling.lower_bound(adjusted, workers)[0] * common.MINUTE_S
    plain = scheduling.lower_bound(nodes, workers)[0] * common.MINUTE_S
    own = scheduling.own_cost_bound(nodes, workers, common.MINUTE_S, live["task_extra_s"])
    ratio = live["makespan_s"] / own
    extras = sorted(live["task_extra_s"].values())
    spread = f"{extras[0]:.2f}-{extras[-1]:.2f}" if extras else "-"
    rows = [
        Row(BENCH, f"layered {len(nodes)} tasks, {workers} workers: makespan / bound incl. "
            "each task's own cost", live["makespan_s"], own, "s", f"ratio <= {MAKESPAN_RATIO}",
            ratio <= MAKESPAN_RATIO, f"per-task cost {spread} s"),
        Row(BENCH, f"layered {len(nodes)} tasks: makespan / bound incl. the median cost",
            live["makespan_s"], bound, "s", note=f"median {live['task_overhead_s']:.2f} s"),
        Row(BENCH, f"layered {len(nodes)} tasks: makespan / bound without it",
            live["makespan_s"], plain, "s"),
    ]  # fmt: skip
    details = {k: v for k, v in live.items() if k != "task_extra_s"}
    return rows, {"tasks": len(nodes), "workers": workers, "bound_s": bound, "bound_own_s": own,
                  "bound_plain_s": plain, **details}  # fmt: skip


def merge_queue(ws: Workspace, offers: int) -> tuple[list[Row], dict[str, t.Any]]:
    """``offers`` offered branches merged by one mayor step, against the raw loop."""
    repo = ws.repo("queue-repo")
    mayor, ids = arbiter.offered_run(ws, repo, offers)
    ours = arbiter.merge_step(mayor, ids)
    raw = arbiter.raw_merges(ws, repo, ids)
    ours_rate, raw_rate = len(ids) / ours, len(ids) / raw
    rows = [
        Row(BENCH, f"merge queue, {len(ids)} simultaneous offers", ours_rate, raw_rate,
            "merges/s", note="baseline: git merge --no-ff loop"),
    ]  # fmt: skip
    return rows, {"offers": len(ids), "ours_s": ours, "raw_s": raw}


def big_log(ws: Workspace, events: int) -> tuple[list[Row], dict[str, t.Any]]:
    """``swarm status`` and ``swarm resume`` -> next dispatch on a run of ``events`` events,
    against the same on a run of a few events."""
    figures: dict[str, dict[str, float]] = {}
    for name, count in (("small", 0), ("big", events), ("replay", events)):
        repo, run_id = logged_run(ws, name, count)
        run = SwarmPaths.for_repo(repo).run(run_id)
        if name == "replay":
            snapshot_path(run.state).unlink()  # what resume costs without the snapshot
        start = time.monotonic()
        status = ws.swarm("status", run_id, "--repo", str(repo), "--json")
        status_s = time.monotonic() - start
        common.check_run(status, f"swarm status ({name})")
        start = time.time()
        resumed = ws.swarm("resume", run_id, "--foreground", "--repo", str(repo))
        common.check_run(resumed, f"swarm resume ({name})")
        dispatched = common.first(common.run_events(repo, run_id), "task_dispatched", "N")
        assert dispatched is not None
        figures[name] = {"status_s": status_s, "resume_s": common.ts(dispatched) - start}
    small, big, replay = figures["small"], figures["big"], figures["replay"]
    rows = [
        Row(BENCH, f"swarm status, {events:,} events", big["status_s"], small["status_s"], "s",
            f"< {LOG_SECONDS:g} s", big["status_s"] < LOG_SECONDS,
            "baseline: the same on a run of 3 events"),
        Row(BENCH, f"swarm resume -> next dispatch, {events:,} events", big["resume_s"],
            small["resume_s"], "s", f"< {LOG_SECONDS:g} s", big["resume_s"] < LOG_SECONDS),
        Row(BENCH, f"  the same without the snapshot (full replay), {events:,} events",
            replay["resume_s"], big["resume_s"], "s", note="baseline: with the snapshot"),
    ]  # fmt: skip
    return rows, {"events": events, **{k: v for k, v in figures.items()}}


def logged_run(ws: Workspace, name: str, events: int) -> tuple[pathlib.Path, str]:
    """A run of one pending task whose log already holds ``events`` more events, recorded as
    a mayor records them (handled mail, nudges, messages; snapshots on the way), with no
    mayor alive: the next ``swarm resume`` dispatches the task."""
    repo = ws.repo(f"log-{name}")
    plan = Plan.model_validate({"name": "log", "tasks": [
        {"id": "W", "subject": "a worker with a long history", "files": ["w.txt"],
         "script": [{"hang": True}]},
        {"id": "N", "subject": "the next dispatch", "files": ["n.txt"],
         "script": [{"write": {"path": "n.txt", "content": "n\n"}}]},
    ]})  # fmt: skip
    options = launch.RunOptions(
        run_id=name, worktree_root=ws.dir / "wt", tmux_socket=ws.socket, max_workers=2
    )
    log = launch.create_run(repo, plan, options)
    log.record("task_dispatched", "W", attempt=1, session=None, branch="b", worktree="w")
    kinds = ("task_message", "task_nudged", "mail_ignored")
    for first in range(0, events, 1000):
        batch: list[tuple[t.Any, str | None, dict[str, t.Any]]] = []
        for n in range(first, min(first + 1000, events)):
            kind = kinds[n % 3]
            data: dict[str, t.Any] = {"text": f"progress {n}"} if kind != "task_nudged" else {}
            if kind == "task_message":
                data.update(msg_id=f"m{n:07d}", type="PROGRESS")
            batch.append((kind, None if kind == "mail_ignored" else "W", data))
        log.record_all(batch)
    log.record("task_offered", "W", head_sha=None, text="offered")
    log.record("task_merged", "W", merge_sha=None, no_changes=True, text="merged (no changes)")
    return repo, name


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--workers", type=int, default=64)
    p.add_argument("--only", default="idle,layered,queue,log", help="comma-separated parts")
    args = p.parse_args(argv)
    parts = set(args.only.split(","))
    profile = common.profile_path(BENCH, args.profile)
    rows: list[Row] = []
    details: dict[str, t.Any] = {}
    with Workspace(BENCH, keep=args.keep) as ws:
        if "idle" in parts:
            part, details["idle"] = idle_workers(ws, args.workers, 6.0 if args.quick else 20.0,
                                                 profile)  # fmt: skip
            rows += part
        if "layered" in parts:
            part, details["layered"] = layered_plan(ws, 200, 16, None)  # quick too (issue 17)
            rows += part
        if "queue" in parts:
            part, details["queue"] = merge_queue(ws, 100)
            rows += part
        if "log" in parts:
            part, details["log"] = big_log(ws, 20_000 if args.quick else 100_000)
            rows += part
    common.emit(BENCH, rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
