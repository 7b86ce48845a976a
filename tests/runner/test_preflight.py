"""Refuse early, with the fix: ``swarm run`` checks what would only fail later before it creates
anything (exit 2, one line naming the fix, no run directory, no branch), and warns about the
uncommitted changes a run leaves out."""

from __future__ import annotations

import pathlib
import shutil
import typing as t

import pytest
from click.testing import CliRunner, Result

from agentmail.fs import exclusive_lock
from runner import launch
from runner.cli.main import cli
from runner.paths import SwarmPaths
from tests.conftest import git
from tests.runner.runs import task, write, write_plan


def _run(repo: pathlib.Path, plan: pathlib.Path, *args: str) -> Result:
    argv = ["run", str(plan), "--repo", str(repo), "--mode", "local"]
    argv += ["--worktree-root", str(repo.parent / "wt"), *args]
    return CliRunner().invoke(cli, argv)


def _plan(where: pathlib.Path, **extra: t.Any) -> pathlib.Path:
    return write_plan(where, [task("T1", ["a.txt"], [write("a.txt", "x\n")], **extra)])


def _nothing_created(repo: pathlib.Path) -> None:
    runs = SwarmPaths.for_repo(repo).runs
    assert not runs.exists() or not list(runs.iterdir())
    assert "swarm/" not in git(repo, "branch", "--list", "swarm/*")


@pytest.fixture
def bare_path(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """A PATH with git and sh only: no agent CLI is installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("git", "sh"):
        found = shutil.which(name)
        assert found is not None
        (bin_dir / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_an_agent_whose_program_is_missing_is_refused_before_the_run(
    git_repo: pathlib.Path, bare_path: pathlib.Path
) -> None:
    result = _run(git_repo, _plan(git_repo.parent), "--agent", "claude")
    assert result.exit_code == 2, result.output
    assert "--agent claude runs 'claude', which is not on PATH (tasks T1)" in result.output
    assert "install it" in result.output
    assert len(result.output.strip().splitlines()) == 1
    _nothing_created(git_repo)


def test_every_agent_the_plan_needs_is_checked(
    git_repo: pathlib.Path, bare_path: pathlib.Path
) -> None:
    # the default agent (scripted) is fine; a task of the plan wants aider (behind our wrapper)
    tasks = [
        task("T1", ["a.txt"], [write("a.txt", "x\n")]),
        task("T2", ["b.txt"], [], agent="aider"),
    ]
    result = _run(git_repo, write_plan(git_repo.parent, tasks))
    assert result.exit_code == 2, result.output
    assert "agent aider runs 'aider', which is not on PATH (tasks T2)" in result.output
    _nothing_created(git_repo)


def test_an_installed_agent_passes(git_repo: pathlib.Path, bare_path: pathlib.Path) -> None:
    # an absolute program that exists is found without PATH; the worker then really runs it
    result = _run(git_repo, _plan(git_repo.parent), "--agent-cmd", f"{shutil.which('sh')} -c true")
    assert "not on PATH" not in result.output


class TemplateCase(t.NamedTuple):
    test_id: str
    template: str
    expected: str


TEMPLATES: t.Final = (
    TemplateCase("typo", "my-agent {breif}", "unknown placeholder {breif}"),
    TemplateCase("typo", "my-agent {breif}", "did you mean {brief}?"),
    TemplateCase("worktree", "my-agent {worktre}", "did you mean {worktree}?"),
    TemplateCase("quotes", "my-agent 'unclosed {brief}", "check its quotes"),
    TemplateCase("empty", "  ", "empty --agent-cmd"),
)


@pytest.mark.parametrize("case", TEMPLATES, ids=[c.test_id for c in TEMPLATES])
def test_a_bad_agent_cmd_is_a_usage_error_before_the_run(
    case: TemplateCase, git_repo: pathlib.Path
) -> None:
    result = _run(git_repo, _plan(git_repo.parent), "--agent-cmd", case.template)
    assert result.exit_code == 2, result.output
    assert case.expected in result.output
    _nothing_created(git_repo)


def test_an_unknown_preset_is_refused_before_the_run(git_repo: pathlib.Path) -> None:
    result = _run(git_repo, _plan(git_repo.parent), "--agent", "claud")
    assert result.exit_code == 2, result.output
    assert "unknown agent preset 'claud'" in result.output
    _nothing_created(git_repo)


def test_a_second_run_of_a_live_plan_is_refused(git_repo: pathlib.Path) -> None:
    plan_file = _plan(git_repo.parent)
    plan, options = launch.configure(
        git_repo,
        launch.load_plan(plan_file),
        launch.RunOptions(mode="local", run_id="first", worktree_root=git_repo.parent / "wt"),
    )
    launch.create_run(git_repo, plan, options)
    # a live mayor is whoever holds the run's lock: this test, for a moment
    with exclusive_lock(SwarmPaths.for_repo(git_repo).run("first").lock) as held:
        assert held
        result = _run(git_repo, plan_file, "--run-id", "second")
        assert result.exit_code == 2, result.output
        assert "run first of the same plan is live" in result.output
        assert "--allow-concurrent" in result.output
        assert "swarm watch first" in result.output
        assert not SwarmPaths.for_repo(git_repo).run("second").dir.exists()
        # another plan is not refused, and neither is the same one when allowed
        (git_repo.parent / "o").mkdir()
        other = write_plan(git_repo.parent / "o", [task("T9", ["b.txt"], [])])
        assert "is live" not in _run(git_repo, other, "--run-id", "third").output
        allowed = _run(git_repo, plan_file, "--run-id", "fourth", "--allow-concurrent")
        assert "is live" not in allowed.output
        assert SwarmPaths.for_repo(git_repo).run("fourth").dir.exists()
    # once its mayor is gone, the plan may run again
    result = _run(git_repo, plan_file, "--run-id", "fifth")
    assert "is live" not in result.output


def test_a_dirty_checkout_warns_which_changes_are_left_out(git_repo: pathlib.Path) -> None:
    (git_repo / "README.md").write_text("changed, not committed\n")
    (git_repo / "notes.txt").write_text("untracked\n")
    plan_file = write_plan(git_repo, [task("T1", ["a.txt"], [write("a.txt", "x\n")])])
    result = _run(git_repo, plan_file)
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.output.splitlines() if "warning" in line]
    assert "2 uncommitted change(s)" in warning
    assert "README.md" in warning and "notes.txt" in warning
    assert "plan.yaml" not in warning  # the plan is read from disk: it is not left out
    assert "commit them first" in warning


def test_a_clean_checkout_does_not_warn(git_repo: pathlib.Path) -> None:
    result = _run(git_repo, _plan(git_repo.parent))
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
