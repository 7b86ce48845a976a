"""The demo: a real distributed run of examples/demo/plan.yaml on a fresh sample repository.

It creates a small Python package in a git repository, runs ``swarm run --mode=distributed``
with the built-in scripted agent (eight tasks in a DAG: a diamond, a parallel branch, a task
that crashes once and succeeds on retry, one that reports a scope escape), then runs the sample's
tests on the integration branch and prints how to look around and clean up.

It lives in one known directory (``--dir``, default ``$XDG_STATE_HOME/swarm/demo``, replaced by
the next demo) and leaves nothing else: no temporary directory, and no tmux server (the
finished mayor's session is closed, so the run's private server exits with it).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
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


def default_dir() -> pathlib.Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    return (
        (pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".local" / "state") / "swarm" / "demo"
    )


def private_server(repo: pathlib.Path) -> str:
    """The run's private tmux server (``runner.paths.tmux_socket_name``)."""
    sys.path.insert(0, str(ROOT))
    from runner.paths import tmux_socket_name

    return tmux_socket_name(repo)


def close_sessions(socket: str, run_id: str) -> None:
    """Close what the finished run left on its private server (the mayor's dead pane, a worker
    kept for a look); with no session left the server exits by itself."""
    if shutil.which("tmux") is None:
        return
    listing = subprocess.run(
        ["tmux", "-L", socket, "list-sessions", "-F", "#{session_name}"],
        capture_output=True,
        text=True,
        check=False,
    )
    for name in listing.stdout.split():
        if name.startswith(f"swarm-{run_id}-"):
            subprocess.run(["tmux", "-L", socket, "kill-session", "-t", f"={name}"], check=False)


def forget_previous(where: pathlib.Path) -> None:
    """Remove an earlier demo in ``where`` (only one this script made: it has calc/.git)."""
    if not where.exists():
        return
    if not (where / "calc" / ".git").exists() or not (where / "plan.yaml").exists():
        raise SystemExit(f"demo: {where} exists and is not a demo directory; use --dir")
    close_sessions(private_server(where / "calc"), "demo")
    shutil.rmtree(where)


def make_sample(where: pathlib.Path) -> pathlib.Path:
    repo = where / "calc"
    shutil.copytree(EXAMPLE / "sample", repo)
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "calc: initial package", cwd=repo)
    return repo


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dir", type=pathlib.Path, help=f"Where to create the demo (default: {default_dir()})"
    )
    parser.add_argument("--mode", choices=["distributed", "local"], default="distributed")
    parser.add_argument(
        "--isolation",
        choices=["worktree", "clone", "sandbox"],
        default="worktree",
        help="Each worker's checkout (docs/isolation.md)",
    )
    args = parser.parse_args()
    os.environ.update({k: os.environ.get(k, v) for k, v in GIT_ENV.items()})
    where = (args.dir or default_dir()).resolve()
    forget_previous(where)
    where.mkdir(parents=True)
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
            "--isolation",
            args.isolation,
        ]
    )
    elapsed = time.monotonic() - started
    close_sessions(private_server(repo), "demo")
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
        f"  {exe} runs          # the repository's runs\n"
        f"  {exe} status        # the task table (--json for scripts)\n"
        f"  {exe} report        # the results report again\n"
        f"  {exe} report --html # the same with a Gantt chart: open the file it prints\n"
        f"  {exe} logs T03      # a worker's output: the crash, then the retry\n"
        f"  {exe} plan graph ../plan.yaml --format html > graph.html   # the plan's DAG\n"
        "  cat .agents/swarm/scope-escapes.jsonl\n"
        "==> tidy up:\n"
        f"  {exe} clean         # removes the run's worktrees and branches, keeping every commit\n"
        f"  rm -rf {where}   # the demo itself (the next ./scripts/demo replaces it)"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
