"""`swarm retry`: a task that failed for good (and what was skipped behind it) runs again, in a
live run by mail to its mayor, or in an ended run, which is reopened (real tmux, real git)."""

from __future__ import annotations

import pathlib

import pytest
from libtmux.server import Server

from protocol.state import TaskState
from runner import control
from runner.decide import retry_set
from runner.errors import UsageError
from tests.runner.runs import events, state_doc, swarm, swarm_run, task, wait_for, write, write_plan

ONE_TRY = {"budgets": {"max_attempts": 1, "max_fixups": 0}}


def states(repo: pathlib.Path) -> dict[str, str]:
    return {tid: rec["state"] for tid, rec in state_doc(repo)["tasks"].items()}


def test_a_failed_run_is_reopened_and_the_retried_task_and_its_skipped_dependent_merge(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    go = tmp_path / "go"
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "a\n")], validation={"tests": f"test -e {go}"}),
        task("B", ["b.txt"], [write("b.txt", "b\n")], blocked_by=["A"]),
        task("C", ["c.txt"], [write("c.txt", "c\n")]),
    ]
    plan = write_plan(tmp_path, tasks, **ONE_TRY)
    swarm_run(git_repo, plan, server)
    assert state_doc(git_repo)["status"] == "failed"
    assert states(git_repo) == {"A": "failed", "B": "skipped", "C": "merged"}

    refused = swarm("retry", "C", "--repo", str(git_repo))  # merged: nothing to retry
    assert refused.exit_code == 2
    assert "task C is merged: only failed, blocked, skipped or cancelled" in refused.output
    assert state_doc(git_repo)["status"] == "failed"  # nothing recorded

    go.touch()
    again = swarm("retry", "A", "--repo", str(git_repo))
    assert "A, B will run again in run r1" in again.output
    assert again.exit_code == 0, again.output
    page = git_repo / ".agents/swarm/runs/r1/report.html"
    assert f"swarm: the run as a picture: {page}" in again.output
    assert page.read_text().startswith("<!doctype html>")
    final = state_doc(git_repo)
    assert final["status"] == "done", final["stop_reason"]
    assert states(git_repo) == {"A": "merged", "B": "merged", "C": "merged"}
    assert final["tasks"]["A"]["attempt"] == 2  # its own worktree again, a new attempt
    kinds = [(e.kind, e.task_id) for e in events(git_repo) if e.kind == "task_retried"]
    assert kinds == [("task_retried", "A"), ("task_retried", "B")]


def test_a_live_mayor_retries_a_failed_task_when_asked(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    go, hold = tmp_path / "go", tmp_path / "hold"
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "a\n")], validation={"tests": f"test -e {go}"}),
        task(
            "L",
            ["l.txt"],
            [{"run": f"while [ ! -e {hold} ]; do sleep 0.05; done"}, write("l.txt", "l\n")],
        ),
    ]
    plan = write_plan(tmp_path, tasks, **ONE_TRY)
    assert swarm_run(git_repo, plan, server, "--detach").exit_code == 0
    wait_for(lambda: states(git_repo)["A"] == "failed", timeout=90)
    go.touch()
    result = control.retry(git_repo, "r1", ["A"])
    assert result == control.Retry("asked", ("A",))
    wait_for(lambda: states(git_repo)["A"] == "merged", timeout=90)
    hold.touch()
    wait_for(lambda: state_doc(git_repo)["status"] != "running", timeout=90)
    assert state_doc(git_repo)["tasks"]["A"]["attempt"] == 2


def test_retry_set_names_what_cannot_be_retried() -> None:
    order = ("A", "B", "C", "D")
    deps = {"A": ("B",), "B": ("C",), "C": ()}
    view: dict[str, TaskState] = {"A": "failed", "B": "skipped", "C": "skipped", "D": "running"}
    assert retry_set(view, order, deps, ["A"]) == ("A", "B", "C")
    assert retry_set(view, order, deps, ["B", "B"]) == ("B", "C")
    with pytest.raises(ValueError, match="task D is running: only failed"):
        retry_set(view, order, deps, ["A", "D"])
    with pytest.raises(ValueError, match="task X is not in the run"):
        retry_set(view, order, deps, ["X"])
    with pytest.raises(ValueError, match="name the tasks"):
        retry_set(view, order, deps, [])


def test_unknown_task_is_a_usage_error_and_records_nothing(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    plan = write_plan(tmp_path, [task("A", ["a.txt"], [write("a.txt", "a\n")])])
    swarm_run(git_repo, plan, None)
    before = len(events(git_repo))
    with pytest.raises(UsageError, match="task Z is not in the run"):
        control.retry(git_repo, "r1", ["Z"])
    assert len(events(git_repo)) == before
