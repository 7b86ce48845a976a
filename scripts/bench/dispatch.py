"""Dispatch overhead: from a dependency's OFFERING_READY being written to the dependent task's
agent process running, against the raw floor measured in the same repository.

A chain T01 -> T02 -> ... of scripted tasks (each writes one file and offers; no validation, no
gates) runs live in a private tmux server. For each link, *ours* is the dependent's agent start
stamp minus the ``created`` time of the dependency's OFFERING_READY envelope; it is split into
wake-up (mail written -> ``task_offered``), arbiter (-> ``task_merged``), dispatch decision and
worktree set-up (-> ``task_dispatched``, then -> agent start). The *floor* is what any runner
must do for the same step: ``git merge --no-ff`` of the dependency's branch into an integration
worktree, ``git worktree add`` of the dependent's branch, ``tmux new-session`` running the agent
command, until that command's process runs (the same ``date`` stamp). Runs and floor rounds
alternate (four times with ``--quick``, six without; ours first, then the floor first, ...),
so both see the same load.

    .venv/bin/python scripts/bench/dispatch.py [--quick] [--json FILE]
"""

from __future__ import annotations

import itertools
import pathlib
import shlex
import subprocess
import sys
import time
import typing as t

import common
from common import Row, Workspace

from agentmail.store import MailStore
from runner.paths import SwarmPaths

BENCH: t.Final = "dispatch"


def chain_plan(path: pathlib.Path, links: int, prefix: str = "T") -> tuple[pathlib.Path, list[str]]:
    ids = [f"{prefix}{i:02d}" for i in range(1, links + 2)]
    tasks = [
        {
            "id": tid,
            "subject": f"link {tid}",
            "files": [f"chain/{tid}.txt"],
            "blocked_by": [ids[i - 1]] if i else [],
            "script": [{"write": {"path": f"chain/{tid}.txt", "content": f"{tid}\n"}}],
        }
        for i, tid in enumerate(ids)
    ]
    return common.write_plan(path, tasks), ids


def measure_ours(
    ws: Workspace, links: int, profile: pathlib.Path | None, round_no: int = 0
) -> tuple[list[dict[str, float]], float]:
    repo = ws.repo(f"repo{round_no}")
    run_id = f"dispatch{round_no}"
    plan, ids = chain_plan(ws.dir / f"chain{round_no}.json", links, prefix="TABCDEFGHJ"[round_no])
    t0 = time.monotonic()
    result = ws.swarm(*ws.run_args(repo, plan, run_id), profile=profile)
    wall = time.monotonic() - t0
    common.check_run(result, "swarm run (dispatch chain)")
    events = common.run_events(repo, run_id)
    stamps = common.read_stamps(ws.stamps)
    store = MailStore(SwarmPaths.for_repo(repo).mail)
    samples: list[dict[str, float]] = []
    for dep, tid in itertools.pairwise(ids):
        offered = common.first(events, "task_offered", dep)
        merged = common.first(events, "task_merged", dep)
        dispatched = common.first(events, "task_dispatched", tid)
        assert offered and merged and dispatched, f"missing events for {dep} -> {tid}"
        created = store.get("mayor", offered.data["msg_id"]).envelope.created.timestamp()
        samples.append(
            {
                "total": (stamps[tid] - created) * 1000,
                "wake": (common.ts(offered) - created) * 1000,
                "arbiter": (common.ts(merged) - common.ts(offered)) * 1000,
                "decide": (common.ts(dispatched) - common.ts(merged)) * 1000,
                "start": (stamps[tid] - common.ts(dispatched)) * 1000,
            }
        )
    return samples, wall


def measure_floor(ws: Workspace, rounds: int, round_no: int = 0) -> list[dict[str, float]]:
    """The raw steps of one dispatch, with the same tools and the same stamp."""
    repo = ws.repo(f"floor-repo{round_no}")
    folder = ws.dir / f"floor-wt{round_no}"
    integration = folder / "integration"
    scratch = folder / "scratch"
    ws.git(repo, "worktree", "add", "-q", "-b", "floor/integration", str(integration), "main")
    ws.git(repo, "worktree", "add", "-q", "--detach", str(scratch), "main")
    for i in range(rounds):  # the dependencies' branches, made up front like the workers'
        ws.git(scratch, "checkout", "-q", "-B", f"floor/dep{i}", "main")
        (scratch / f"dep{i}.txt").write_text(f"{i}\n")
        ws.git(scratch, "add", "-A")
        ws.git(scratch, "commit", "-q", "-m", f"dep {i}")
    socket = ws.new_socket()
    stamps = ws.dir / f"floor-stamps{round_no}"
    stamps.mkdir()
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-s", "keepalive"], env=ws.env,
                   check=True)  # fmt: skip
    samples: list[dict[str, float]] = []

    def run(*argv: str, cwd: pathlib.Path = repo) -> None:
        subprocess.run(argv, cwd=cwd, env=ws.env, check=True, capture_output=True)

    for i in range(rounds):
        name = f"floor{i}"
        worktree = folder / name
        command = shlex.join(common.stamp_argv(stamps, name, "true"))
        start = time.time()
        run("git", "merge", "--no-ff", "-q", "-m", f"merge dep {i}", f"floor/dep{i}",
            cwd=integration)  # fmt: skip
        merged = time.time()
        run(
            "git",
            "worktree",
            "add",
            "-q",
            "-b",
            f"floor/{name}",
            str(worktree),
            "floor/integration",
        )
        added = time.time()
        run("tmux", "-L", socket, "new-session", "-d", "-s", name, "-c", str(worktree),
            command)  # fmt: skip
        created = time.time()
        stamp = stamps / name
        common.wait_for(
            lambda stamp=stamp: stamp.exists() and stamp.read_text().strip() != "",  # type: ignore[misc]
            10,
            f"the floor agent {name} to start",
            interval=0.001,
        )
        began = float(stamp.read_text())
        samples.append(
            {
                "total": (began - start) * 1000,
                "merge": (merged - start) * 1000,
                "worktree": (added - merged) * 1000,
                "new_session": (created - added) * 1000,
                "start": (began - created) * 1000,
            }
        )
    return samples


def main(argv: t.Sequence[str] | None = None) -> int:
    args = common.parser(__doc__).parse_args(argv)
    links, alternations = (5, 4) if args.quick else (10, 6)
    profile = common.profile_path(BENCH, args.profile)
    ours: list[dict[str, float]] = []
    floor: list[dict[str, float]] = []
    wall = 0.0
    with Workspace(BENCH, keep=args.keep) as ws:
        # a run and a floor round, again and again, in the order ours-floor, floor-ours, ...:
        # both see the same load (a shared machine's load swings more between two minutes
        # than the thing measured, and whichever goes first after the previous benchmark's
        # clean-up meets a slower disk)
        for round_no in range(alternations):
            if round_no % 2:
                floor += measure_floor(ws, links, round_no)
            samples, seconds = measure_ours(ws, links, profile if not round_no else None, round_no)
            ours += samples
            wall += seconds
            if not round_no % 2:
                floor += measure_floor(ws, links, round_no)
    o = {k: common.summary([s[k] for s in ours]) for k in ours[0]}
    f = {k: common.summary([s[k] for s in floor]) for k in floor[0]}
    ratio = o["total"]["p50"] / f["total"]["p50"]
    rows = [
        Row(BENCH, "offer -> dependent agent running, p50", o["total"]["p50"],
            f["total"]["p50"], "ms", "ratio <= 1.3", ratio <= 1.3,
            "baseline: merge + worktree add + new-session + process start"),
        Row(BENCH, "offer -> dependent agent running, p90", o["total"]["p90"],
            f["total"]["p90"], "ms"),
        Row(BENCH, "  wake-up: OFFERING_READY written -> task_offered, p50", o["wake"]["p50"],
            None, "ms"),
        Row(BENCH, "  arbiter: task_offered -> task_merged, p50", o["arbiter"]["p50"],
            f["merge"]["p50"], "ms", note="baseline: git merge"),
        Row(BENCH, "  task_merged -> task_dispatched, p50", o["decide"]["p50"], None, "ms"),
        Row(BENCH, "  task_dispatched -> agent running, p50", o["start"]["p50"],
            f["worktree"]["p50"] + f["new_session"]["p50"] + f["start"]["p50"], "ms",
            note="baseline: worktree add + new-session + start"),
    ]  # fmt: skip
    details = {"links": links, "alternations": alternations, "run_seconds": wall,
               "ours_ms": o, "floor_ms": f, "ours_samples": ours,
               "floor_samples": floor}  # fmt: skip
    common.emit(BENCH, rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
