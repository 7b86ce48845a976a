"""Taking a cloned worker's commits into the repository (``--isolation clone|sandbox``).

A cloned worker commits in its own ``git clone --shared`` (:func:`runner.worktrees.create_clone`):
its new commits are in the clone's object store, not the repository's, and nothing in the clone
can write the repository. The mayor takes the work itself, by fetch:

- :func:`take_offers`, right before the arbiter integrates: each offered commit is fetched into
  the repository's task branch once the clone's branch *and* HEAD are checked to be the offered
  sha, and the fetched commit is checked again; otherwise (or when the clone is gone) the offer
  is refused with a typed refusal, ``merge_refused`` of kind ``fetch``, recorded first.
- :func:`save_clone`, before ``swarm clean`` removes a clone: every branch head, the HEAD and
  every commit the clone's reflogs name are fetched into the repository, so the cleaner can
  archive what is not merged (no commit in a clone is ever lost).

Git runs hardened (:mod:`runner.gitrun`) in the clone too: hooks, fsmonitor and drivers a worker
planted in its clone's config never run.
"""

from __future__ import annotations

import logging
import os
import pathlib
import stat
import typing as t

from protocol.state import TaskRecord
from runner import git, gitguard, worktrees
from runner.errors import CommandError
from runner.state import RunLog

logger = logging.getLogger(__name__)

INCOMING: t.Final = "refs/swarm/incoming"
"""Where fetched clone refs land in the repository until they are checked (then deleted)."""
KEEP: t.Final = "refs/swarm-keep"
"""Refs made in a clone for the commits only its reflogs name, so they can be fetched."""
REFLOG_MAX: t.Final = 8 << 20
"""Largest reflog file of a clone that is read (a worker's file: bounded)."""


def take_offers(repo: pathlib.Path, log: RunLog) -> None:
    """Fetch every offered commit of a cloned worker into the repository, or refuse the offer
    (recorded as ``merge_refused`` kind ``fetch`` before anything else happens to it)."""
    state = log.state
    if state.isolation == "worktree":
        return  # a worktree's commits are in the repository already
    for record in list(state.tasks.values()):
        if record.state != "offered":
            continue
        why = take_offer(repo, state.run_id, record)
        if why is not None:
            log.record("merge_refused", record.id, kind="fetch", files=[], reason=why)


def take_offer(repo: pathlib.Path, run_id: str, record: TaskRecord) -> str | None:
    """Fetch ``record``'s offered commit from its clone into ``refs/heads/<branch>`` of
    ``repo``; None when done, else why not (one line, saying what to do)."""
    clone = pathlib.Path(record.worktree or "")
    branch = record.branch or ""
    if not record.worktree or not worktrees.is_clone(clone):
        return f"the task's clone {clone} is gone: its offer cannot be fetched"
    incoming = f"{INCOMING}/{run_id}/{record.id}"
    try:
        tip = git.resolve(clone, f"refs/heads/{branch}")
        head = git.resolve(clone, "HEAD")
        offered = record.head_sha or tip
        if tip is None or offered is None:
            return f"the clone {clone} has no branch {branch}: commit on it, then offer again"
        if tip != offered:
            return (
                f"the clone's branch {branch} is at {tip[:12]}, not at the offered "
                f"{offered[:12]}: offer the branch's head"
            )
        if head != offered:
            return (
                f"the clone's HEAD is at {(head or 'no commit')[:12]}, not at the offered "
                f"{offered[:12]}: check out {branch} and offer again"
            )
        git.fetch(repo, clone, f"refs/heads/{branch}:{incoming}")
        fetched = git.resolve(repo, incoming)
        git.delete_ref(repo, incoming)
    except CommandError as exc:
        text = (exc.stderr or str(exc)).strip().splitlines()
        return f"could not fetch the offer from {clone}: {text[-1] if text else exc}"
    if fetched != offered:
        return (
            f"the fetched commit {(fetched or 'nothing')[:12]} is not the offered "
            f"{offered[:12]} (the clone's branch moved meanwhile): offer again"
        )
    git.update_ref(repo, f"refs/heads/{branch}", offered)
    logger.info("fetched an offer", extra={"task_id": record.id, "sha": offered})
    return None


def save_clone(repo: pathlib.Path, run_id: str, task_id: str, clone: pathlib.Path) -> list[str]:
    """Fetch everything ``clone`` holds into ``repo`` and return the commits it is made of:
    every branch head, HEAD (even detached) and every commit its reflogs name. The fetched
    refs are deleted again; the objects stay for the caller to archive (``swarm clean``).
    Raises :class:`CommandError` when the clone cannot be read."""
    wanted = [sha for sha in _reflog_commits(clone) if git.resolve(clone, sha) is not None]
    head = git.resolve(clone, "HEAD")
    if head is not None:
        wanted.append(head)
    for index, sha in enumerate(dict.fromkeys(wanted)):
        git.update_ref(clone, f"{KEEP}/{index}", sha)
    incoming = f"{INCOMING}/{run_id}/{task_id}"
    git.fetch(repo, clone, f"refs/heads/*:{incoming}/heads/*", f"{KEEP}/*:{incoming}/keep/*")
    fetched = {ref: sha for ref, sha in gitguard.ref_tips(repo).items() if ref.startswith(incoming)}
    for ref in fetched:
        git.delete_ref(repo, ref)
    return list(dict.fromkeys(fetched.values()))


def _reflog_commits(clone: pathlib.Path) -> list[str]:
    """The commits every reflog file of ``clone`` names; the worker's files, so symlinks,
    special files and huge files are skipped."""
    found: list[str] = []
    root = clone / ".git" / "logs"
    for folder, dirs, files in os.walk(root):  # never follows a symlinked folder
        for name in sorted(files):
            path = pathlib.Path(folder, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_size <= REFLOG_MAX:
                found += gitguard.reflog_commits(path)
        dirs.sort()
    return list(dict.fromkeys(found))
