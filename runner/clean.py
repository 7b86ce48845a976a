"""Cleanup of a run's leftovers: task worktrees and branches, the integration worktree and
branch, closed tmux sessions.

A task is cleaned when its branch head *and its worktree's HEAD* (a worker may have detached
it and committed there) are reachable from the integration branch (or the run's recorded
integration head, or the target branch): removing it loses no commit. Without ``force`` every
other task is kept and listed with the reason; with ``force`` those heads are first saved as
``refs/swarm/archive/<run-id>/<task-id>`` (so ``git fsck --unreachable`` finds none of its
commits), then it goes too.

The integration worktree of a finished run (done or failed) goes when it holds nothing
uncommitted and no commit of its own; that of a run that can still be resumed (running or
stopped) only with ``force``. The integration branch goes with it when the target branch holds
its work (the run was landed, or merged nothing); otherwise it is the run's unlanded result and
stays, unless ``force``, which archives its head as ``.../_integration`` first (as is a HEAD
of the integration worktree's own).

Removing a worktree deletes its HEAD reflog and deleting a branch deletes the branch's: commits
only those reflogs still name (a worker's ``reset --hard`` or ``commit --amend``) are archived
as ``.../<task-id>-reflog`` before anything is removed, force or not. Idempotent; ends with
``git worktree prune``.
"""

from __future__ import annotations

import collections.abc
import contextlib
import logging
import pathlib
import shutil
import typing as t

from protocol.state import RunState
from runner import git, gitguard, isolation, worktrees
from runner.agents.worker import forget_trust
from runner.errors import CommandError, RunFailed
from runner.paths import SwarmPaths
from runner.sessions import session_name
from runner.state import exclusive_lock

logger = logging.getLogger(__name__)

INTEGRATION: t.Final = "_integration"
"""The name the integration worktree has in :class:`CleanReport` (task ids cannot start with _)."""
ARCHIVE_PREFIX: t.Final = "refs/swarm/archive"
MAYOR_SESSION_TASK: t.Final = "mayor"
RESUMABLE: t.Final = frozenset({"running", "stopped"})
"""Run states ``swarm resume`` can go on from: their integration worktree stays without force."""


class CleanReport(t.NamedTuple):
    removed: tuple[str, ...]
    """Task ids (and ``_integration``, the integration worktree, and the integration branch by
    its name) whose worktree, branch and session were removed."""
    kept: tuple[tuple[str, str], ...]
    """(task id, ``_integration`` or the integration branch, why it was kept)."""
    archived: tuple[str, ...]
    """Refs written under ``refs/swarm/archive/<run-id>/`` before removing unmerged work."""


def archive_ref(run_id: str, task_id: str) -> str:
    return f"{ARCHIVE_PREFIX}/{run_id}/{task_id}"


def clean(
    repo: pathlib.Path,
    state: RunState,
    *,
    force: bool,
    kill_session: t.Callable[[str], None],
) -> CleanReport:
    """Remove what ``state``'s run left behind in ``repo`` (see the module docstring).

    Refused (:class:`RunFailed`) while the run's mayor is alive (it holds the run lock); the lock
    is held during the cleanup so no mayor starts meanwhile. ``kill_session`` kills a tmux
    session by exact name and must accept sessions that are already gone.
    """
    run = SwarmPaths.for_repo(repo).run(state.run_id)
    lock: t.ContextManager[bool] = (
        exclusive_lock(run.lock) if run.dir.is_dir() else contextlib.nullcontext(True)
    )
    with lock as held:
        if not held:
            raise RunFailed(
                f"run {state.run_id} has a live mayor (lock {run.lock}); "
                f"stop it first: swarm stop {state.run_id}"
            )
        return _Cleaner(repo, state, force, kill_session).run()


class _Cleaner:
    def __init__(
        self,
        repo: pathlib.Path,
        state: RunState,
        force: bool,
        kill_session: t.Callable[[str], None],
    ) -> None:
        self.repo = repo
        self.state = state
        self.force = force
        self.kill_session = kill_session
        self.removed: list[str] = []
        self.kept: list[tuple[str, str]] = []
        self.archived: list[str] = []
        self.root = pathlib.Path(state.worktree_root) if state.worktree_root else None
        self.tips = self._tips()

    def _tips(self) -> list[str]:
        """Commits whose history counts as safe: integration branch, run head, target branch."""
        refs = [
            f"refs/heads/{self.state.integration_branch}" if self.state.integration_branch else "",
            self.state.integration_head,
            f"refs/heads/{self.state.target_branch}" if self.state.target_branch else "",
        ]
        tips: dict[str, None] = {}
        for ref in refs:
            sha = git.resolve(self.repo, ref) if ref else None
            if sha is not None:
                tips.setdefault(sha, None)
        return list(tips)

    def _safe_names(self) -> str:
        names = [self.state.integration_branch, self.state.target_branch]
        return " or ".join(n for n in names if n) or "the run's integration head"

    def run(self) -> CleanReport:
        ids = list(dict.fromkeys((*self.state.task_order, *self.state.tasks)))
        for task_id in ids:
            self._task(task_id)
        self._kill(session_name(self.state.run_id, MAYOR_SESSION_TASK))
        if self._integration():
            self._integration_branch()
        if self.root is not None:
            with contextlib.suppress(OSError):
                (self.root / self.state.run_id).rmdir()  # only when nothing else is left
        worktrees.prune(self.repo)
        # the agent CLIs' trust entries for worktrees that no longer exist
        forget_trust(
            self.state.tasks[tid].worktree for tid in self.removed if tid in self.state.tasks
        )
        report = CleanReport(tuple(self.removed), tuple(self.kept), tuple(self.archived))
        logger.info(
            "cleaned run %s: %d removed, %d kept, %d archived",
            self.state.run_id,
            len(report.removed),
            len(report.kept),
            len(report.archived),
        )
        return report

    def _kill(self, name: str) -> None:
        try:
            self.kill_session(name)
        except CommandError as exc:
            logger.warning("could not kill session %s: %s", name, exc, extra={"session": name})

    def _task(self, task_id: str) -> None:
        record = self.state.tasks.get(task_id)
        run_id = self.state.run_id
        branch = (record.branch if record else None) or f"swarm/{run_id}/{task_id}"
        worktree: pathlib.Path | None = None
        if record is not None and record.worktree:
            worktree = pathlib.Path(record.worktree)
        elif self.root is not None:
            worktree = self.root / run_id / task_id
        session = (record.session if record else None) or session_name(run_id, task_id)

        if worktree is not None and worktrees.is_clone(worktree):
            self._clone(task_id, branch, worktree, session)
            return
        branch_head = git.resolve(self.repo, f"refs/heads/{branch}")
        info = worktrees.find_worktree(self.repo, worktree) if worktree is not None else None
        on_disk = info is not None and worktree is not None and worktree.exists()
        worktree_head = git.resolve(worktree, "HEAD") if on_disk and worktree is not None else None
        if branch_head is None and worktree_head is None and info is None:
            self._kill(session)  # nothing on disk; a closed session may linger
            return
        heads = [sha for sha in dict.fromkeys((branch_head, worktree_head)) if sha]
        unmerged = gitguard.lost_commits(self.repo, heads, self.tips)
        if not self.force:
            if unmerged:
                detached = worktree_head in unmerged and worktree_head != branch_head
                what = f"the worktree's HEAD {worktree_head}" if detached else branch
                self._keep_unmerged(task_id, what)
                return
            if on_disk and worktree is not None and not git.is_clean(worktree):
                self._keep_dirty(task_id, f"worktree {worktree}")
                return
        try:
            self._archive_all(task_id, branch, worktree, heads, unmerged)
        except CommandError as exc:
            text = str(exc).strip()
            self.kept.append((task_id, f"could not archive its commits: {text.splitlines()[0]}"))
            return

        self._kill(session)
        try:
            if worktree is not None:
                worktrees.remove_worktree(self.repo, worktree, force=self.force)
            if git.branch_exists(self.repo, branch):
                git.delete_branch(self.repo, branch, force=True)  # reachability checked above
        except (worktrees.WorktreeError, CommandError) as exc:
            text = str(exc).strip()
            self.kept.append((task_id, text.splitlines()[0] if text else type(exc).__name__))
            return
        self.removed.append(task_id)

    def _keep_unmerged(self, task_id: str, what: str) -> None:
        self.kept.append(
            (
                task_id,
                f"{what} has commits that are not in {self._safe_names()}; swarm clean "
                f"--force archives them under {archive_ref(self.state.run_id, task_id)}",
            )
        )

    def _keep_dirty(self, task_id: str, what: str) -> None:
        self.kept.append(
            (
                task_id,
                f"{what} has uncommitted changes; commit them, or use --force to discard them",
            )
        )

    def _clone(self, task_id: str, branch: str, clone: pathlib.Path, session: str) -> None:
        """A worker's clone (``--isolation clone|sandbox``): everything it holds is fetched into
        the repository first, then kept or archived like a worktree's heads, then it goes."""
        run_id = self.state.run_id
        try:
            fetched = isolation.save_clone(self.repo, run_id, task_id, clone)
        except CommandError as exc:
            first = str(exc).strip().splitlines()[0]
            self.kept.append((task_id, f"could not fetch from its clone {clone}: {first}"))
            return
        branch_head = git.resolve(self.repo, f"refs/heads/{branch}")
        heads = [sha for sha in dict.fromkeys((branch_head, *fetched)) if sha]
        unmerged = gitguard.lost_commits(self.repo, heads, self.tips)
        if not self.force:
            if unmerged:
                self._keep_unmerged(task_id, f"the clone {clone}")
                return
            if not git.is_clean(clone):
                self._keep_dirty(task_id, f"clone {clone}")
                return
        try:
            self._archive_all(task_id, branch, None, heads, unmerged)
            self._kill(session)
            shutil.rmtree(clone)
            if git.branch_exists(self.repo, branch):
                git.delete_branch(self.repo, branch, force=True)  # reachability checked above
        except (CommandError, OSError) as exc:
            text = str(exc).strip()
            self.kept.append((task_id, text.splitlines()[0] if text else type(exc).__name__))
            return
        self.removed.append(task_id)

    def _archive_all(
        self,
        task_id: str,
        branch: str,
        worktree: pathlib.Path | None,
        heads: list[str],
        unmerged: list[str],
    ) -> None:
        """Archive a task's unmerged heads, then what only its reflogs still reach."""
        for sha in unmerged:
            self.archived.append(self._archive(archive_ref(self.state.run_id, task_id), sha))
        self._archive_reflogs(task_id, branch, worktree, heads)

    def _archive_reflogs(
        self, name: str, branch: str | None, worktree: pathlib.Path | None, heads: list[str]
    ) -> None:
        """Archive what only the reflogs about to be deleted still reach (see module doc)."""
        logs: list[str] = []
        if branch is not None:
            logs += gitguard.reflog_commits(gitguard.branch_reflog(self.repo, branch))
        admin = gitguard.worktree_admin_dir(self.repo, worktree) if worktree is not None else None
        if admin is not None:
            logs += gitguard.reflog_commits(admin / "logs" / "HEAD")
        if not logs:
            return
        keep = [*self.tips, *heads]
        doomed = f"refs/heads/{branch}" if branch else None
        keep += [sha for ref, sha in gitguard.ref_tips(self.repo).items() if ref != doomed]
        keep += [
            info.head
            for info in git.worktree_list(self.repo)
            if info.head and (worktree is None or info.path.resolve() != worktree.resolve())
        ]
        base = f"{archive_ref(self.state.run_id, name)}-reflog"
        for sha in gitguard.lost_commits(self.repo, logs, keep):
            self.archived.append(self._archive(base, sha))

    def _archive(self, base: str, head: str) -> str:
        """Save ``head`` under ``base`` or a fresh ``base-N``; an older archive is kept unless
        ``head`` contains it."""
        ref, suffix = base, 1
        while True:
            existing = git.resolve(self.repo, ref)
            if existing is None or existing == head or git.is_ancestor(self.repo, existing, head):
                break
            suffix += 1
            ref = f"{base}-{suffix}"
        git.update_ref(self.repo, ref, head)
        logger.info("archived commits", extra={"ref": ref, "sha": head})
        return ref

    def _integration(self) -> bool:
        """Remove the integration worktree when allowed (module doc); True when it is gone."""
        path = self.state.integration_worktree
        if not path:
            return True
        worktree = pathlib.Path(path)
        info = worktrees.find_worktree(self.repo, worktree)
        if info is None and not worktree.exists():
            return True
        head = git.resolve(worktree, "HEAD") if info is not None and worktree.exists() else None
        lost = gitguard.lost_commits(self.repo, [head], self.tips) if head else []
        if not self.force:
            why = ""
            if self.state.status in RESUMABLE:
                why = (
                    f"run {self.state.run_id} is {self.state.status}: `swarm resume` goes on in it"
                )
            elif lost:
                why = f"it has commits of its own ({lost[0][:12]}), not on {self._safe_names()}"
            elif head is not None and not git.is_clean(worktree):
                why = "it has uncommitted changes"
            if why:
                self.kept.append(
                    (
                        INTEGRATION,
                        f"the integration worktree {worktree} stays: {why}; --force "
                        "archives what is unmerged and removes it",
                    )
                )
                return False
        try:
            for sha in lost:
                self.archived.append(
                    self._archive(archive_ref(self.state.run_id, INTEGRATION), sha)
                )
            self._archive_reflogs(INTEGRATION, None, worktree, [head] if head else [])
            worktrees.remove_worktree(self.repo, worktree, force=True)
        except (worktrees.WorktreeError, CommandError) as exc:
            self.kept.append((INTEGRATION, str(exc).splitlines()[0]))
            return False
        self.removed.append(INTEGRATION)
        return True

    def _integration_branch(self) -> None:
        """Delete the integration branch when the target holds its work, or (force) after
        archiving its head; keep it, saying how to land or archive it, otherwise."""
        branch = self.state.integration_branch
        head = git.resolve(self.repo, f"refs/heads/{branch}") if branch else None
        if head is None:
            return
        target = self.state.target_branch
        target_tip = git.resolve(self.repo, f"refs/heads/{target}") if target else None
        unlanded = gitguard.lost_commits(self.repo, [head], [target_tip] if target_tip else [])
        ref = archive_ref(self.state.run_id, INTEGRATION)
        if unlanded and not self.force:
            self.kept.append(
                (
                    branch,
                    f"the run's result is not on {target or 'a target branch'}: "
                    f"`swarm land {self.state.run_id}` lands it, or `swarm clean "
                    f"{self.state.run_id} --force` archives it under {ref}",
                )
            )
            return
        try:
            for sha in unlanded:
                self.archived.append(self._archive(ref, sha))
            self._archive_reflogs(INTEGRATION, branch, None, [head])
            git.delete_branch(self.repo, branch, force=True)  # reachability checked above
        except CommandError as exc:
            self.kept.append((branch, str(exc).strip().splitlines()[0]))
            return
        self.removed.append(branch)


def tmux_session_killer(
    socket_name: str | None, notify_dir: pathlib.Path
) -> collections.abc.Callable[[str], None]:
    """``kill_session`` for a run: exact names on its private tmux server; a no-op for a
    local-mode run (no tmux)."""
    if not socket_name:
        return lambda _name: None
    from runner.sessions import TmuxBackend

    backend = TmuxBackend(socket_name, notify_dir=notify_dir)
    return backend.kill
