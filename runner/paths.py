"""Where everything lives on disk (DESIGN.md "On disk"). Pure path arithmetic, no I/O.

Every id that becomes a path component (run ids, task ids, agent names) is checked here with
:func:`protocol.base.check_id`, so no caller (``swarm logs '../../..'``, ``--run-id a/b``) can
build a path outside the swarm home, whether or not it validated its argument first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import typing as t

from protocol.ids import check_id
from runner.errors import UsageError


class UnsafeIdError(UsageError):
    """An id given as a path component is not a safe id (exit 2, nothing written)."""

    def __init__(self, kind: str, value: object, reason: str) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"{kind} {value!r} is not a valid id: {reason}")


IdKind = t.Literal["run id", "task id", "agent", "id"]


def safe_id(value: object, kind: IdKind = "id") -> str:
    """``value`` if it is safe as one path component, branch component and session name.

    The CLI calls this on every id argument (``--run-id``, ``RUN``, ``TASK``) before doing
    anything; the path builders below call it again, so a missed call cannot escape.
    """
    try:
        return check_id(t.cast(str, value))
    except ValueError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise UnsafeIdError(kind, value, reason) from None


def repo_hash(repo: pathlib.Path) -> str:
    """A short stable hash of the repository's real path (names the tmux socket and worktrees)."""
    return hashlib.sha256(str(repo.resolve()).encode()).hexdigest()[:10]


def tmux_socket_name(repo: pathlib.Path) -> str:
    """The private tmux server of a repository: ``tmux -L swarm-<repo-hash>``."""
    return f"swarm-{repo_hash(repo)}"


def state_home() -> pathlib.Path:
    xdg = os.environ.get("XDG_STATE_HOME")
    return pathlib.Path(xdg) if xdg else pathlib.Path.home() / ".local" / "state"


def default_worktree_root(repo: pathlib.Path) -> pathlib.Path:
    """Worktrees live outside the repository so the user's tools never see them."""
    return state_home() / "swarm" / "worktrees" / repo_hash(repo)


def worktree_dir(root: pathlib.Path, run_id: str, task_id: str) -> pathlib.Path:
    """``<worktree-root>/<run-id>/<task-id>``, with both ids checked."""
    return root / safe_id(run_id, "run id") / safe_id(task_id, "task id")


@dataclasses.dataclass(frozen=True)
class RunPaths:
    dir: pathlib.Path

    @property
    def state(self) -> pathlib.Path:
        return self.dir / "state.json"

    @property
    def events(self) -> pathlib.Path:
        return self.dir / "events.jsonl"

    @property
    def plan(self) -> pathlib.Path:
        return self.dir / "plan.json"

    @property
    def report(self) -> pathlib.Path:
        return self.dir / "report.md"

    @property
    def lock(self) -> pathlib.Path:
        return self.dir / "mayor.lock"

    @property
    def log(self) -> pathlib.Path:
        return self.dir / "mayor.log"

    def task_dir(self, task_id: str) -> pathlib.Path:
        return self.dir / "tasks" / safe_id(task_id, "task id")

    @property
    def staged_dir(self) -> pathlib.Path:
        """One file per task whose worktree was made before it could start (its base commit):
        what the launcher takes at the start, or removes if the task never starts."""
        return self.dir / "staged"

    def staged(self, task_id: str) -> pathlib.Path:
        return self.staged_dir / safe_id(task_id, "task id")

    def brief(self, task_id: str) -> pathlib.Path:
        return self.task_dir(task_id) / "brief.md"

    def setup_log(self, task_id: str) -> pathlib.Path:
        return self.task_dir(task_id) / "setup.log"

    def pane_log(self, task_id: str) -> pathlib.Path:
        return self.task_dir(task_id) / "pane.log"


@dataclasses.dataclass(frozen=True)
class SwarmPaths:
    """``<repo>/.agents/swarm``: mail, results, scope escapes and runs of one repository."""

    home: pathlib.Path

    @classmethod
    def for_repo(cls, repo: pathlib.Path) -> SwarmPaths:
        return cls(repo / ".agents" / "swarm")

    @property
    def mail(self) -> pathlib.Path:
        return self.home / "mail"

    @property
    def results(self) -> pathlib.Path:
        return self.home / "results"

    def result(self, task_id: str) -> pathlib.Path:
        return self.results / f"{safe_id(task_id, 'task id')}.json"

    @property
    def escapes(self) -> pathlib.Path:
        return self.home / "scope-escapes.jsonl"

    @property
    def runs(self) -> pathlib.Path:
        return self.home / "runs"

    def run(self, run_id: str) -> RunPaths:
        return RunPaths(self.runs / safe_id(run_id, "run id"))
