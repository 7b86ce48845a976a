"""Merge arbiter: 50 disjoint offered branches merged by the mayor (gates off, validation off)
against a raw ``git merge --no-ff`` loop over the same branches in the same repository.

The run is created as ``swarm run`` creates it, the 50 workers' branches are committed up front
and recorded as offered in the run's event log (what the mayor records when each OFFERING_READY
arrives), and then one :meth:`Mayor.step` integrates them all: scope check, conflict check,
merge, event records, the OFFERING_ACCEPTED mail.

    .venv/bin/python scripts/bench/arbiter.py [--quick] [--json FILE] [--branches N]
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time
import typing as t

import common
from common import Row, Workspace

from agentmail.store import MailStore
from protocol.plan import Plan
from runner import launch
from runner.mayor import Mayor, MayorConfig
from runner.paths import SwarmPaths
from runner.sessions import ProcessBackend

BENCH: t.Final = "arbiter"
RUN: t.Final = "arbiter"


def offered_run(ws: Workspace, repo: pathlib.Path, branches: int) -> tuple[Mayor, list[str]]:
    ids = [f"M{i:02d}" for i in range(branches)]
    plan = Plan.model_validate(
        {"name": "arbiter", "tasks": [
            {"id": tid, "subject": f"merge {tid}", "files": [f"merge/{tid}.txt"]} for tid in ids
        ]}
    )  # fmt: skip
    log = launch.create_run(
        repo, plan, launch.RunOptions(mode="local", run_id=RUN, worktree_root=ws.dir / "wt")
    )
    base = log.state.integration_head
    swarm = SwarmPaths.for_repo(repo)
    store = MailStore(swarm.mail)
    for tid in ids:
        worktree = ws.dir / "wt" / RUN / tid
        branch = f"swarm/{RUN}/{tid}"
        ws.git(repo, "worktree", "add", "-q", "-b", branch, str(worktree), base)
        (worktree / "merge").mkdir()
        (worktree / "merge" / f"{tid}.txt").write_text(f"{tid}\n")
        ws.git(worktree, "add", "-A")
        ws.git(worktree, "commit", "-q", "-m", f"work of {tid}")
        head = ws.git(worktree, "rev-parse", "HEAD")
        store.register(tid)
        log.record("task_dispatched", tid, attempt=1, session=None, branch=branch,
                   worktree=str(worktree), base_sha=base)  # fmt: skip
        log.record("task_offered", tid, head_sha=head, text="offered")
    mayor = Mayor(
        MayorConfig(repo=repo, swarm=swarm, run=swarm.run(RUN)),
        plan=plan,
        log=log,
        store=store,
        backend=ProcessBackend(),
    )
    return mayor, ids


def merge_step(mayor: Mayor, ids: t.Sequence[str]) -> float:
    """Seconds of the one mayor step that integrates every offer; RuntimeError unless all
    ``ids`` merged and the run is done."""
    start = time.perf_counter()
    try:
        mayor.step()
    finally:
        seconds = time.perf_counter() - start
        mayor.backend.close()
    state = mayor.state
    merged = [tid for tid in ids if state.tasks[tid].state == "merged"]
    if len(merged) != len(ids) or state.status != "done":
        raise RuntimeError(f"the mayor merged {len(merged)} of {len(ids)} ({state.status})")
    return seconds


def raw_merges(ws: Workspace, repo: pathlib.Path, ids: t.Sequence[str]) -> float:
    base = ws.git(repo, "rev-parse", "main")
    target = ws.dir / "raw-integration"
    ws.git(repo, "worktree", "add", "-q", "-b", "raw/integration", str(target), base)
    start = time.perf_counter()
    for tid in ids:
        subprocess.run(
            ["git", "merge", "--no-ff", "-q", "-m", f"merge {tid}", f"swarm/{RUN}/{tid}"],
            cwd=target, env=ws.env, check=True, capture_output=True,
        )  # fmt: skip
    return time.perf_counter() - start


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--branches", type=int, default=50)
    args = p.parse_args(argv)
    with Workspace(BENCH, keep=args.keep) as ws:
        repo = ws.repo()
        mayor, ids = offered_run(ws, repo, args.branches)
        profiler: t.Any = None
        if args.profile:
            import pyinstrument

            profiler = pyinstrument.Profiler()
            profiler.start()
        try:
            ours = merge_step(mayor, ids)
        finally:
            if profiler is not None:
                profiler.stop()
                out = common.profile_path(BENCH, True)
                assert out is not None
                out.write_text(profiler.output_text(show_all=False))
        raw = raw_merges(ws, repo, ids)
        same_tree = ws.git(repo, "rev-parse", f"swarm/{RUN}/integration^{{tree}}") == ws.git(
            repo, "rev-parse", "raw/integration^{tree}"
        )
    n = len(ids)
    ratio = ours / raw
    rows = [
        Row(BENCH, f"merge {n} disjoint branches, total", ours, raw, "s", "ratio <= 1.4",
            ratio <= 1.4, "baseline: git merge --no-ff loop"),
        Row(BENCH, "per merge", ours / n * 1000, raw / n * 1000, "ms"),
    ]  # fmt: skip
    details = {"branches": n, "ours_s": ours, "raw_s": raw, "same_tree": same_tree}
    common.emit(BENCH, rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
