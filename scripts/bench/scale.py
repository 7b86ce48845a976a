"""Scale: 32 concurrent workers on this machine. Time to dispatch all 32 (against a raw loop of
``git worktree add`` + ``tmux new-session`` for 32), then, while every worker idles, the mayor's
CPU (own, and with the tmux/git clients it ran) and its RSS (against a bare Python that imports
the runner).

    .venv/bin/python scripts/bench/scale.py [--quick] [--json FILE] [--workers N]
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import typing as t

import common
from common import Row, Workspace

from runner.paths import SwarmPaths

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


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--workers", type=int, default=32)
    args = p.parse_args(argv)
    workers = args.workers
    window = 6.0 if args.quick else 20.0
    profile = common.profile_path(BENCH, args.profile)
    with Workspace(BENCH, keep=args.keep) as ws:
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

            common.wait_for(lambda: count("task_dispatched") >= workers, 180, "32 dispatches",
                            interval=0.2)  # fmt: skip
            events = common.run_events(repo, "scale")
            created = common.ts(events[0])
            dispatched = [common.ts(e) for e in events if e.kind == "task_dispatched"]
            ours_dispatch = max(dispatched) - created
            stamps_ready = lambda: len(common.read_stamps(ws.stamps)) >= workers  # noqa: E731
            common.wait_for(stamps_ready, 180, "32 agents running", interval=0.2)
            common.wait_for(lambda: count("task_message", type="BEAD_ACCEPTED") >= workers,
                            240, "32 accepted reports", interval=0.5)  # fmt: skip
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
    rows = [
        Row(BENCH, f"time to dispatch {workers} workers", ours_dispatch, raw, "s",
            note="baseline: worktree add + new-session loop"),
        Row(BENCH, f"mayor CPU, {workers} idle workers", own_pct, None, "% of a core", "< 2%",
            own_pct < 2, f"over {elapsed:.0f} s"),
        Row(BENCH, f"mayor CPU incl. its tmux/git clients, {workers} idle", all_pct, None,
            "% of a core", "< 2%", all_pct < 2),
        Row(BENCH, f"mayor RSS, {workers} workers", memory["VmRSS"], bare_mb, "MB", "< 150 MB",
            memory["VmRSS"] < 150, "baseline: bare python importing the runner"),
    ]  # fmt: skip
    details = {"workers": workers, "window_s": elapsed, "mayor_alive": alive,
               "dispatch_s": ours_dispatch, "raw_dispatch_s": raw, "cpu_own_pct": own_pct,
               "cpu_with_children_pct": all_pct, "memory_mb": memory, "bare_rss_mb": bare_mb,
               "profiled": profile is not None}  # fmt: skip
    common.emit(BENCH, rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
