"""Say why, everywhere: a failing check's last output lines and the path of its saved output
reach the run output, ``status`` (text and --json), ``report``, ``swarm logs --validation`` and
the next attempt's brief. Real runs (local mode: plain processes, real worktrees and merges)."""

from __future__ import annotations

import json
import pathlib

from runner.paths import SwarmPaths
from tests.runner.runs import swarm, swarm_run, task, write, write_plan

CAUSE = "AssertionError: expected 3, got 4"


def _failing_plan(where: pathlib.Path) -> pathlib.Path:
    # the check prints a lot of noise and the cause last, as pytest does; the worker keeps
    # offering the same broken work, so every attempt is refused and the task fails
    check = f"seq 1 40; echo '{CAUSE}'; exit 1"
    tasks = [task("T1", ["a.txt"], [write("a.txt", "3\n")], validation={"tests": check})]
    return write_plan(where, tasks, budgets={"max_attempts": 2})


def test_a_failed_validation_says_why_on_every_surface(git_repo: pathlib.Path) -> None:
    result = swarm_run(git_repo, _failing_plan(git_repo.parent), None)
    assert result.exit_code == 1, result.output
    log = SwarmPaths.for_repo(git_repo).run("r1").task_dir("T1") / "validation.log"
    assert CAUSE in log.read_text()
    # the run output: the reason, then the cause, then where the rest is
    lines = result.output.splitlines()
    refused = [i for i, line in enumerate(lines) if "validation failed: tests" in line]
    assert refused, result.output
    below = lines[refused[0] + 1 : refused[0] + 8]
    assert any(CAUSE in line for line in below), below
    assert any(str(log) in line and "swarm logs T1 --validation" in line for line in below)

    status = swarm("status", "--repo", str(git_repo))
    assert status.exit_code == 0, status.output
    assert CAUSE in status.output
    assert str(log) in status.output.replace("\n", "")
    doc = json.loads(swarm("status", "--repo", str(git_repo), "--json").output)
    (why,) = doc["why"]
    assert (why["task_id"], why["log"]) == ("T1", str(log))
    assert why["tail"][-1] == CAUSE
    assert len(why["tail"]) == 5  # the last lines, not all forty

    report = swarm("report", "--repo", str(git_repo))
    assert "### Why" in report.output and CAUSE in report.output
    saved = SwarmPaths.for_repo(git_repo).run("r1").report.read_text()
    assert CAUSE in saved

    logs = swarm("logs", "T1", "--validation", "--repo", str(git_repo), "-n", "2")
    assert logs.exit_code == 0, logs.output
    assert logs.output.splitlines() == ["40", CAUSE]

    brief = SwarmPaths.for_repo(git_repo).run("r1").brief("T1").read_text()
    assert "attempt 2" in brief
    assert CAUSE in brief and str(log) in brief


def test_logs_of_a_check_that_never_failed_is_a_usage_error(git_repo: pathlib.Path) -> None:
    plan = write_plan(git_repo.parent, [task("T1", ["a.txt"], [write("a.txt", "x\n")])])
    assert swarm_run(git_repo, plan, None).exit_code == 0
    result = swarm("logs", "T1", "--gate", "--repo", str(git_repo))
    assert result.exit_code == 2, result.output
    assert "no gate output for task 'T1'" in result.output
    assert "gate.log" in result.output


def test_a_failed_final_gate_says_why(git_repo: pathlib.Path) -> None:
    gate = {"name": "suite", "command": "echo 'E   boom in test_x'; exit 1", "fast": False}
    plan = write_plan(
        git_repo.parent, [task("T1", ["a.txt"], [write("a.txt", "x\n")])], gates=[gate]
    )
    result = swarm_run(git_repo, plan, None, "--auto-spawn", "off")
    assert result.exit_code == 1, result.output
    assert "E   boom in test_x" in result.output
    status = swarm("status", "--repo", str(git_repo))
    assert "run: final gate suite exited 1" in status.output
    assert "E   boom in test_x" in status.output


def test_report_of_a_run_without_a_mayor_says_so(git_repo: pathlib.Path) -> None:
    from tests.runner.test_cli_watch import make_run

    make_run(git_repo)  # "running", and no mayor holds its lock
    result = swarm("report", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert "mayor not running (since" in result.output and "swarm resume r1" in result.output
