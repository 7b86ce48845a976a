"""runner.worktrees: creation is transactional, resume adopts, removal is idempotent."""

from __future__ import annotations

import pathlib
import subprocess
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
    wip = g.commit_all(path, "wip")
    assert wip is not None
    w.remove_worktree(git_repo, path)
    sha = unwritable_commit(git_repo, wip)
    git(git_repo, "update-ref", f"refs/heads/{BRANCH}", sha)
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


def unwritable_commit(repo: pathlib.Path, parent: str) -> str:
    """A commit whose tree holds ``.git/config``: git creates the branch and the worktree, then
    refuses to check it out (the failure a hook used to simulate; runner.git runs no hooks)."""

    def fed(stdin: str, *args: str) -> str:
        run = subprocess.run(
            ["git", *args], cwd=repo, input=stdin, capture_output=True, text=True, check=True
        )
        return run.stdout.strip()

    blob = fed("x\n", "hash-object", "-w", "--stdin")
    inner = fed(f"100644 blob {blob}\tconfig\n", "mktree")
    tree = fed(f"040000 tree {inner}\t.git\n", "mktree")
    return git(repo, "commit-tree", "-m", "unwritable", "-p", parent, tree)


class FailCase(t.NamedTuple):
    test_id: str
    base: str
    unwritable: bool  # base on a commit git cannot check out: fails after git made the branch


FAIL_CASES = [
    FailCase("bad-base", "no-such-ref", False),
    FailCase("checkout-fails-after-branch", "main", True),
]


@pytest.mark.parametrize("case", FAIL_CASES, ids=[c.test_id for c in FAIL_CASES])
def test_create_is_transactional(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, case: FailCase
) -> None:
    base = unwritable_commit(git_repo, "main") if case.unwritable else case.base
    before = (branches(git_repo), registered(git_repo))
    path = tmp_path / "new-root" / "r1" / "t1"
    with pytest.raises(CommandError):
        w.create_worktree(git_repo, path, BRANCH, base)
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
