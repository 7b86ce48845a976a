"""Isolation: the cost per worker of ``--isolation clone`` and ``sandbox`` against ``worktree``
mode, measured in the same run on the same repository: start-up (making the checkout the way
the launcher does, plus for ``sandbox`` starting ``true`` inside the worker's real bubblewrap
sandbox) and disk (the checkout and its own git metadata; a clone borrows the objects).

    .venv/bin/python scripts/bench/isolation.py [--quick] [--json FILE] [--workers N]
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
import typing as t

import common
from common import Row, Workspace

from runner import sandbox, worktrees
from runner.errors import UsageError

BENCH: t.Final = "isolation"
FILES: t.Final = 300
"""Files of the sample repository (4 KiB each, over three commits)."""


def sample_repo(ws: Workspace) -> pathlib.Path:
    repo = ws.repo()
    for batch in range(3):
        for index in range(batch, FILES, 3):
            path = repo / "src" / f"m{index:03d}.py"
            path.parent.mkdir(exist_ok=True)
            path.write_text(f"# module {index}, batch {batch}\n" + "x = 1\n" * 680)
        ws.git(repo, "add", "-A")
        ws.git(repo, "commit", "-q", "-m", f"batch {batch}")
    ws.git(repo, "gc", "-q")
    return repo


def disk_bytes(*paths: pathlib.Path) -> int:
    """Blocks used by the files under ``paths`` (links not followed), like ``du``."""
    total = 0
    for root in paths:
        for folder, _dirs, files in os.walk(root):
            for name in files:
                total += pathlib.Path(folder, name).lstat().st_blocks * 512
    return total


def make(mode: str, repo: pathlib.Path, path: pathlib.Path, branch: str, base: str) -> None:
    worktrees.create_checkout("worktree" if mode == "worktree" else "clone", repo, path, branch,
                              base)  # fmt: skip


def sandbox_spec(ws: Workspace, repo: pathlib.Path, clone: pathlib.Path, bwrap: str) -> t.Any:
    task = clone.name
    box = sandbox.Box(ws.dir / "boxes" / task, task, "bench")
    box.prepare(())
    files = ws.dir / "files"
    files.mkdir(exist_ok=True)
    for name in ("key", "plan.json", "brief.md"):
        (files / name).touch()
    (files / "inbox").mkdir(exist_ok=True)
    return sandbox.SandboxSpec(
        bwrap=bwrap,
        box=box,
        clone=clone,
        objects=repo / ".git" / "objects",
        inbox=files / "inbox",
        key_file=files / "key",
        plan=files / "plan.json",
        brief=files / "brief.md",
        shim_dir=files,
        home=(),
        hidden=(repo, ws.dir / "home"),
        code=sandbox.code_roots(),
    )


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--workers", type=int, default=10)
    args = p.parse_args(argv)
    workers = 3 if args.quick else args.workers
    try:
        bwrap: str | None = sandbox.require_bwrap()
    except UsageError as exc:
        bwrap = None
        print(f"isolation: sandbox rows skipped: {exc}", file=sys.stderr)
    seconds: dict[str, float] = {}
    disk: dict[str, float] = {}
    meta: dict[str, float] = {}
    with Workspace(BENCH, keep=args.keep) as ws:
        os.environ.update(ws.env)  # the runner's git calls get the bench's identity
        repo = sample_repo(ws)
        base = ws.git(repo, "rev-parse", "HEAD")
        for mode in ("worktree", "clone", "sandbox"):
            if mode == "sandbox" and bwrap is None:
                continue
            start = time.perf_counter()
            paths = []
            for index in range(workers):
                path = ws.dir / "wt" / mode / f"T{index:02d}"
                make(mode, repo, path, f"swarm/{mode}/T{index:02d}", base)
                if mode == "sandbox" and bwrap is not None:
                    spec = sandbox_spec(ws, repo, path, bwrap)
                    subprocess.run(spec.argv(["true"]), check=True, env=ws.env)
                paths.append(path)
            seconds[mode] = (time.perf_counter() - start) / workers
            if mode == "worktree":
                admin = [repo / ".git" / "worktrees" / p.name for p in paths]
                disk[mode] = disk_bytes(*paths, *admin) / workers
                meta[mode] = disk_bytes(*admin) / workers
            else:
                disk[mode] = disk_bytes(*paths) / workers
                meta[mode] = disk_bytes(*(p / ".git" for p in paths)) / workers
    rows = []
    for mode in ("clone", "sandbox"):
        if mode not in seconds:
            continue
        rows += [
            Row(BENCH, f"{mode}: start-up per worker", seconds[mode] * 1000,
                seconds["worktree"] * 1000, "ms", note="baseline: worktree mode"),
            Row(BENCH, f"{mode}: disk per worker", disk[mode] / 1024, disk["worktree"] / 1024,
                "KiB", note="checkout + its git metadata"),
            Row(BENCH, f"{mode}: git metadata per worker", meta[mode] / 1024,
                meta["worktree"] / 1024, "KiB", note="clone .git vs .git/worktrees/<name>"),
        ]  # fmt: skip
    details = {"workers": workers, "files": FILES, "seconds": seconds, "disk": disk, "meta": meta}
    common.emit(BENCH, rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
