"""Every git call the runner makes: one small function per question (pre-commit's ``git.py``).

All functions take the repository (a work tree or a worktree path) first and run git through
:func:`runner.proc.run`, which strips inherited ``GIT_*`` variables (workers run inside worktrees
and hooks, where ``GIT_DIR``/``GIT_INDEX_FILE`` would redirect us).

Worktrees share one ``.git``, so a worker can write hooks and config that the mayor's git
would obey. No call here runs code a worker planted: every call goes through
:func:`runner.gitrun._git` (hooks, fsmonitor, signing programs off; filter and merge drivers
neutralised on content calls). :mod:`runner.gitguard` asks the questions that guard the
repository (what a merge would land, reachability, the hooks-and-config fingerprint).
"""

from __future__ import annotations

import logging
import pathlib
import re
import time
import typing as t

from runner.errors import CommandError, RunnerError, UsageError
from runner.gitrun import _git, _out

logger = logging.getLogger(__name__)


class MergeConflict(RunnerError):
    """A merge stopped on conflicts; ``files`` are the conflicting paths (sorted)."""

    def __init__(self, branch: str, files: t.Sequence[str]) -> None:
        self.branch = branch
        self.files = tuple(files)
        super().__init__(
            f"merging {branch} conflicts in {len(self.files)} file(s): {', '.join(self.files)}"
        )


class BranchExists(CommandError):
    """``git worktree add -b`` refused because the branch exists already; git changed nothing."""


class NotARepository(UsageError):
    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        super().__init__(
            f"not a git repository: {path}; run inside a repository or pass --repo DIR"
        )


class WorktreeInfo(t.NamedTuple):
    """One entry of ``git worktree list --porcelain``."""

    path: pathlib.Path
    head: str | None
    branch: str | None
    """Short branch name (``refs/heads/`` stripped); None when detached or bare."""
    bare: bool = False
    detached: bool = False
    locked: bool = False
    prunable: bool = False


def toplevel(path: pathlib.Path) -> pathlib.Path:
    """The root of the work tree (or worktree) containing ``path``."""
    if not path.is_dir():
        raise NotARepository(path)
    result = _git(path, "rev-parse", "--show-toplevel", check=False)
    if result.returncode != 0 or not result.stdout.strip():
        raise NotARepository(path)
    return pathlib.Path(result.stdout.strip())


def common_dir(repo: pathlib.Path) -> pathlib.Path:
    """The shared ``.git`` directory (the same for the main checkout and all its worktrees)."""
    out = _out(repo, "rev-parse", "--git-common-dir")
    path = pathlib.Path(out)
    return (path if path.is_absolute() else repo / path).resolve()


def git_dir(repo: pathlib.Path) -> pathlib.Path:
    """The private git directory of a work tree (``.git/worktrees/<name>`` for a worktree)."""
    out = _out(repo, "rev-parse", "--git-dir")
    path = pathlib.Path(out)
    return (path if path.is_absolute() else repo / path).resolve()


def drop_stale_index_lock(repo: pathlib.Path, *, grace: float = 5.0) -> None:
    """Remove the ``index.lock`` a killed git left in a work tree. Only for work trees nobody
    else uses (the mayor calls it on the integration worktree while holding the run's lock).

    A git started by a mayor that was then SIGKILLed goes on running and finishes its
    operation; its lock is waited for (polling, up to ``grace`` seconds) before it is taken for
    stale."""
    lock = git_dir(repo) / "index.lock"
    deadline = time.monotonic() + grace
    while lock.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    lock.unlink(missing_ok=True)


def head_sha(repo: pathlib.Path, ref: str = "HEAD") -> str:
    """The full commit sha ``ref`` points at (raises :class:`CommandError` if unknown)."""
    return _out(repo, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")


def resolve(repo: pathlib.Path, ref: str) -> str | None:
    """The commit sha of ``ref``, or None when it does not name a commit."""
    args = ("rev-parse", "--verify", "-q", "--end-of-options", f"{ref}^{{commit}}")
    result = _git(repo, *args, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def current_branch(repo: pathlib.Path) -> str | None:
    """The checked-out branch's short name; None when HEAD is detached."""
    result = _git(repo, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def branch_exists(repo: pathlib.Path, branch: str) -> bool:
    result = _git(repo, "show-ref", "--verify", "-q", f"refs/heads/{branch}", check=False)
    return result.returncode == 0


def create_branch(repo: pathlib.Path, branch: str, start: str) -> None:
    """Create ``branch`` at ``start``; fails if it exists."""
    _git(repo, "branch", "--no-track", branch, start)
    logger.debug("created branch", extra={"branch": branch, "start": start})


def delete_branch(repo: pathlib.Path, branch: str, *, force: bool = False) -> None:
    """Delete ``branch``; without ``force`` git refuses when it is not merged into HEAD."""
    _git(repo, "branch", "-D" if force else "-d", branch)
    logger.debug("deleted branch", extra={"branch": branch})


def is_ancestor(repo: pathlib.Path, ancestor: str, descendant: str) -> bool:
    result = _git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        raise CommandError(
            ("git", "merge-base", "--is-ancestor", ancestor, descendant),
            result.returncode,
            result.stdout,
            result.stderr,
        )
    return result.returncode == 0


def merge_base(repo: pathlib.Path, a: str, b: str) -> str | None:
    result = _git(repo, "merge-base", a, b, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def changed_files(repo: pathlib.Path, base: str, head: str) -> list[str]:
    """Paths changed on ``head`` since its merge-base with ``base`` (``base...head``), sorted.

    Renames count as a delete plus an add (both paths are listed): scope checks need both.
    """
    args = ("diff", "--name-only", "--no-renames", "-z", f"{base}...{head}", "--")
    out = _git(repo, *args, content=True).stdout
    return sorted({p for p in out.split("\0") if p})


def is_clean(repo: pathlib.Path) -> bool:
    """No staged, unstaged or untracked (non-ignored) changes."""
    status = ("status", "--porcelain", "--untracked-files=all")
    return not _git(repo, *status, content=True).stdout.strip()


def commit_all(repo: pathlib.Path, message: str, *, verify: bool = True) -> str | None:
    """``git add -A`` and commit; the new commit's sha, or None if there was nothing to commit."""
    _git(repo, "add", "-A", content=True)
    if _git(repo, "diff", "--cached", "--quiet", check=False, content=True).returncode == 0:
        return None
    args = ["commit", "-q", "-m", message]
    if not verify:
        args.append("--no-verify")
    _git(repo, *args, content=True)
    sha = head_sha(repo)
    logger.debug("committed", extra={"sha": sha, "worktree": str(repo)})
    return sha


def merge_tree_conflicts(repo: pathlib.Path, ours: str, theirs: str) -> list[str]:
    """Conflicting paths of merging ``theirs`` into ``ours``, without touching any work tree
    (``git merge-tree --write-tree``, git >= 2.38); ``[]`` when the merge would be clean."""
    args = ("merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs)
    result = _git(repo, *args, check=False, content=True)
    if result.returncode == 0:
        return []
    items = result.stdout.split("\0")
    if result.returncode != 1 or not re.fullmatch(r"[0-9a-f]{40,64}", items[0]):
        raise CommandError(
            ("git", *args),
            result.returncode,
            result.stdout,
            result.stderr,
        )
    # first item: the tree oid; then the conflicted paths; an empty item ends the section
    paths: list[str] = []
    for item in items[1:]:
        if not item:
            break
        paths.append(item)
    return sorted(set(paths))


def unmerged_files(repo: pathlib.Path) -> list[str]:
    out = _git(repo, "diff", "--name-only", "--diff-filter=U", "-z", content=True).stdout
    return sorted({p for p in out.split("\0") if p})


def merge_no_ff(repo: pathlib.Path, branch: str, message: str, *, verify: bool = False) -> str:
    """Merge ``branch`` into the branch checked out in ``repo`` with a merge commit; return its
    sha. On conflict the merge is aborted (the work tree is left as it was) and
    :class:`MergeConflict` is raised with the conflicting files."""
    args = ["merge", "--no-ff", "--no-edit", "-m", message]
    if not verify:
        args.append("--no-verify")
    result = _git(repo, *args, "--", branch, check=False, content=True)
    if result.returncode == 0:
        sha = head_sha(repo)
        logger.debug("merged", extra={"branch": branch, "sha": sha})
        return sha
    conflicts = unmerged_files(repo)
    in_merge = _git(repo, "rev-parse", "-q", "--verify", "MERGE_HEAD", check=False).returncode == 0
    if in_merge:
        _git(repo, "merge", "--abort", content=True)
    if conflicts:
        logger.debug("merge conflicted", extra={"branch": branch, "files": conflicts})
        raise MergeConflict(branch, conflicts)
    raise CommandError(
        ("git", *args, "--", branch), result.returncode, result.stdout, result.stderr
    )


def merge_squash(repo: pathlib.Path, branch: str, message: str) -> str:
    """Squash ``branch`` into one commit on the branch checked out in ``repo``; return its sha.
    On conflict the work tree is reset to where it was and :class:`MergeConflict` is raised."""
    before = head_sha(repo)
    result = _git(repo, "merge", "--squash", "--", branch, check=False, content=True)
    if result.returncode != 0:
        conflicts = unmerged_files(repo)
        reset_hard(repo, before)
        if conflicts:
            raise MergeConflict(branch, conflicts)
        raise CommandError(
            ("git", "merge", "--squash", branch), result.returncode, result.stdout, result.stderr
        )
    _git(repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", message, content=True)
    return head_sha(repo)


def squash_onto(repo: pathlib.Path, base: str, tip: str, message: str) -> str:
    """Replace the commits ``base..tip`` checked out in ``repo`` by one commit on ``base`` with
    ``tip``'s tree; return its sha. Idempotent after a crash at any point: HEAD and the index
    are put back to (base, tip's tree) first."""
    _git(repo, "reset", "-q", "--soft", base)
    _git(repo, "read-tree", tip)
    _git(repo, "commit", "-q", "--no-verify", "--allow-empty", "-m", message, content=True)
    return head_sha(repo)


def commit_tree(repo: pathlib.Path, tree: str, parents: t.Sequence[str], message: str) -> str:
    """A commit of ``tree`` on ``parents`` (``git commit-tree``); no work tree is touched."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return _out(repo, *args, "-m", message)


def reset_hard(repo: pathlib.Path, sha: str) -> None:
    _git(repo, "reset", "-q", "--hard", sha, content=True)


def clean_untracked(repo: pathlib.Path, *, ignored: bool = False) -> None:
    """Remove untracked files and directories (with ``ignored``, ignored ones and nested
    repositories too)."""
    _git(repo, "clean", "-q", "-f", "-d", *(("-f", "-x") if ignored else ()))


def update_ref(repo: pathlib.Path, ref: str, new: str, old: str | None = None) -> None:
    """Point ``ref`` at ``new``; with ``old``, only if it still points there (compare-and-swap)."""
    args = ["update-ref", ref, new]
    if old is not None:
        args.append(old)
    _git(repo, *args)


def add_exclude(repo: pathlib.Path, pattern: str) -> None:
    """Add ``pattern`` as a line of ``info/exclude`` in the common git dir, once."""
    exclude = common_dir(repo) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    text = exclude.read_text() if exclude.exists() else ""
    if pattern in text.splitlines():
        return
    with exclude.open("a") as fh:
        if text and not text.endswith("\n"):
            fh.write("\n")
        fh.write(pattern + "\n")
    logger.debug("added exclude", extra={"pattern": pattern, "path": str(exclude)})


def worktree_list(repo: pathlib.Path) -> list[WorktreeInfo]:
    """``git worktree list --porcelain -z``, parsed; the main work tree first."""
    out = _git(repo, "worktree", "list", "--porcelain", "-z").stdout
    infos: list[WorktreeInfo] = []
    record: dict[str, str] = {}

    def flush() -> None:
        if "worktree" not in record:
            return
        branch = record.get("branch")
        infos.append(
            WorktreeInfo(
                path=pathlib.Path(record["worktree"]),
                head=record.get("HEAD"),
                branch=branch.removeprefix("refs/heads/") if branch else None,
                bare="bare" in record,
                detached="detached" in record,
                locked="locked" in record,
                prunable="prunable" in record,
            )
        )

    for item in out.split("\0"):
        if not item:
            flush()
            record = {}
            continue
        key, _, value = item.partition(" ")
        record[key] = value
    flush()
    return infos


def worktree_add(repo: pathlib.Path, path: pathlib.Path, branch: str, base: str) -> None:
    """``git worktree add -b <branch> <path> <base>`` (new branch).

    Raises :class:`BranchExists` when ``branch`` exists (git refuses before touching anything),
    :class:`CommandError` for any other failure: git then may have created the branch already
    (it does that first), and a worktree too if only a hook failed.
    """
    args = ("worktree", "add", "-q", "--no-track", "-b", branch, str(path), base)
    # LC_ALL=C: the refusal is recognised by its message (git's own `git branch` child exits
    # 128, which worktree add turns into 255 before it has touched anything)
    result = _git(repo, *args, env={"LC_ALL": "C"}, check=False, content=True)
    if result.returncode == 0:
        return
    exists = f"a branch named '{branch}' already exists" in result.stderr
    if exists or (result.returncode == 255 and branch_exists(repo, branch)):
        raise BranchExists(("git", *args), result.returncode, result.stdout, result.stderr)
    raise CommandError(("git", *args), result.returncode, result.stdout, result.stderr)


def worktree_add_detached(repo: pathlib.Path, path: pathlib.Path, commit: str) -> None:
    """``git worktree add --detach <path> <commit>`` (no branch)."""
    _git(repo, "worktree", "add", "-q", "--detach", str(path), commit, content=True)


def checkout_new_branch(worktree: pathlib.Path, branch: str, start: str) -> None:
    """``git checkout -f -b <branch> <start>``: a new branch at ``start``, checked out over
    whatever the work tree holds (tracked files only; git refuses an existing ``branch``)."""
    _git(worktree, "checkout", "-q", "-f", "--no-track", "-b", branch, start, "--", content=True)


def worktree_add_existing(repo: pathlib.Path, path: pathlib.Path, branch: str) -> None:
    """``git worktree add <path> <branch>`` (check out an existing branch)."""
    _git(repo, "worktree", "add", "-q", str(path), branch, content=True)


def worktree_remove(repo: pathlib.Path, path: pathlib.Path, *, force: bool = False) -> None:
    args = ["worktree", "remove"]
    if force:
        args += ["--force", "--force"]  # twice: also removes a locked worktree
    _git(repo, *args, str(path), content=True)


def worktree_prune(repo: pathlib.Path) -> None:
    _git(repo, "worktree", "prune")


def clone_shared(repo: pathlib.Path, path: pathlib.Path) -> None:
    """``git clone --shared --no-checkout`` of ``repo`` at ``path``: its objects are borrowed
    (``objects/info/alternates``), its refs, index, hooks and config are its own. No template
    (so no hooks, no sample files), no tags, no remote left behind: nothing in the clone can
    push into ``repo`` by name."""
    args = ("clone", "-q", "--shared", "--no-checkout", "--no-tags", "--template=")
    _git(repo, *args, "--", str(repo), str(path))
    _git(path, "remote", "remove", "origin")


def checkout_branch_at(repo: pathlib.Path, branch: str, start: str) -> None:
    """Check out ``branch`` (created or reset) at ``start`` and delete every other branch."""
    _git(repo, "checkout", "-q", "-B", branch, start, "--", content=True)
    out = _out(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
    for other in out.splitlines():
        if other and other != branch:
            _git(repo, "branch", "-D", other)


def fetch(repo: pathlib.Path, source: pathlib.Path, *refspecs: str) -> None:
    """Fetch ``src:dst`` refspecs of the repository at ``source`` into ``repo``, forced (a
    worker may rewrite its own branch); no tags, no submodules, no FETCH_HEAD."""
    args = ("fetch", "-q", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head")
    _git(repo, *args, "--", str(source), *(f"+{spec}" for spec in refspecs))


def fetch_url(
    repo: pathlib.Path, url: str, *refspecs: str, env: t.Mapping[str, str] | None = None
) -> None:
    """:func:`fetch` from a URL (``ssh://host/path``, with ``GIT_SSH_COMMAND`` in ``env``)."""
    args = ("fetch", "-q", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head")
    _git(repo, *args, "--", url, *(f"+{spec}" for spec in refspecs), env=env)


def push_url(
    repo: pathlib.Path, url: str, *refspecs: str, env: t.Mapping[str, str] | None = None
) -> None:
    """Push ``src:dst`` refspecs of ``repo`` to a URL, forced, running no hook."""
    args = ("push", "-q", "--no-verify", "--no-recurse-submodules")
    _git(repo, *args, "--", url, *(f"+{spec}" for spec in refspecs), env=env)


def checkout_detached(repo: pathlib.Path, sha: str) -> None:
    _git(repo, "checkout", "-q", "--detach", sha, "--", content=True)


def delete_ref(repo: pathlib.Path, ref: str) -> None:
    _git(repo, "update-ref", "-d", ref)


def rev_list_count(repo: pathlib.Path, base: str, head: str) -> int:
    """Number of commits in ``base..head``."""
    return int(_out(repo, "rev-list", "--count", f"{base}..{head}"))


def log_subjects(repo: pathlib.Path, base: str, head: str) -> list[str]:
    """Subjects of the commits in ``base..head``, oldest first."""
    out = _git(repo, "log", "--reverse", "--format=%s", "-z", f"{base}..{head}", "--").stdout
    return [s for s in out.split("\0") if s]


def merge_ff_only(repo: pathlib.Path, commit: str) -> None:
    """Fast-forward the branch checked out in ``repo`` to ``commit`` (``merge --ff-only``);
    git refuses (CommandError) when that is not a fast-forward or would overwrite local files."""
    _git(repo, "merge", "--ff-only", "-q", commit, content=True)
    logger.debug("fast-forwarded", extra={"worktree": str(repo), "sha": commit})


def diff_shortstat(repo: pathlib.Path, base: str, head: str) -> str:
    """``git diff --shortstat base...head`` (what ``head`` changed since its merge-base with
    ``base``): ``2 files changed, 10 insertions(+), 1 deletion(-)``, or "" when nothing."""
    return _out(repo, "diff", "--shortstat", "--no-renames", f"{base}...{head}", "--").strip()
