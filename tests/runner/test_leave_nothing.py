"""Leave nothing behind: run -> land -> clean leaves no worktree, branch or session for doctor
to report; ``clean --force`` drops integration branches (archiving unlanded ones); ``clean
--all``; ``swarm runs``; every reading command takes a run id."""

from __future__ import annotations

import json
import pathlib
import typing as t

import click
import pytest
from libtmux.server import Server

from runner import git as g
from runner import launch
from runner.cli.main import cli
from runner.paths import SwarmPaths
from runner.plan.load import load_plan
from runner.state import exclusive_lock
from tests.conftest import git
from tests.runner.runs import swarm, swarm_run, task, write, write_plan


def branches(repo: pathlib.Path) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines())


def lost(repo: pathlib.Path) -> list[str]:
    out = git(repo, "fsck", "--unreachable", "--no-reflogs")
    return [line for line in out.splitlines() if line.startswith("unreachable commit")]


def worktrees(repo: pathlib.Path) -> list[pathlib.Path]:
    return [info.path for info in g.worktree_list(repo)]


def _plan(where: pathlib.Path, *tasks: dict[str, t.Any]) -> pathlib.Path:
    return write_plan(where, list(tasks), budgets={"max_attempts": 1})


OK = task("A", ["a.txt"], [write("a.txt", "a\n")])
FAILS = task("B", ["b.txt"], [write("b.txt", "b\n"), {"commit": "half of b"}, {"crash": 2}])


def test_run_land_clean_leaves_nothing_for_doctor(git_repo: pathlib.Path, server: Server) -> None:
    plan = _plan(git_repo.parent, OK)
    result = swarm(  # the default worktree root, which doctor looks under
        "run", str(plan), "--repo", str(git_repo), "--run-id", "r1",
        "--tmux-socket", str(server.socket_name), "--keep-sessions",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert swarm("land", "--repo", str(git_repo)).exit_code == 0
    result = swarm("clean", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert "removed  _integration" in result.output
    assert "removed  swarm/r1/integration" in result.output
    assert branches(git_repo) == {"main"}
    assert worktrees(git_repo) == [git_repo]
    assert not [s for s in server.sessions if (s.session_name or "").startswith("swarm-r1-")]
    doc = json.loads(swarm("doctor", "--repo", str(git_repo), "--json").output)
    found = {check["name"]: check for check in doc["checks"]}
    assert found["worktrees"]["ok"] and "none stale" in found["worktrees"]["detail"]
    assert found["sessions"]["ok"], found["sessions"]
    assert lost(git_repo) == []
    assert swarm("clean", "--repo", str(git_repo)).output.startswith("nothing to clean")


def test_a_run_that_merged_nothing_leaves_no_integration_branch(git_repo: pathlib.Path) -> None:
    result = swarm_run(git_repo, _plan(git_repo.parent, FAILS), None)
    assert result.exit_code == 1, result.output
    result = swarm("clean", "--repo", str(git_repo), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["removed"] == ["_integration", "swarm/r1/integration"]  # nothing to land
    assert [k["task"] for k in doc["kept"]] == ["B"]  # its commit is on no other branch
    result = swarm("clean", "--repo", str(git_repo), "--force", "--json")
    doc = json.loads(result.output)
    assert doc["removed"] == ["B"] and doc["archived"] == ["refs/swarm/archive/r1/B"]
    assert branches(git_repo) == {"main"} and lost(git_repo) == []
    assert not (git_repo.parent / "wt" / "r1").exists()


def test_an_unlanded_result_stays_until_force_archives_it(git_repo: pathlib.Path) -> None:
    assert swarm_run(git_repo, _plan(git_repo.parent, OK), None).exit_code == 0
    result_head = g.resolve(git_repo, "refs/heads/swarm/r1/integration")
    result = swarm("clean", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert "kept     swarm/r1/integration:" in result.output
    assert "`swarm land r1` lands it" in result.output and "--force" in result.output
    assert worktrees(git_repo) == [git_repo]  # the integration worktree went all the same
    result = swarm("clean", "--repo", str(git_repo), "--force")
    assert result.exit_code == 0, result.output
    assert "archived refs/swarm/archive/r1/_integration" in result.output
    assert g.resolve(git_repo, "refs/swarm/archive/r1/_integration") == result_head
    assert branches(git_repo) == {"main"} and lost(git_repo) == []


def test_a_resumable_run_keeps_its_integration_worktree(git_repo: pathlib.Path) -> None:
    plan = load_plan(_plan(git_repo.parent, OK))
    options = launch.RunOptions(mode="local", run_id="r1", worktree_root=git_repo.parent / "wt")
    launch.create_run(git_repo, plan, options)  # running, and no mayor ever started
    result = swarm("clean", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert "run r1 is running: `swarm resume` goes on in it" in result.output
    assert len(worktrees(git_repo)) == 2 and "swarm/r1/integration" in branches(git_repo)


def _three_runs(repo: pathlib.Path) -> None:
    """r1 done, r2 failed (merged nothing), r3 created and never driven (running, no mayor)."""
    assert swarm_run(repo, _plan(repo.parent, OK), None, "--run-id", "r1").exit_code == 0
    assert swarm_run(repo, _plan(repo.parent, FAILS), None, "--run-id", "r2").exit_code == 1
    options = launch.RunOptions(mode="local", run_id="r3", worktree_root=repo.parent / "wt")
    launch.create_run(repo, load_plan(_plan(repo.parent, OK)), options)


def test_clean_all_cleans_every_finished_run(git_repo: pathlib.Path) -> None:
    _three_runs(git_repo)
    result = swarm("clean", "--all", "--force", "--repo", str(git_repo), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [run["run_id"] for run in doc["runs"]] == ["r1", "r2"]
    assert [(s["run_id"], "swarm resume r3" in s["reason"]) for s in doc["skipped"]] == [
        ("r3", True)
    ]
    assert branches(git_repo) == {"main", "swarm/r3/integration"}
    assert lost(git_repo) == []
    result = swarm("clean", "--all", "--repo", str(git_repo))
    assert "r1: nothing to clean in run r1" in result.output
    assert "r3: skipped: it has not finished" in result.output


def test_clean_all_with_a_run_is_a_usage_error(git_repo: pathlib.Path) -> None:
    result = swarm("clean", "r1", "--all", "--repo", str(git_repo))
    assert result.exit_code == 2, result.output
    assert "give a RUN or --all, not both" in result.output


def test_swarm_runs_lists_every_run(git_repo: pathlib.Path) -> None:
    assert "no runs in" in swarm("runs", "--repo", str(git_repo)).output
    _three_runs(git_repo)
    lock = SwarmPaths.for_repo(git_repo).run("r3").lock
    with exclusive_lock(lock) as held:  # a live mayor, as far as anyone can tell
        assert held
        doc = json.loads(swarm("runs", "--repo", str(git_repo), "--json").output)
        text = swarm("runs", "--repo", str(git_repo)).output
    rows = {row["run_id"]: row for row in doc["runs"]}
    assert list(rows) == ["r1", "r2", "r3"]
    assert (rows["r1"]["status"], rows["r1"]["merged"], rows["r1"]["failed"]) == ("done", 1, 0)
    assert (rows["r2"]["status"], rows["r2"]["merged"], rows["r2"]["failed"]) == ("failed", 0, 1)
    assert rows["r3"]["status"] == "running" and rows["r3"]["mayor_alive"] is True
    assert rows["r1"]["mayor_alive"] is False
    assert (rows["r1"]["landed"], rows["r2"]["landed"]) == (False, None)
    assert not any(row["cleaned"] for row in rows.values())
    assert "r3   running   " in text and "alive" in text
    after = swarm("runs", "--repo", str(git_repo)).output
    assert "running (no mayor)" in after  # the lock is gone: the mayor is not alive
    assert swarm("land", "r1", "--repo", str(git_repo)).exit_code == 0
    assert swarm("clean", "r1", "--repo", str(git_repo)).exit_code == 0
    rows = {
        r["run_id"]: r
        for r in json.loads(swarm("runs", "--repo", str(git_repo), "--json").output)["runs"]
    }
    assert rows["r1"]["landed"] is True and rows["r1"]["cleaned"] is True


def test_swarm_runs_names_an_unreadable_run(git_repo: pathlib.Path) -> None:
    assert swarm_run(git_repo, _plan(git_repo.parent, OK), None).exit_code == 0
    run = SwarmPaths.for_repo(git_repo).run("r1")
    run.state.write_text("{not json")  # a broken cache: the events still tell
    assert "r1   done" in swarm("runs", "--repo", str(git_repo)).output
    with run.events.open("a") as fh:
        fh.write("{not an event}\n")
    result = swarm("runs", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert "r1   unreadable:" in result.output and "corrupt event line" in result.output


READING: t.Final = {
    "status": "run_id",
    "report": "run_id",
    "watch": "run_id",
    "logs": "run_id",
    "attach": "run_id",
    "land": "run_id",
    "stop": "run_id",
    "clean": "run_id",
    "resume": "run_id",
}


@pytest.mark.parametrize("name", sorted(READING))
def test_every_reading_command_takes_a_run_id(name: str) -> None:
    command = cli.commands[name]
    params = {p.name: p for p in command.params}
    assert READING[name] in params, f"swarm {name} takes no run id"
    assert isinstance(params[READING[name]], click.Argument | click.Option)


def test_status_and_report_read_the_run_they_are_given(git_repo: pathlib.Path) -> None:
    _three_runs(git_repo)
    for command in ("status", "report"):
        doc = json.loads(swarm(command, "r2", "--repo", str(git_repo), "--json").output)
        assert doc["run_id"] == "r2" and doc["status"] == "failed"
    latest = json.loads(swarm("status", "--repo", str(git_repo), "--json").output)
    assert latest["run_id"] == "r3"
