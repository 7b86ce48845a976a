"""Where everything lives on disk (DESIGN.md "On disk"). Pure path arithmetic, no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib


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
        return self.dir / "tasks" / task_id

    def brief(self, task_id: str) -> pathlib.Path:
        return self.task_dir(task_id) / "brief.md"

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
        return self.results / f"{task_id}.json"

    @property
    def escapes(self) -> pathlib.Path:
        return self.home / "scope-escapes.jsonl"

    @property
    def runs(self) -> pathlib.Path:
        return self.home / "runs"

    def run(self, run_id: str) -> RunPaths:
        return RunPaths(self.runs / run_id)
