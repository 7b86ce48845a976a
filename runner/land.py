"""Landing: fast-forward the run's target branch to its integration head, when that is safe.

Safe means: the run is ``done`` (every task merged, every gate passed); the integration branch
is at the head the run recorded; the target branch is where it was when the run started and an
ancestor of the integration head (a fast-forward); the repository's hooks and config are as
they were when the run started (a worker can write both: worktrees share ``.git``); nothing
under the swarm home ``.agents/`` would change; and, when the target is checked out, the
fast-forward would overwrite nothing of the user's (no local change to a path it changes, no
untracked or ignored file where it writes one). Otherwise nothing changes and
:class:`LandResult` carries the reason and the exact git commands to do it by hand. Never a
force push, never a reset.
"""

from __future__ import annotations

import logging
import pathlib
import shlex
import typing as t

from protocol.state import RunState
from runner import git, gitguard
from runner.errors import CommandError

logger = logging.getLogger(__name__)


class LandResult(t.NamedTuple):
    landed: bool
    """True when the target now points at the integration head (also when it already did)."""
    target: str
    old: str
    """The target's commit before landing ("" when unknown)."""
    new: str
    """The integration head (what the target points at after landing)."""
    reason: str
    commands: tuple[str, ...]
    """When not landed: the git commands to do it by hand (empty when it should not be done)."""


def _checked_out_at(repo: pathlib.Path, branch: str) -> pathlib.Path | None:
    for info in git.worktree_list(repo):
        if info.branch == branch and not info.prunable and info.path.exists():
            return info.path
    return None


SWARM_HOME_DIR: t.Final = ".agents"
"""The top-level folder of the live swarm home: never landed (keys, mail, run state)."""


def land(
    repo: pathlib.Path,
    state: RunState,
    *,
    target_head: str | None = None,
    fingerprint: t.Mapping[str, str] | None = None,
) -> LandResult:
    """Fast-forward ``state.target_branch`` to ``state.integration_head`` if that is safe.

    ``target_head`` is the target branch's commit when the run started and ``fingerprint`` the
    :func:`runner.gitguard.repo_fingerprint` taken then; each defaults to the state's field of that
    name (``target_head``, ``repo_fingerprint``) when it has one, and its check is skipped when
    neither is known (a run recorded before they existed).

    Where the target is checked out, ``git merge --ff-only`` runs in that work tree (only if it
    would overwrite nothing); elsewhere the branch moves with a compare-and-swap
    ``git update-ref``.
    """
    if target_head is None:
        target_head = state.target_head
    if fingerprint is None:
        fingerprint = state.repo_fingerprint
    target = state.target_branch or ""
    new = state.integration_head
    integration = state.integration_branch
    q = shlex.quote

    def refuse(reason: str, old: str = "", commands: t.Sequence[str] = ()) -> LandResult:
        logger.info("did not land: %s", reason, extra={"branch": target})
        return LandResult(False, target, old, new, reason, tuple(commands))

    if state.status != "done":
        detail = f": {state.stop_reason}" if state.stop_reason else ""
        return refuse(
            f"run {state.run_id} is {state.status}, not done{detail}; only a run whose tasks "
            "all merged and whose gates passed lands"
        )
    if not new or git.resolve(repo, new) is None:
        return refuse(f"run {state.run_id} has no integration head commit in {repo}")
    if not target:
        return refuse(
            f"run {state.run_id} has no target branch (HEAD was detached when it started); "
            "check out the branch to land on, then run the command",
            commands=(f"git -C {q(str(repo))} merge --ff-only {new}",),
        )
    actual = git.resolve(repo, f"refs/heads/{integration}") if integration else None
    if actual is not None and actual != new:
        return refuse(
            f"integration branch {integration} is at {actual[:12]}, not at the run's validated "
            f"head {new[:12]}: it changed after the run; land it by hand if you trust it",
            commands=(f"git -C {q(str(repo))} merge --ff-only {new}",),
        )
    old = git.resolve(repo, f"refs/heads/{target}")
    if old is None:
        return refuse(
            f"target branch {target} does not exist in {repo}",
            commands=(f"git -C {q(str(repo))} branch {q(target)} {new}",),
        )
    if old == new:
        return LandResult(True, target, old, new, f"{target} is already at {new[:12]}", ())
    checkout = _checked_out_at(repo, target)
    where = checkout or repo
    by_hand = (f"git -C {q(str(where))} merge --ff-only {new}",)
    if fingerprint is not None:
        changes = gitguard.fingerprint_changes(fingerprint, gitguard.repo_fingerprint(repo))
        if changes:
            return refuse(
                "the repository's hooks or config changed during the run ("
                + "; ".join(changes)
                + "): a worker may have planted code that git would run; check them, then "
                "land by hand",
                old,
                (f"git -C {q(str(repo))} config --list --show-origin --local", *by_hand),
            )
    if target_head and old != target_head:
        return refuse(
            f"{target} moved during the run (from {target_head[:12]} to {old[:12]}), not by "
            "this run; if you moved it, land by hand",
            old,
            (f"git -C {q(str(repo))} log --oneline {target_head}..{old}", *by_hand),
        )
    home = gitguard.changed_paths(repo, old, new, SWARM_HOME_DIR)
    if home:
        shown = ", ".join(home[:3]) + (f" and {len(home) - 3} more" if len(home) > 3 else "")
        return refuse(
            f"the integration branch changes files under {SWARM_HOME_DIR}/ (the live swarm "
            f"home: keys, mail, run state): {shown}; they are never landed",
            old,
            (f"git -C {q(str(repo))} diff --stat {old} {new} -- {SWARM_HOME_DIR}",),
        )
    if not git.is_ancestor(repo, old, new):
        commands = [] if checkout else [f"git -C {q(str(where))} switch {q(target)}"]
        commands.append(f"git -C {q(str(where))} merge --no-ff {q(integration or new)}")
        return refuse(
            f"{target} has commits that are not in {integration or new[:12]}: not a "
            "fast-forward; merge it by hand",
            old,
            commands,
        )
    if checkout is None:
        try:
            git.update_ref(repo, f"refs/heads/{target}", new, old)
        except CommandError as exc:
            return refuse(
                f"{target} moved while landing ({exc.stderr.strip() or exc}); try again",
                old,
                (f"git -C {q(str(repo))} update-ref refs/heads/{q(target)} {new} {old}",),
            )
        logger.info("landed", extra={"branch": target, "old": old, "new": new})
        return LandResult(True, target, old, new, f"fast-forwarded {target} (not checked out)", ())
    manual = (f"git -C {q(str(checkout))} merge --ff-only {new}",)
    clobbered = gitguard.ff_would_overwrite(checkout, old, new)
    if clobbered:
        shown = ", ".join(clobbered[:3]) + (
            f" and {len(clobbered) - 3} more" if len(clobbered) > 3 else ""
        )
        # --all: untracked and ignored files too (a plain `git stash` leaves them in the way)
        stash = (
            f"git -C {q(str(checkout))} stash push --all "
            f"-m {q(f'before landing {state.run_id}')} -- "
            + " ".join(q(path) for path in clobbered)
        )
        return refuse(
            f"{target} is checked out in {checkout}, where landing would overwrite uncommitted, "
            f"untracked or ignored files: {shown} (only these are in the way); put them aside "
            "with the first command (`git stash list` keeps them), then land with the second",
            old,
            (stash, *manual),
        )
    try:
        git.merge_ff_only(checkout, new)
    except CommandError as exc:
        lines = (exc.stderr or exc.stdout).strip().splitlines()
        return refuse(
            f"git refused to fast-forward {target} in {checkout}: "
            f"{lines[0] if lines else exc.returncode}",
            old,
            manual,
        )
    logger.info("landed", extra={"branch": target, "old": old, "new": new})
    return LandResult(True, target, old, new, f"fast-forwarded {target} in {checkout}", ())
