"""runner.land and ``swarm land``: fast-forward only, clean checkouts only, never a reset."""

from __future__ import annotations

import json
import pathlib
import shlex
import subprocess
import typing as t

import pytest
from click.testing import CliRunner

from protocol.state import RunState
from runner import git as g
from runner import gitguard, launch, worktrees
from runner.cli.land import command
from runner.land import land
from runner.paths import SwarmPaths
from runner.state import RunLog
from tests.conftest import git
from tests.runner.runs import swarm_run, task, write, write_plan

RUN = "r1"
INTEGRATION = f"swarm/{RUN}/integration"


def make_run(
    repo: pathlib.Path, root: pathlib.Path, *, status: str = "done", target: str | None = "main"
) -> RunLog:
    """A finished run by hand: integration worktree with one merged commit, a run log."""
    base = g.head_sha(repo)
    wt = root / RUN / "_integration"
    worktrees.create_worktree(repo, wt, INTEGRATION, base)
    (wt / "feature.txt").write_text("from the swarm\n")
    (wt / "README.md").write_text("# sample, improved by the swarm\n")
    head = g.commit_all(wt, "swarm(T01): feature")
    assert head is not None
    run = SwarmPaths.for_repo(repo).run(RUN)
    run.dir.mkdir(parents=True)
    log = RunLog(run.events, run.state)
    log.record(
        "run_created",
        run_id=RUN,
        tasks=["T01"],
        repo=str(repo),
        base_sha=base,
        target_branch=target,
        integration_branch=INTEGRATION,
        integration_worktree=str(wt),
        integration_head=base,
        worktree_root=str(root),
    )
    log.record("integration_advanced", head=head)
    log.record("run_finished", status=status, reason="test")
    return log


@pytest.fixture
def run_log(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> RunLog:
    worktrees.ensure_excluded(git_repo)
    return make_run(git_repo, tmp_path / "wt")


def test_lands_into_a_clean_checkout(git_repo: pathlib.Path, run_log: RunLog) -> None:
    state = run_log.state
    old = g.head_sha(git_repo)
    result = land(git_repo, state)
    assert result.landed, result.reason
    assert (result.target, result.old, result.new) == ("main", old, state.integration_head)
    assert g.head_sha(git_repo) == state.integration_head
    assert (git_repo / "feature.txt").read_text() == "from the swarm\n"  # work tree updated
    assert g.is_clean(git_repo)
    again = land(git_repo, state)  # idempotent
    assert again.landed and "already" in again.reason


def test_lands_a_branch_that_is_not_checked_out(git_repo: pathlib.Path, run_log: RunLog) -> None:
    git(git_repo, "switch", "-q", "-c", "elsewhere")
    (git_repo / "scratch.txt").write_text("the user's own work\n")  # does not matter here
    result = land(git_repo, run_log.state)
    assert result.landed, result.reason
    assert g.head_sha(git_repo, "refs/heads/main") == run_log.state.integration_head
    assert g.current_branch(git_repo) == "elsewhere"
    assert (git_repo / "scratch.txt").exists()


class RefusalCase(t.NamedTuple):
    test_id: str
    setup: t.Callable[[pathlib.Path, RunLog], RunState]
    reason: str
    command: str | None
    """A fragment of the printed command; None: no commands should be offered."""


def _dirty(repo: pathlib.Path, log: RunLog) -> RunState:
    (repo / "README.md").write_text("edited by the user\n")
    return log.state


def _untracked(repo: pathlib.Path, log: RunLog) -> RunState:
    (repo / "feature.txt").write_text("mine\n")  # where landing writes the swarm's file
    return log.state


def _untracked_folder(repo: pathlib.Path, log: RunLog) -> RunState:
    (repo / "feature.txt").mkdir()
    (repo / "feature.txt" / "mine").write_text("mine\n")
    return log.state


def _ignored(repo: pathlib.Path, log: RunLog) -> RunState:
    git(repo, "config", "core.excludesFile", str(repo / ".git" / "my-ignores"))
    (repo / ".git" / "my-ignores").write_text("feature.txt\n")
    (repo / "feature.txt").write_text("my ignored local settings\n")
    return log.state


def _diverged(repo: pathlib.Path, log: RunLog) -> RunState:
    (repo / "other.txt").write_text("user commit\n")
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "user commit")
    return log.state


def _diverged_not_checked_out(repo: pathlib.Path, log: RunLog) -> RunState:
    _diverged(repo, log)
    git(repo, "switch", "-q", "--detach")
    return log.state


def _failed(repo: pathlib.Path, log: RunLog) -> RunState:
    return log.state.model_copy(update={"status": "failed", "stop_reason": "1 task failed"})


def _moved(repo: pathlib.Path, log: RunLog) -> RunState:
    wt = pathlib.Path(log.state.integration_worktree)
    (wt / "late.txt").write_text("late\n")
    g.commit_all(wt, "a human commit after the run")
    return log.state


def _no_target(repo: pathlib.Path, log: RunLog) -> RunState:
    return log.state.model_copy(update={"target_branch": None})


REFUSALS = [
    RefusalCase("dirty-checkout", _dirty, "would overwrite", "merge --ff-only"),
    RefusalCase(
        "untracked-file", _untracked, "ignored files: feature.txt (only", "merge --ff-only"
    ),
    RefusalCase("untracked-folder", _untracked_folder, "feature.txt/mine", "merge --ff-only"),
    RefusalCase("ignored-file", _ignored, "ignored files: feature.txt (only", "merge --ff-only"),
    RefusalCase("not-a-fast-forward", _diverged, "not a fast-forward", "merge --no-ff"),
    RefusalCase("diverged-elsewhere", _diverged_not_checked_out, "not a fast-forward", "switch"),
    RefusalCase("run-failed", _failed, "is failed, not done: 1 task failed", None),
    RefusalCase("integration-moved", _moved, "changed after the run", "merge --ff-only"),
    RefusalCase("no-target", _no_target, "no target branch", "merge --ff-only"),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[c.test_id for c in REFUSALS])
def test_refusals_change_nothing(
    git_repo: pathlib.Path, run_log: RunLog, case: RefusalCase
) -> None:
    state = case.setup(git_repo, run_log)
    before = git(git_repo, "for-each-ref", "--format=%(refname) %(objectname)")
    status = git(git_repo, "status", "--porcelain")
    result = land(git_repo, state)
    assert not result.landed
    assert case.reason in result.reason
    if case.command is None:
        assert result.commands == ()
    else:
        assert any(case.command in cmd for cmd in result.commands), result.commands
    assert git(git_repo, "for-each-ref", "--format=%(refname) %(objectname)") == before
    assert git(git_repo, "status", "--porcelain") == status


def test_untouched_local_changes_do_not_block_landing(
    git_repo: pathlib.Path, run_log: RunLog
) -> None:
    """Refuse only what would really be overwritten: an untracked file and an edit to a file
    the fast-forward does not change stay as they are, and the run lands."""
    (git_repo / "notes.txt").write_text("mine\n")
    (git_repo / "src" / "__init__.py").write_text("# my local edit\n")
    result = land(git_repo, run_log.state)
    assert result.landed, result.reason
    assert g.head_sha(git_repo) == run_log.state.integration_head
    assert (git_repo / "notes.txt").read_text() == "mine\n"
    assert (git_repo / "src" / "__init__.py").read_text() == "# my local edit\n"


def test_refused_when_the_target_moved_during_the_run(
    git_repo: pathlib.Path, run_log: RunLog
) -> None:
    """A worker (or anyone but the user) moved main while the run went on."""
    state = run_log.state
    worker = pathlib.Path(state.integration_worktree)
    sneaky = git(worker, "commit-tree", "-m", "sneaky", "-p", state.base_sha, "HEAD^{tree}")
    git(worker, "update-ref", "refs/heads/main", sneaky)
    result = land(git_repo, state, target_head=state.base_sha)
    assert not result.landed
    assert "main moved during the run" in result.reason
    assert any("merge --ff-only" in cmd for cmd in result.commands)
    assert g.head_sha(git_repo, "refs/heads/main") == sneaky


def test_refused_when_hooks_or_config_changed_during_the_run(
    git_repo: pathlib.Path, run_log: RunLog, tmp_path: pathlib.Path
) -> None:
    state = run_log.state
    recorded = gitguard.repo_fingerprint(git_repo)
    marker = tmp_path / "hook-ran"
    worker = pathlib.Path(state.integration_worktree)
    hook = g.common_dir(worker) / "hooks" / "post-merge"
    hook.write_text(f"#!/bin/sh\ntouch '{marker}'\n")
    hook.chmod(0o755)
    git(worker, "config", "core.fsmonitor", str(hook))
    before = g.head_sha(git_repo)
    result = land(git_repo, state, fingerprint=recorded)
    assert not result.landed
    assert f"hook {hook} was added" in result.reason
    assert "the repository's config changed" in result.reason
    assert any("merge --ff-only" in cmd for cmd in result.commands)
    assert g.head_sha(git_repo) == before
    # landing by the library anyway (e.g. the user checked and accepted) runs no planted code
    assert land(git_repo, state).landed
    assert not marker.exists()


def _commit_swarm_home_file(worktree: pathlib.Path, content: str) -> str:
    key = worktree / ".agents" / "swarm" / "keys" / "mayor.key"
    key.parent.mkdir(parents=True, exist_ok=True)
    key.write_text(content)
    git(worktree, "add", "-f", str(key))
    git(worktree, "commit", "-q", "-m", "a ** task commits a key")
    return git(worktree, "rev-parse", "HEAD")


@pytest.mark.parametrize("checked_out", [True, False], ids=["checked-out", "not-checked-out"])
def test_landing_never_overwrites_the_live_swarm_home(
    git_repo: pathlib.Path, run_log: RunLog, checked_out: bool
) -> None:
    live = git_repo / ".agents" / "swarm" / "keys" / "mayor.key"
    live.parent.mkdir(parents=True, exist_ok=True)
    live.write_text("the live key\n")
    state = run_log.state
    head = _commit_swarm_home_file(pathlib.Path(state.integration_worktree), "planted\n")
    run_log.record("integration_advanced", head=head)
    if not checked_out:
        git(git_repo, "switch", "-q", "--detach")
    before = git(git_repo, "for-each-ref", "--format=%(refname) %(objectname)")
    result = land(git_repo, run_log.state)
    assert not result.landed
    assert ".agents/swarm/keys/mayor.key" in result.reason and "never landed" in result.reason
    assert live.read_text() == "the live key\n"
    assert git(git_repo, "for-each-ref", "--format=%(refname) %(objectname)") == before


def test_cli_land(git_repo: pathlib.Path, run_log: RunLog) -> None:
    runner = CliRunner()
    (git_repo / "README.md").write_text("dirty\n")
    result = runner.invoke(command, ["--repo", str(git_repo)])
    assert result.exit_code == 1, result.output
    assert "not landed" in result.output and "merge --ff-only" in result.output
    git(git_repo, "checkout", "--", "README.md")
    result = runner.invoke(command, [RUN, "--repo", str(git_repo), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "land" and doc["landed"] and doc["target"] == "main"
    assert doc["new"] == run_log.state.integration_head == g.head_sha(git_repo)
    # recorded in the run, as --land records it: its report and `swarm runs` say landed
    assert launch.read_state(git_repo, RUN).landed


def test_cli_land_unknown_run(git_repo: pathlib.Path, run_log: RunLog) -> None:
    result = CliRunner().invoke(command, ["nope", "--repo", str(git_repo)])
    assert result.exit_code == 2, result.output


def test_an_ordinary_run_leaves_the_fingerprint_unchanged(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """What the run itself does to the repository (worktrees, branches, excludes, merges)
    never reads as a hooks-or-config change at landing time."""
    before = gitguard.repo_fingerprint(git_repo)
    plan = write_plan(tmp_path, [task("A", ["a.txt"], [write("a.txt", "a\n")])])
    result = swarm_run(git_repo, plan, None)
    assert result.exit_code == 0, result.output
    assert gitguard.fingerprint_changes(before, gitguard.repo_fingerprint(git_repo)) == []


CLOBBERS = [
    c
    for c in REFUSALS
    if c.test_id in ("dirty-checkout", "untracked-file", "untracked-folder", "ignored-file")
]


@pytest.mark.parametrize("case", CLOBBERS, ids=[c.test_id for c in CLOBBERS])
def test_the_printed_commands_land_and_keep_the_users_files(
    git_repo: pathlib.Path, run_log: RunLog, case: RefusalCase
) -> None:
    """The advice works as printed: run each command, the branch lands, and what was in the
    way is kept in a stash (a plain `git stash` would leave untracked and ignored files)."""
    state = case.setup(git_repo, run_log)
    result = CliRunner().invoke(command, ["--repo", str(git_repo)])
    assert result.exit_code == 1, result.output
    printed = [line.strip() for line in result.output.splitlines() if line.startswith("  git ")]
    assert len(printed) == 2 and "stash push --all" in printed[0], result.output
    for line in printed:
        subprocess.run(shlex.split(line), check=True, capture_output=True)
    assert g.head_sha(git_repo) == state.integration_head
    assert (git_repo / "feature.txt").read_text() == "from the swarm\n"
    assert f"before landing {RUN}" in git(git_repo, "stash", "list")
    kept = git(git_repo, "stash", "show", "--include-untracked", "-p", "stash@{0}")
    assert any(mine in kept for mine in ("mine", "edited by the user", "my ignored")), kept


def test_an_untracked_plan_file_does_not_block_landing(
    git_repo: pathlib.Path, run_log: RunLog
) -> None:
    """The Quickstart: plan.yaml lies untracked in the repository; the merged branch does not
    touch it, so a fast-forward cannot overwrite it and `swarm land` lands."""
    (git_repo / "plan.yaml").write_text("name: mine\ntasks: []\n")
    result = CliRunner().invoke(command, ["--repo", str(git_repo)])
    assert result.exit_code == 0, result.output
    assert g.head_sha(git_repo) == run_log.state.integration_head
    assert (git_repo / "plan.yaml").read_text() == "name: mine\ntasks: []\n"
