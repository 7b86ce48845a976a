"""runner.git against real temporary repositories (conflicts are built for real)."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from runner import git as g
from runner.errors import CommandError
from tests.conftest import git


def commit_file(repo: pathlib.Path, path: str, content: str, message: str | None = None) -> str:
    target = repo / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message or f"edit {path}")
    return git(repo, "rev-parse", "HEAD")


def test_toplevel_from_subdir(git_repo: pathlib.Path) -> None:
    assert g.toplevel(git_repo / "src") == git_repo.resolve()


def test_toplevel_outside_repo(tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(g.NotARepository, match="not a git repository"):
        g.toplevel(outside)


def test_head_sha_and_resolve(git_repo: pathlib.Path) -> None:
    sha = git(git_repo, "rev-parse", "HEAD")
    assert g.head_sha(git_repo) == sha
    assert g.head_sha(git_repo, "main") == sha
    assert g.resolve(git_repo, "main") == sha
    assert g.resolve(git_repo, "no-such-branch") is None
    with pytest.raises(CommandError):
        g.head_sha(git_repo, "no-such-branch")


def test_current_branch_and_detached(git_repo: pathlib.Path) -> None:
    assert g.current_branch(git_repo) == "main"
    git(git_repo, "checkout", "-q", "--detach")
    assert g.current_branch(git_repo) is None


def test_branch_lifecycle(git_repo: pathlib.Path) -> None:
    assert not g.branch_exists(git_repo, "swarm/r1/t1")
    g.create_branch(git_repo, "swarm/r1/t1", "main")
    assert g.branch_exists(git_repo, "swarm/r1/t1")
    assert g.head_sha(git_repo, "swarm/r1/t1") == g.head_sha(git_repo)
    g.delete_branch(git_repo, "swarm/r1/t1")
    assert not g.branch_exists(git_repo, "swarm/r1/t1")


def test_delete_unmerged_branch_needs_force(git_repo: pathlib.Path) -> None:
    git(git_repo, "checkout", "-q", "-b", "side")
    commit_file(git_repo, "side.txt", "x\n")
    git(git_repo, "checkout", "-q", "main")
    with pytest.raises(CommandError):
        g.delete_branch(git_repo, "side")
    g.delete_branch(git_repo, "side", force=True)
    assert not g.branch_exists(git_repo, "side")


def test_is_ancestor_and_counts(git_repo: pathlib.Path) -> None:
    base = g.head_sha(git_repo)
    commit_file(git_repo, "a.txt", "a\n", "add a")
    commit_file(git_repo, "b.txt", "b\n", "add b")
    head = g.head_sha(git_repo)
    assert g.is_ancestor(git_repo, base, head)
    assert not g.is_ancestor(git_repo, head, base)
    assert g.rev_list_count(git_repo, base, head) == 2
    assert g.log_subjects(git_repo, base, head) == ["add a", "add b"]
    assert g.merge_base(git_repo, base, head) == base


def test_changed_files_uses_merge_base(git_repo: pathlib.Path) -> None:
    base = g.head_sha(git_repo)
    git(git_repo, "checkout", "-q", "-b", "feature")
    commit_file(git_repo, "src/feature.py", "x = 1\n")
    commit_file(git_repo, "docs/a b.md", "spaces\n")
    git(git_repo, "mv", "README.md", "README.rst")
    git(git_repo, "commit", "-q", "-m", "rename")
    git(git_repo, "checkout", "-q", "main")
    commit_file(git_repo, "main-only.txt", "m\n")  # on base: not a change of feature
    assert g.changed_files(git_repo, "main", "feature") == [
        "README.md",
        "README.rst",
        "docs/a b.md",
        "src/feature.py",
    ]
    assert g.changed_files(git_repo, base, base) == []


class CleanCase(t.NamedTuple):
    test_id: str
    change: t.Callable[[pathlib.Path], object]
    clean: bool


CLEAN_CASES = [
    CleanCase("untouched", lambda repo: None, True),
    CleanCase("untracked", lambda repo: (repo / "new.txt").write_text("n\n"), False),
    CleanCase("unstaged", lambda repo: (repo / "README.md").write_text("changed\n"), False),
    CleanCase(
        "staged",
        lambda repo: ((repo / "s.txt").write_text("s\n"), git(repo, "add", "s.txt")),
        False,
    ),
    CleanCase("excluded", lambda repo: _exclude_and_touch(repo, "*.log", "x.log"), True),
]


def _exclude_and_touch(repo: pathlib.Path, pattern: str, name: str) -> None:
    g.add_exclude(repo, pattern)
    (repo / name).write_text("")


@pytest.mark.parametrize("case", CLEAN_CASES, ids=[c.test_id for c in CLEAN_CASES])
def test_is_clean(git_repo: pathlib.Path, case: CleanCase) -> None:
    case.change(git_repo)
    assert g.is_clean(git_repo) is case.clean


def test_commit_all(git_repo: pathlib.Path) -> None:
    assert g.commit_all(git_repo, "nothing") is None
    (git_repo / "new.txt").write_text("n\n")
    (git_repo / "README.md").unlink()
    sha = g.commit_all(git_repo, "swarm(t1): add new")
    assert sha == g.head_sha(git_repo)
    assert g.is_clean(git_repo)
    assert git(git_repo, "log", "-1", "--format=%s") == "swarm(t1): add new"
    assert git(git_repo, "show", "--name-status", "--format=", "HEAD").splitlines() == [
        "D\tREADME.md",
        "A\tnew.txt",
    ]


def make_conflict(repo: pathlib.Path) -> None:
    """``left`` and ``right`` both change README.md and gone.txt differently; ok.txt is clean."""
    commit_file(repo, "gone.txt", "base\n")
    git(repo, "checkout", "-q", "-b", "left")
    commit_file(repo, "README.md", "left\n")
    git(repo, "rm", "-q", "gone.txt")
    git(repo, "commit", "-q", "-m", "left removes gone")
    git(repo, "checkout", "-q", "-b", "right", "main")
    commit_file(repo, "README.md", "right\n")
    commit_file(repo, "gone.txt", "right edit\n")
    commit_file(repo, "ok.txt", "fine\n")
    git(repo, "checkout", "-q", "main")


def test_merge_tree_conflicts(git_repo: pathlib.Path) -> None:
    make_conflict(git_repo)
    before = git(git_repo, "status", "--porcelain")
    assert g.merge_tree_conflicts(git_repo, "left", "right") == ["README.md", "gone.txt"]
    assert g.merge_tree_conflicts(git_repo, "main", "right") == []
    assert git(git_repo, "status", "--porcelain") == before


def test_merge_tree_conflicts_bad_ref(git_repo: pathlib.Path) -> None:
    with pytest.raises(CommandError):
        g.merge_tree_conflicts(git_repo, "main", "nope")


def test_merge_no_ff_clean(git_repo: pathlib.Path) -> None:
    git(git_repo, "checkout", "-q", "-b", "feature")
    feature = commit_file(git_repo, "f.txt", "f\n")
    git(git_repo, "checkout", "-q", "main")
    base = g.head_sha(git_repo)
    sha = g.merge_no_ff(git_repo, "feature", "merge feature")
    assert sha == g.head_sha(git_repo)
    parents = git(git_repo, "rev-list", "--parents", "-n1", "HEAD").split()[1:]
    assert parents == [base, feature]
    assert git(git_repo, "log", "-1", "--format=%s") == "merge feature"


def test_merge_no_ff_conflict_aborts(git_repo: pathlib.Path) -> None:
    make_conflict(git_repo)
    git(git_repo, "checkout", "-q", "left")
    head = g.head_sha(git_repo)
    with pytest.raises(g.MergeConflict) as info:
        g.merge_no_ff(git_repo, "right", "merge right")
    assert info.value.files == ("README.md", "gone.txt")
    assert "README.md" in str(info.value)
    assert g.head_sha(git_repo) == head
    assert g.is_clean(git_repo)
    assert g.resolve(git_repo, "MERGE_HEAD") is None


def test_merge_no_ff_other_failure(git_repo: pathlib.Path) -> None:
    with pytest.raises(CommandError):
        g.merge_no_ff(git_repo, "no-such-branch", "merge")
    assert g.is_clean(git_repo)


def test_reset_hard_and_clean(git_repo: pathlib.Path) -> None:
    base = g.head_sha(git_repo)
    commit_file(git_repo, "a.txt", "a\n")
    (git_repo / "untracked.txt").write_text("u\n")
    g.reset_hard(git_repo, base)
    assert g.head_sha(git_repo) == base
    assert not (git_repo / "a.txt").exists()
    g.clean_untracked(git_repo)
    assert g.is_clean(git_repo)


def test_update_ref_compare_and_swap(git_repo: pathlib.Path) -> None:
    base = g.head_sha(git_repo)
    new = commit_file(git_repo, "a.txt", "a\n")
    g.update_ref(git_repo, "refs/heads/integration", base)
    assert g.head_sha(git_repo, "integration") == base
    g.update_ref(git_repo, "refs/heads/integration", new, base)
    assert g.head_sha(git_repo, "integration") == new
    with pytest.raises(CommandError):
        g.update_ref(git_repo, "refs/heads/integration", base, base)  # stale old value
    assert g.head_sha(git_repo, "integration") == new


def test_add_exclude_idempotent_in_common_dir(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    wt = tmp_path / "wt"
    git(git_repo, "worktree", "add", "-q", "-b", "wt", str(wt))
    exclude = git_repo / ".git" / "info" / "exclude"
    exclude.write_text("# comment without newline")
    g.add_exclude(wt, ".agents/")
    g.add_exclude(git_repo, ".agents/")
    assert exclude.read_text() == "# comment without newline\n.agents/\n"
    (git_repo / ".agents" / "swarm").mkdir(parents=True)
    (git_repo / ".agents" / "swarm" / "x.json").write_text("{}")
    assert g.is_clean(git_repo)


def test_add_exclude_creates_info_dir(git_repo: pathlib.Path) -> None:
    info = git_repo / ".git" / "info"
    if info.exists():
        for child in info.iterdir():
            child.unlink()
        info.rmdir()
    g.add_exclude(git_repo, ".agents/")
    assert (info / "exclude").read_text() == ".agents/\n"


def test_worktree_list(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    wt = tmp_path / "worktrees" / "t1"
    g.worktree_add(git_repo, wt, "swarm/r/t1", "main")
    detached = tmp_path / "worktrees" / "det"
    git(git_repo, "worktree", "add", "-q", "--detach", str(detached))
    infos = g.worktree_list(git_repo)
    assert infos[0].path == git_repo.resolve()
    assert infos[0].branch == "main"
    by_path = {i.path: i for i in infos[1:]}
    assert set(by_path) == {wt.resolve(), detached.resolve()}
    assert by_path[wt.resolve()].branch == "swarm/r/t1"
    assert by_path[wt.resolve()].head == g.head_sha(git_repo)
    assert by_path[detached.resolve()].branch is None
    assert by_path[detached.resolve()].detached
    assert g.worktree_list(wt) == infos
    g.worktree_remove(git_repo, detached)
    assert len(g.worktree_list(git_repo)) == 2


class AddRefusedCase(t.NamedTuple):
    test_id: str
    base: str
    error: type[CommandError]


ADD_REFUSED = [
    AddRefusedCase("branch-exists", "main", g.BranchExists),
    AddRefusedCase("branch-exists-bad-base", "no-such-ref", g.BranchExists),
    AddRefusedCase("bad-base", "no-such-ref", CommandError),
]


@pytest.mark.parametrize("case", ADD_REFUSED, ids=[c.test_id for c in ADD_REFUSED])
def test_worktree_add_refused_changes_nothing(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, case: AddRefusedCase
) -> None:
    """An existing branch is told apart from other failures; either way git made nothing."""
    if case.error is g.BranchExists:
        g.create_branch(git_repo, "swarm/r/t1", "main")
    before = (git(git_repo, "show-ref"), g.worktree_list(git_repo))
    wt = tmp_path / "worktrees" / "t1"
    with pytest.raises(case.error) as info:
        g.worktree_add(git_repo, wt, "swarm/r/t1", case.base)
    assert isinstance(info.value, g.BranchExists) == (case.error is g.BranchExists)
    assert (git(git_repo, "show-ref"), g.worktree_list(git_repo)) == before
    assert not wt.exists()
