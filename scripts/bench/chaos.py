"""Chaos trials: SIGKILL the mayor of a 20-task scripted run at random moments (and, every few
runs, kill the whole tmux server instead), resume, and check the invariants of
``tests/runner/faults.py`` at the end of every run. Prints trials, failures and the time from
``swarm resume`` to the next dispatch.

    ./scripts/bench/chaos.py --trials 100          # 100 kill-and-resume trials
    ./scripts/bench/chaos.py --trials 10 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.runner import faults  # noqa: E402  (the repository root must be importable first)

GIT_ENV = {
    "GIT_AUTHOR_NAME": "chaos",
    "GIT_AUTHOR_EMAIL": "chaos@swarm.invalid",
    "GIT_COMMITTER_NAME": "chaos",
    "GIT_COMMITTER_EMAIL": "chaos@swarm.invalid",
}


def new_repo(where: pathlib.Path) -> pathlib.Path:
    repo = where / "repo"
    repo.mkdir(parents=True)
    for args in (("init", "-q", "-b", "main"), ("commit", "-q", "--allow-empty", "-m", "init")):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)
    return repo


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100, help="kill-and-resume trials")
    parser.add_argument("--kills-per-run", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=pathlib.Path, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="10 trials")
    args = parser.parse_args()
    trials = 10 if args.quick else args.trials
    os.environ.update({k: os.environ.get(k, v) for k, v in GIT_ENV.items()})
    rng = random.Random(args.seed)
    done = runs = 0
    failures: list[str] = []
    delays: list[float] = []
    started = time.monotonic()
    while done < trials:
        runs += 1
        kills = min(args.kills_per_run, trials - done)
        kill_server = runs % 5 == 0
        where = pathlib.Path(tempfile.mkdtemp(prefix="swarm-chaos-"))
        socket = f"chaos-{os.getpid()}-{runs}"
        os.environ["XDG_STATE_HOME"] = str(where / "state")
        try:
            repo = new_repo(where)
            plan = faults.write_plan(where, faults.twenty_task_plan(rng))
            delays += faults.run_trial(
                repo,
                plan,
                socket,
                f"c{runs}",
                rng,
                kills=1 if kill_server else kills,
                kill_server=kill_server,
            )
            shutil.rmtree(where, ignore_errors=True)
        except Exception as exc:  # a failed trial is a finding: keep its files, go on
            failures.append(f"run {runs}: {exc!r} (kept in {where})")
            traceback.print_exc()
        finally:
            subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
        done += 1 if kill_server else kills
        print(f"trials {done}/{trials}, failures {len(failures)}", file=sys.stderr)
    figures = {
        "trials": done,
        "runs": runs,
        "failures": failures,
        "resume_to_dispatch_p50_s": percentile(delays, 0.5),
        "resume_to_dispatch_p95_s": percentile(delays, 0.95),
        "seconds": round(time.monotonic() - started, 1),
    }
    print("| chaos | value |\n|---|---|")
    print(f"| trials (kill + resume) | {done} in {runs} runs |")
    print(f"| failed runs | {len(failures)} |")
    print(f"| resume -> next dispatch p50 | {figures['resume_to_dispatch_p50_s']:.2f} s |")
    print(f"| resume -> next dispatch p95 | {figures['resume_to_dispatch_p95_s']:.2f} s |")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
