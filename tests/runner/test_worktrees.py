"""runner.worktrees: creation is transactional, resume adopts, removal is idempotent."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from runner import git as g
from runner import worktrees as w
from runner.errors import CommandError
from tests.conftest import git

BRANCH = "swarm/r1/t1"


def branches(repo: pathlib.Path) -> list[str]:
    return git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines()


def registered(repo: pathlib.Path) -> list[pathlib.Path]:
    return [i.path for i in g.worktree_list(repo)]


def test_create_and_remove(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt-root" / "r1" / "t1"
    w.create_worktree(git_repo, path, BRANCH, "main")
    assert (path / "README.md").exists()
    assert g.current_branch(path) == BRANCH
    assert g.head_sha(path) == g.head_sha(git_repo, "main")
    assert g.is_clean(git_repo)  # the user's checkout is untouched

    w.remove_worktree(git_repo, path, delete_branch=BRANCH)
    assert not path.exists()
    assert registered(git_repo) == [git_repo.resolve()]
    assert branches(git_repo) == ["main"]
    w.remove_worktree(git_repo, path, delete_branch=BRANCH)  # idempotent


def test_create_adopts_existing_worktree(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    (path / "work.txt").write_text("in progress\n")
    g.commit_all(path, "wip")
    head = g.head_sha(path)
    w.create_worktree(git_repo, path, BRANCH, "main")  # resume: adopt, keep the commit
    assert g.head_sha(path) == head
    assert (path / "work.txt").exists()


def test_create_adopts_existing_branch(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    (path / "work.txt").write_text("kept\n")
    sha = g.commit_all(path, "wip")
    w.remove_worktree(git_repo, path)  # worktree gone, branch kept
    assert g.branch_exists(git_repo, BRANCH)
    w.create_worktree(git_repo, path, BRANCH, "main")
    assert g.head_sha(path) == sha


def test_create_after_directory_vanished(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    import shutil

    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    shutil.rmtree(path)  # e.g. a cleaned tmp dir: registration is stale
    w.create_worktree(git_repo, path, BRANCH, "main")
    assert g.current_branch(path) == BRANCH


def test_create_over_stale_registration_of_another_branch(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """git refuses a path still registered (directory gone) after making the new branch: the
    branch is undone, the registration pruned, and the worktree made."""
    import shutil

    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, "swarm/r0/t1", "main")
    shutil.rmtree(path)
    w.create_worktree(git_repo, path, BRANCH, "main")
    assert g.current_branch(path) == BRANCH
    assert registered(git_repo) == [git_repo.resolve(), path.resolve()]
    assert branches(git_repo) == ["main", "swarm/r0/t1", BRANCH]


def test_create_in_empty_directory(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt"
    path.mkdir()
    w.create_worktree(git_repo, path, BRANCH, "main")
    assert g.current_branch(path) == BRANCH
    w.remove_worktree(git_repo, path, delete_branch=BRANCH)
    path.mkdir()
    with pytest.raises(CommandError):
        w.create_worktree(git_repo, path, BRANCH, "no-such-ref")
    assert path.is_dir()  # it was there before: kept
    assert branches(git_repo) == ["main"]


def test_failed_create_keeps_an_existing_branch(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """A failure after git looked at an existing branch never deletes it (its commits stay)."""
    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    (path / "work.txt").write_text("kept\n")
    sha = g.commit_all(path, "wip")
    w.remove_worktree(git_repo, path)
    hook = git_repo / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(CommandError):
        w.create_worktree(git_repo, path, BRANCH, "main")
    assert g.resolve(git_repo, BRANCH) == sha
    assert not path.exists()
    assert registered(git_repo) == [git_repo.resolve()]


def test_wrong_branch_at_path_refused(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    with pytest.raises(w.WorktreeError, match="not swarm/r1/t2"):
        w.create_worktree(git_repo, path, "swarm/r1/t2", "main")


def test_branch_checked_out_elsewhere_refused(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    w.create_worktree(git_repo, tmp_path / "a", BRANCH, "main")
    with pytest.raises(w.WorktreeError, match="already checked out"):
        w.create_worktree(git_repo, tmp_path / "b", BRANCH, "main")
    assert not (tmp_path / "b").exists()


def test_foreign_directory_refused(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt"
    path.mkdir()
    (path / "mine.txt").write_text("user data\n")
    with pytest.raises(w.WorktreeError, match="not a worktree"):
        w.create_worktree(git_repo, path, BRANCH, "main")
    assert (path / "mine.txt").read_text() == "user data\n"
    assert not g.branch_exists(git_repo, BRANCH)


class FailCase(t.NamedTuple):
    test_id: str
    base: str
    hook: str | None  # a post-checkout hook body: fails after git made branch + worktree


FAIL_CASES = [
    FailCase("bad-base", "no-such-ref", None),
    FailCase("hook-fails-after-checkout", "main", "#!/bin/sh\nexit 1\n"),
]


@pytest.mark.parametrize("case", FAIL_CASES, ids=[c.test_id for c in FAIL_CASES])
def test_create_is_transactional(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, case: FailCase
) -> None:
    if case.hook:
        hook = git_repo / ".git" / "hooks" / "post-checkout"
        hook.write_text(case.hook)
        hook.chmod(0o755)
    before = (branches(git_repo), registered(git_repo))
    path = tmp_path / "new-root" / "r1" / "t1"
    with pytest.raises(CommandError):
        w.create_worktree(git_repo, path, BRANCH, case.base)
    assert (branches(git_repo), registered(git_repo)) == before
    assert not (tmp_path / "new-root").exists()
    assert not (git_repo / ".git" / "worktrees" / "t1").exists()


def test_remove_dirty_needs_force(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    (path / "dirty.txt").write_text("uncommitted\n")
    with pytest.raises(w.WorktreeError, match="--force"):
        w.remove_worktree(git_repo, path)
    assert (path / "dirty.txt").exists()
    w.remove_worktree(git_repo, path, delete_branch=BRANCH, force=True)
    assert not path.exists()
    assert not g.branch_exists(git_repo, BRANCH)


def test_remove_keeps_unmerged_branch_without_force(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    (path / "x.txt").write_text("x\n")
    g.commit_all(path, "work")
    with pytest.raises(w.WorktreeError, match="cannot delete branch"):
        w.remove_worktree(git_repo, path, delete_branch=BRANCH)
    assert not path.exists()
    assert g.branch_exists(git_repo, BRANCH)


def test_integration_worktree_resume(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "integration"
    branch = "swarm/r1/integration"
    w.ensure_integration_worktree(git_repo, path, branch, "main")
    (path / "merged.txt").write_text("m\n")
    sha = g.commit_all(path, "merge t1")
    w.ensure_integration_worktree(git_repo, path, branch, "main")
    assert g.head_sha(path) == sha
    assert g.head_sha(git_repo, "main") != sha


def test_ensure_excluded(git_repo: pathlib.Path) -> None:
    w.ensure_excluded(git_repo)
    w.ensure_excluded(git_repo)
    lines = (git_repo / ".git" / "info" / "exclude").read_text().splitlines()
    assert lines.count(".agents/") == 1
    (git_repo / ".agents" / "swarm" / "mail").mkdir(parents=True)
    (git_repo / ".agents" / "swarm" / "mail" / "m.json").write_text("{}")
    assert g.is_clean(git_repo)


def test_prune(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    import shutil

    path = tmp_path / "wt"
    w.create_worktree(git_repo, path, BRANCH, "main")
    shutil.rmtree(path)
    w.prune(git_repo)
    assert registered(git_repo) == [git_repo.resolve()]
