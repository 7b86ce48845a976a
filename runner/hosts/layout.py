"""Where things live under a host's work root (both sides compute it: the mayor to name remote
paths, ``swarm host serve`` to make them)::

    <root>/repo.git                      bare repository: the mayor pushes each task's start
    <root>/work/<run>/<task>             the worker's clone (``git clone --shared`` of repo.git)
    <root>/boxes/<run>/<task>/           its box: swarm/ (its SWARM_HOME: inbox, outbox, key,
                                         plan.json, results), pane.log, setup.log
    <root>/bin/swarm                     the shim workers find first on PATH
    <root>/notify/                       pane-death notices of the host's tmux server

The host's tmux server is private: ``tmux -L swarm-host-<digest of root>``.
"""

from __future__ import annotations

import hashlib
import pathlib
import typing as t

from protocol.ids import check_id
from runner.sandbox import Box


class Layout(t.NamedTuple):
    root: pathlib.PurePosixPath

    @classmethod
    def of(cls, root: str | pathlib.PurePath) -> Layout:
        return cls(pathlib.PurePosixPath(str(root)))

    @property
    def bare(self) -> pathlib.PurePosixPath:
        return self.root / "repo.git"

    def clone(self, run_id: str, task_id: str) -> pathlib.PurePosixPath:
        return self.root / "work" / check_id(run_id) / check_id(task_id)

    def box_root(self, run_id: str, task_id: str) -> pathlib.PurePosixPath:
        return self.root / "boxes" / check_id(run_id) / check_id(task_id)

    def box(self, run_id: str, task_id: str, worker: str) -> Box:
        """The worker's box, laid out as a sandboxed worker's (:class:`runner.sandbox.Box`)."""
        return Box(pathlib.Path(self.box_root(run_id, task_id)), worker, run_id)

    def pane_log(self, run_id: str, task_id: str) -> pathlib.PurePosixPath:
        return self.box_root(run_id, task_id) / "pane.log"

    @property
    def shim_dir(self) -> pathlib.PurePosixPath:
        return self.root / "bin"

    @property
    def notify(self) -> pathlib.PurePosixPath:
        return self.root / "notify"

    @property
    def socket(self) -> str:
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return f"swarm-host-{digest}"
