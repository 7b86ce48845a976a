"""The demo: a real distributed run of examples/demo/plan.yaml on a fresh sample repository.

It creates a small Python package in a git repository, runs ``swarm run --mode=distributed``
with the built-in scripted agent (eight tasks in a DAG: a diamond, a parallel branch, a task
that crashes once and succeeds on retry, one that reports a scope escape), then runs the sample's
tests on the integration branch and prints how to look around and clean up.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "demo"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "swarm demo",
    "GIT_AUTHOR_EMAIL": "demo@swarm.invalid",
    "GIT_COMMITTER_NAME": "swarm demo",
    "GIT_COMMITTER_EMAIL": "demo@swarm.invalid",
}


def sh(*cmd: str, cwd: pathlib.Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, check=check, text=True, capture_output=True)


def make_sample(where: pathlib.Path) -> pathlib.Path:
    repo = where / "calc"
    shutil.copytree(EXAMPLE / "sample", repo)
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "calc: initial package", cwd=repo)
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=pathlib.Path, help="Where to create the demo (default: tmp)")
    parser.add_argument("--mode", choices=["distributed", "local"], default="distributed")
    parser.add_argument(
        "--isolation",
        choices=["worktree", "clone", "sandbox"],
        default="worktree",
        help="Each worker's checkout (docs/isolation.md)",
    )
    args = parser.parse_args()
    os.environ.update({k: os.environ.get(k, v) for k, v in GIT_ENV.items()})
    where = (args.dir or pathlib.Path(tempfile.mkdtemp(prefix="swarm-demo-"))).resolve()
    where.mkdir(parents=True, exist_ok=True)
    repo = make_sample(where)
    plan = where / "plan.yaml"
    shutil.copy(EXAMPLE / "plan.yaml", plan)
    swarm = [sys.executable, "-m", "runner"]
    print(f"==> sample repository: {repo}")
    print("==> the plan (examples/demo/plan.yaml):")
    subprocess.run([*swarm, "plan", "validate", str(plan)], check=True)
    print(
        f"==> swarm run {plan.name} --mode={args.mode} --isolation={args.isolation}"
        "   (progress below; the report follows)"
    )
    started = time.monotonic()
    code = subprocess.call(
        [
            *swarm,
            "run",
            str(plan),
            "--repo",
            str(repo),
            "--mode",
            args.mode,
            "--worktree-root",
            str(where / "worktrees"),
            "--run-id",
            "demo",
            "--keep-sessions",
            "--isolation",
            args.isolation,
        ]
    )
    elapsed = time.monotonic() - started
    print(f"==> swarm run exited {code} after {elapsed:.1f}s")
    integration = where / "worktrees" / "demo" / "_integration"
    if integration.is_dir():
        print("==> the sample's tests on the integration branch swarm/demo/integration:")
        tests = subprocess.run(
            [sys.executable, "-m", "unittest", "discover", "-s", "tests", "-v"],
            cwd=integration,
            text=True,
            capture_output=True,
        )
        print(tests.stderr.strip())
        print("==> merge commits on the integration branch:")
        print(sh("git", "log", "--oneline", "--merges", "swarm/demo/integration", cwd=repo).stdout)
        code = code or tests.returncode
    exe = pathlib.Path(sys.executable).parent / "swarm"
    print(
        "==> look around:\n"
        f"  cd {repo}\n"
        f"  {exe} status        # the task table (--json for scripts)\n"
        f"  {exe} report        # the results report again\n"
        f"  {exe} logs T03      # a worker's output: the crash, then the retry\n"
        f"  {exe} attach T06    # watch a worker's tmux session (read-only; --rw to type)\n"
        "  cat .agents/swarm/scope-escapes.jsonl\n"
        "==> clean up:\n"
        f"  {exe} clean --force     # worktrees, branches, sessions (the tmux server exits)\n"
        f"  rm -rf {where}"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
