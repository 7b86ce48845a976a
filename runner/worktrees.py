"""Worker checkouts and the integration worktree: create (transactionally), adopt on resume,
remove. A worker's checkout is a ``git worktree`` of the repository (``--isolation worktree``) or
a ``git clone --shared`` of its own (``clone`` and ``sandbox``: docs/isolation.md).

Checkouts live outside the user's checkout (:func:`runner.paths.default_worktree_root`); the
user's own work tree is never touched. Every git call goes through :mod:`runner.git`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import typing as t

from protocol.plan import Isolation
from runner import git, gitrun
from runner.errors import CommandError, RunnerError

logger = logging.getLogger(__name__)

EXCLUDE_PATTERN = ".agents/"


class WorktreeError(RunnerError):
    """A worktree cannot be created, adopted or removed; the message says why and what to do."""


def ensure_excluded(repo: pathlib.Path) -> None:
    """Keep ``.agents/`` (the swarm home) out of ``git status`` and out of every merge."""
    git.add_exclude(repo, EXCLUDE_PATTERN)


def prune(repo: pathlib.Path) -> None:
    """Forget registrations of worktrees whose directory is gone."""
    git.worktree_prune(repo)


def find_worktree(repo: pathlib.Path, path: pathlib.Path) -> git.WorktreeInfo | None:
    """The registration of the worktree at ``path``, if any."""
    wanted = path.resolve()
    for info in git.worktree_list(repo):
        if info.path.resolve() == wanted:
            return info
    return None


def _checked_out_at(repo: pathlib.Path, branch: str) -> pathlib.Path | None:
    for info in git.worktree_list(repo):
        if info.branch == branch and not info.prunable:
            return info.path
    return None


def _missing_parents(path: pathlib.Path) -> list[pathlib.Path]:
    """Ancestors of ``path`` that do not exist yet, outermost first."""
    missing = [p for p in path.parents if not p.exists()]
    return list(reversed(missing))


def create_worktree(repo: pathlib.Path, path: pathlib.Path, branch: str, base: str) -> None:
    """Create a worktree at ``path`` on a new ``branch`` starting at ``base``.

    Resume-safe: a worktree already registered at ``path`` on ``branch`` is adopted as it is, and
    an existing ``branch`` with no worktree is checked out at ``path`` (its commits are kept).
    Transactional: if any step fails, no worktree registration, no new branch and no new
    directory are left behind, and the error is re-raised.

    One ``git worktree add -b`` in the usual case (a fresh path and branch); the worktree list
    and the branch are only looked at when git refuses (resume, a stale registration).
    """
    path = path.absolute()
    if not _occupied(path):
        dir_existed = path.exists()
        new_parents = _missing_parents(path)
        try:
            git.worktree_add(repo, path, branch, base)
        except git.BranchExists:
            pass  # nothing changed: resume cases, below
        except CommandError:
            # a stale registration of ``path`` (its directory gone) is pruned below
            stale = not path.exists() and find_worktree(repo, path) is not None
            _rollback(repo, path, branch, False, dir_existed, new_parents, only_at=base)
            if not stale:
                raise
        except BaseException:
            _rollback(repo, path, branch, False, dir_existed, new_parents, only_at=base)
            raise
        else:
            logger.info(
                "created worktree",
                extra={"worktree": str(path), "branch": branch, "base": base, "adopted": False},
            )
            return
    _create_looking_around(repo, path, branch, base)


def _occupied(path: pathlib.Path) -> bool:
    """Something is at ``path`` already (git only adds a worktree into nothing or an empty
    directory)."""
    return path.exists() and (not path.is_dir() or any(path.iterdir()))


def _create_looking_around(repo: pathlib.Path, path: pathlib.Path, branch: str, base: str) -> None:
    """:func:`create_worktree` when the plain ``worktree add -b`` was refused or could not work:
    adopt, check out an existing branch, prune a stale registration, or explain the refusal."""
    existing = find_worktree(repo, path)
    if existing is not None and not existing.prunable and path.exists():
        if existing.branch == branch:
            logger.debug("adopted worktree", extra={"worktree": str(path), "branch": branch})
            return
        raise WorktreeError(
            f"worktree {path} is on {existing.branch or 'a detached HEAD'}, not {branch}; "
            f"remove it (swarm clean) or choose another worktree root"
        )
    if existing is not None:
        prune(repo)  # registered but its directory is gone
    other = _checked_out_at(repo, branch)
    if other is not None:
        raise WorktreeError(
            f"branch {branch} is already checked out in {other}; remove that worktree first"
        )
    if _occupied(path):
        raise WorktreeError(
            f"cannot create worktree {path}: the path exists and is not a worktree of {repo}; "
            f"move it away or choose another worktree root"
        )

    branch_existed = git.branch_exists(repo, branch)
    dir_existed = path.exists()
    new_parents = _missing_parents(path)
    try:
        if branch_existed:
            git.worktree_add_existing(repo, path, branch)
        else:
            git.worktree_add(repo, path, branch, base)
    except BaseException:
        _rollback(repo, path, branch, branch_existed, dir_existed, new_parents)
        raise
    logger.info(
        "created worktree",
        extra={"worktree": str(path), "branch": branch, "base": base, "adopted": branch_existed},
    )


def _rollback(
    repo: pathlib.Path,
    path: pathlib.Path,
    branch: str | None,
    branch_existed: bool,
    dir_existed: bool,
    new_parents: list[pathlib.Path],
    *,
    only_at: str | None = None,
) -> None:
    """Undo a half-made worktree; never raises (the original error matters more).

    ``only_at``: the branch is deleted only if it still points at this commit, as a branch
    just made from it does (when it is not known for sure that the branch is new, a branch
    there holds no commit of its own either).
    """
    with contextlib.suppress(CommandError):
        if find_worktree(repo, path) is not None:
            git.worktree_remove(repo, path, force=True)
    if not dir_existed and path.exists():
        shutil.rmtree(path, ignore_errors=True)
    for parent in reversed(new_parents):
        with contextlib.suppress(OSError):
            parent.rmdir()  # only if empty
    with contextlib.suppress(CommandError):
        prune(repo)
    with contextlib.suppress(CommandError):
        tip = git.resolve(repo, f"refs/heads/{branch}") if branch is not None else None
        new = not branch_existed and tip is not None
        if new and branch and (only_at is None or tip == git.resolve(repo, only_at)):
            git.delete_branch(repo, branch, force=True)
    logger.warning("rolled back worktree", extra={"worktree": str(path), "branch": branch})


def stage_worktree(repo: pathlib.Path, path: pathlib.Path, commit: str) -> None:
    """A worktree at ``path`` detached at ``commit``, made before its task can start (no
    branch yet: the task's branch is made when it starts, :func:`take_staged`). Transactional:
    if it fails, nothing is left and the error is re-raised."""
    path = path.absolute()
    if _occupied(path):
        raise WorktreeError(f"cannot stage a worktree at {path}: the path exists")
    dir_existed = path.exists()
    new_parents = _missing_parents(path)
    try:
        git.worktree_add_detached(repo, path, commit)
    except BaseException:
        _rollback(repo, path, None, False, dir_existed, new_parents)
        raise
    logger.debug("staged worktree", extra={"worktree": str(path), "base": commit})


def take_staged(repo: pathlib.Path, path: pathlib.Path, branch: str, base: str) -> bool:
    """Start ``branch`` at ``base`` in the worktree :func:`stage_worktree` made at ``path``:
    one ``git checkout``, which rewrites only the files that differ from where it was staged
    (and any tracked file someone changed), and a ``git clean`` of whatever else is there, so
    the task starts from exactly ``base``, as in a worktree made afresh. False when there is
    no such worktree any more or git refuses (``branch`` exists: the staged worktree is
    removed); then :func:`create_worktree` makes or adopts the checkout."""
    path = path.absolute()
    if gitrun.worktree_ref(repo, path) is None:  # gone, or not a worktree of this repository
        return False
    try:
        git.checkout_new_branch(path, branch, base)
        git.clean_untracked(path, ignored=True)  # what anyone left there: not the task's
    except CommandError as exc:
        logger.warning(
            "could not start the branch in the staged worktree: %s",
            (exc.stderr.strip() or str(exc)).splitlines()[0],
            extra={"worktree": str(path), "branch": branch},
        )
        discard_staged(repo, path)
        return False
    logger.info(
        "took staged worktree", extra={"worktree": str(path), "branch": branch, "base": base}
    )
    return True


def discard_staged(repo: pathlib.Path, path: pathlib.Path) -> None:
    """Remove a staged worktree whose task never started on it (never raises). What is at
    ``path`` but no worktree of this repository is left alone."""
    if gitrun.worktree_ref(repo, path.absolute()) is None:
        return
    try:
        remove_worktree(repo, path, force=True)
    except (WorktreeError, CommandError, OSError) as exc:
        logger.warning("could not remove a staged worktree: %s", exc, extra={"worktree": str(path)})


def is_clone(path: pathlib.Path) -> bool:
    """A worker clone: a ``.git`` directory of its own (a worktree has a ``.git`` file)."""
    return (path / ".git").is_dir() and not (path / ".git").is_symlink()


def create_checkout(
    isolation: Isolation, repo: pathlib.Path, path: pathlib.Path, branch: str, base: str
) -> None:
    """A worker's checkout at ``path`` on ``branch``: a worktree, or a clone of its own."""
    if isolation == "worktree":
        create_worktree(repo, path, branch, base)
    else:
        create_clone(repo, path, branch, base)


def create_clone(repo: pathlib.Path, path: pathlib.Path, branch: str, base: str) -> None:
    """A ``git clone --shared`` of ``repo`` at ``path`` with ``branch`` checked out, an empty
    hooks folder, the repository's excludes and no remote.

    The branch starts where the repository's ``branch`` is (the work an earlier attempt
    offered), else at ``base``. Resume-safe: a clone already at ``path`` is adopted as it is
    (its commits are the worker's). Transactional, even under SIGKILL: the clone is made
    beside ``path`` and renamed into place; if a step fails, nothing is left and the error is
    re-raised."""
    path = path.absolute()
    if is_clone(path):
        current = git.current_branch(path)
        if current != branch:
            raise WorktreeError(
                f"clone {path} is on {current or 'a detached HEAD'}, not {branch}; "
                f"remove it (swarm clean) or choose another worktree root"
            )
        logger.debug("adopted clone", extra={"worktree": str(path), "branch": branch})
        return
    if _occupied(path):
        raise WorktreeError(
            f"cannot create clone {path}: the path exists and is not a clone; "
            f"move it away or choose another worktree root"
        )
    start = git.resolve(repo, f"refs/heads/{branch}") or base
    new_parents = _missing_parents(path)
    # made aside and renamed into place: a mayor killed halfway leaves no half-made clone at
    # ``path`` (only this folder, removed by the next try)
    aside = path.with_name(f".{path.name}.creating")
    try:
        shutil.rmtree(aside, ignore_errors=True)
        git.clone_shared(repo, aside)
        (aside / ".git" / "hooks").mkdir(mode=0o755)
        sync_excludes(repo, aside)
        git.checkout_branch_at(aside, branch, start)
        aside.rename(path)  # onto nothing, or onto an empty folder
    except BaseException:
        shutil.rmtree(aside, ignore_errors=True)
        for parent in reversed(new_parents):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only if empty
        raise
    logger.info("created clone", extra={"worktree": str(path), "branch": branch, "base": start})


def drop_planted_links(clone: pathlib.Path, paths: t.Iterable[str]) -> None:
    """Remove every link a worker left on the way to the files the mayor writes into its
    clone (the brief, an agent's rules file): the mayor would write wherever it points."""
    for relative in paths:
        path = clone
        for part in pathlib.PurePosixPath(relative).parts:
            path = path / part
            if path.is_symlink():
                path.unlink()
                logger.warning("removed a planted link", extra={"worktree": str(clone)})
                break


def sync_excludes(repo: pathlib.Path, clone: pathlib.Path) -> None:
    """Give ``clone`` the repository's ``info/exclude`` (the swarm home, the agents' files).

    The clone is the worker's: a symlink planted at ``.git/info`` or ``.git/info/exclude`` is
    never followed (the mayor would write wherever it points)."""
    source = git.common_dir(repo) / "info" / "exclude"
    text = source.read_text() if source.is_file() else ""
    info = clone / ".git" / "info"
    if info.is_symlink() or (info / "exclude").is_symlink():
        raise WorktreeError(f"{info} is a symlink in the worker's clone; refusing to write there")
    info.mkdir(parents=True, exist_ok=True)
    target = info / "exclude"
    try:
        if target.read_text() == text:
            return
    except OSError:
        pass
    tmp = info / f".exclude.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(target)  # replaces a name, never writes through a link


def ensure_integration_worktree(
    repo: pathlib.Path, path: pathlib.Path, branch: str, base: str
) -> None:
    """The integration worktree: created on first use, adopted on resume (branch kept)."""
    create_worktree(repo, path, branch, base)


def remove_worktree(
    repo: pathlib.Path,
    path: pathlib.Path,
    *,
    delete_branch: str | None = None,
    force: bool = False,
) -> None:
    """Remove the worktree at ``path`` (idempotent) and optionally ``delete_branch``.

    Without ``force`` a worktree with uncommitted changes is refused, and so is deleting a branch
    that is not merged into the main checkout's HEAD; with ``force`` both go.
    """
    path = path.absolute()
    info = find_worktree(repo, path)
    if info is not None and path.exists():
        try:
            git.worktree_remove(repo, path, force=force)
        except CommandError as exc:
            raise WorktreeError(
                f"cannot remove worktree {path}: {exc.stderr.strip() or exc}; "
                f"commit or discard its changes, or use --force"
            ) from exc
    elif info is None and path.exists() and force:
        shutil.rmtree(path)
    prune(repo)
    if delete_branch and git.branch_exists(repo, delete_branch):
        try:
            git.delete_branch(repo, delete_branch, force=force)
        except CommandError as exc:
            raise WorktreeError(
                f"cannot delete branch {delete_branch}: {exc.stderr.strip() or exc}; "
                f"merge it first or use --force"
            ) from exc
    logger.info("removed worktree", extra={"worktree": str(path), "branch": delete_branch})
