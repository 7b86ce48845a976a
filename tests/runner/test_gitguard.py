"""The arbiter's git reads at the floor: the in-process tree walk says exactly what ``git
diff-tree`` says, one long-lived ``cat-file`` survives bad names, and one ``status`` call gives
the head and the uncommitted paths."""

from __future__ import annotations

import pathlib

import pytest

from runner import gitguard, gitrun
from runner.errors import CommandError
from tests.conftest import git


def diff_tree(repo: pathlib.Path, old: str, new: str) -> list[gitguard.TreeChange]:
    out = git(repo, "diff-tree", "-r", "-z", "--no-renames", "--raw", old, new)
    items = out.split("\0")
    changes = []
    for meta, path in zip(items[0::2], items[1::2], strict=False):
        _old_mode, new_mode, _old_sha, new_sha, _status = meta.lstrip(":").split(" ")
        changes.append(gitguard.TreeChange(path, new_mode, new_sha))
    return changes


def commit_all(repo: pathlib.Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def test_tree_walk_matches_diff_tree_on_every_kind_of_change(git_repo: pathlib.Path) -> None:
    repo = git_repo
    (repo / "swap").mkdir()
    (repo / "swap" / "inner.txt").write_text("a folder that becomes a file\n")
    (repo / "plain").write_text("a file that becomes a folder\n")
    (repo / "deep" / "a" / "b").mkdir(parents=True)
    (repo / "deep" / "a" / "b" / "c.txt").write_text("1\n")
    (repo / "deep" / "a" / "same.txt").write_text("unchanged\n")
    (repo / "gone.txt").write_text("deleted later\n")
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    (repo / "a.txt").write_text("sorts before a/\n")
    base = commit_all(repo, "base")

    git(repo, "rm", "-rq", "swap")
    (repo / "swap").write_text("now a file\n")
    (repo / "plain").unlink()
    (repo / "plain").mkdir()
    (repo / "plain" / "x.txt").write_text("now a folder\n")
    (repo / "deep" / "a" / "b" / "c.txt").write_text("2\n")
    (repo / "gone.txt").unlink()
    (repo / "tool.sh").chmod(0o755)
    (repo / "a").mkdir()
    (repo / "a" / "z.txt").write_text("a folder named like a file's prefix\n")
    (repo / "link").symlink_to("../outside")
    (repo / "caf\u00e9 menu.txt").write_text("a name with a space and an accent\n")
    git(repo, "add", "-A")
    git(repo, "update-index", "--add", "--cacheinfo", f"160000,{base},vendor/sub")
    git(repo, "commit", "-q", "-m", "every kind of change")  # add -A would drop the gitlink
    new = git(repo, "rev-parse", "HEAD")

    with gitrun.ObjectReader(repo) as reader:
        ours = gitguard.tree_changes(reader, base, new)
        assert ours == diff_tree(repo, base, new)
        tree = git(repo, "rev-parse", f"{new}^{{tree}}")
        assert gitguard.tree_changes(reader, new, tree) == []  # a commit and its own tree
        assert gitguard.tree_changes(reader, new, base) == diff_tree(repo, new, base)
    modes = {change.path: change.mode for change in ours}
    assert modes["vendor/sub"] == "160000" and modes["link"] == "120000"
    assert modes["gone.txt"] == "000000" and modes["tool.sh"] == "100755"


def test_one_reader_survives_bad_and_missing_names(git_repo: pathlib.Path) -> None:
    head = git(git_repo, "rev-parse", "HEAD")
    with gitrun.ObjectReader(git_repo) as reader:
        for bad in ("0" * 40, "HEAD\nHEAD", "", "no such ref"):
            with pytest.raises(CommandError):
                reader.read(bad)
        kind, data = reader.read(head)
        assert kind == "commit" and data.startswith(b"tree ")
    assert reader._proc is None  # closed on leaving the block


def test_one_status_call_gives_the_head_and_every_uncommitted_path(
    git_repo: pathlib.Path,
) -> None:
    repo = git_repo
    (repo / ".gitignore").write_text("ignored*\n")
    commit_all(repo, "ignore")
    git(repo, "mv", "README.md", "RENAMED.md")
    (repo / "src" / "__init__.py").write_text("x = 1\n")
    (repo / "new dir" / "deep").mkdir(parents=True)
    (repo / "new dir" / "deep" / "f.txt").write_text("untracked\n")
    (repo / "ignored.log").write_text("ignored\n")
    status = gitguard.status(repo)
    assert status.head == git(repo, "rev-parse", "HEAD")
    assert status.dirty == ["RENAMED.md", "new dir/deep/f.txt", "src/__init__.py"]
    with_ignored = gitguard.status(repo, "--ignored=matching")
    assert ("!!", "ignored.log") in with_ignored.entries
    assert with_ignored.dirty == status.dirty


def test_a_worktree_head_is_read_through_the_reader_as_rev_parse_reads_it(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The arbiter's guard reads the integration worktree's HEAD without a process of its own:
    the same answer as ``git rev-parse HEAD`` there, however the worktree was moved or
    pointed elsewhere; None sends it back to git when the checkout is no worktree of this
    repository."""
    repo, wt, other = git_repo, tmp_path / "integration", tmp_path / "other"
    git(repo, "worktree", "add", "-q", "-b", "integration", str(wt))
    git(repo, "worktree", "add", "-q", "-b", "other", str(other))
    commit_all(other, "work elsewhere")
    ref = gitrun.worktree_ref(repo, wt)
    assert ref is not None and ref.startswith("worktrees/")
    assert gitrun.worktree_ref(wt, wt) == ref  # asked from inside a worktree: the same name

    reader = gitrun.ObjectReader(repo)  # one for the whole test, as the arbiter keeps one

    def both() -> tuple[str, str]:
        found = gitrun.worktree_ref(repo, wt)
        assert found is not None
        return reader.commit(found), git(wt, "rev-parse", "HEAD")

    ours, theirs = both()
    assert ours == theirs
    commit_all(wt, "a commit nobody recorded")  # the branch moved
    ours, theirs = both()
    assert ours == theirs
    git(repo, "pack-refs", "--all")  # the branch only in packed-refs, then loose again
    ours, theirs = both()
    assert ours == theirs
    commit_all(wt, "after packing")
    ours, theirs = both()
    assert ours == theirs
    git(wt, "checkout", "-q", "--detach", "HEAD~1")  # detached
    ours, theirs = both()
    assert ours == theirs
    # its .git pointed at another worktree's admin folder: git follows it, so does the name
    (wt / ".git").write_text((other / ".git").read_text())
    ours, theirs = both()
    assert ours == theirs == git(other, "rev-parse", "HEAD")
    # not a worktree of this repository: nothing to name
    elsewhere = tmp_path / "elsewhere"
    git(tmp_path, "init", "-q", str(elsewhere))
    (wt / ".git").write_text(f"gitdir: {elsewhere / '.git'}\n")
    assert gitrun.worktree_ref(repo, wt) is None
    loop = tmp_path / "loop"
    loop.symlink_to(loop)  # a worker's trap: resolving it loops
    (wt / ".git").write_text(f"gitdir: {loop}\n")
    assert gitrun.worktree_ref(repo, wt) is None
    (wt / ".git").write_bytes(b"gitdir: \xff\xfe\n")  # not text
    assert gitrun.worktree_ref(repo, wt) is None
    (wt / ".git").unlink()
    (wt / ".git").symlink_to(wt / ".git")  # the file itself a loop
    assert gitrun.worktree_ref(repo, wt) is None
    (wt / ".git").unlink()
    assert gitrun.worktree_ref(repo, wt) is None
    assert gitrun.worktree_ref(repo, tmp_path / "missing") is None
    with reader, pytest.raises(CommandError):
        reader.commit("worktrees/nosuch/HEAD")
