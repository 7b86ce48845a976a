"""``swarm clean`` of a run with remote workers: nothing a host holds is lost.

Before the cleaner looks at a remote task's mirror, every branch head and the HEAD of its
clone on the host are fetched into the mirror (as ``refs/heads/swarm-remote/...``), so the
cleaner's own rule, which saves every head of a clone before removing it, also covers commits
made over there after the last sync. The host's clone, box and session are removed only for
the tasks the cleaner removed; an unreachable host keeps them (and the mirror is kept too:
what it could not fetch may be there only), and the reason is reported.
"""

from __future__ import annotations

import logging
import pathlib
import typing as t

from protocol.state import RunState, TaskRecord
from runner import git, worktrees
from runner.errors import CommandError, RunnerError
from runner.hosts.layout import Layout
from runner.hosts.link import HostLink

logger = logging.getLogger(__name__)

REMOTE_HEADS: t.Final = "refs/heads/swarm-remote"


class RemoteCleanup:
    def __init__(self, state: RunState) -> None:
        self.state = state
        self.links = {h.name: HostLink(h) for h in state.hosts if h.remote}
        self.unreachable: dict[str, str] = {}  # task -> why its host's copy stays

    def _remote(self) -> list[tuple[TaskRecord, HostLink]]:
        return [
            (rec, self.links[rec.host])
            for rec in self.state.tasks.values()
            if rec.host in self.links and rec.worktree
        ]

    def fetch_all(self) -> set[str]:
        """Fetch each remote clone's heads into its mirror; the tasks that could not be (the
        cleaner must keep them)."""
        failed: set[str] = set()
        for rec, link in self._remote():
            mirror = pathlib.Path(rec.worktree or "")
            if not worktrees.is_clone(mirror):
                continue
            assert link.host.root is not None
            clone = Layout.of(link.host.root).clone(self.state.run_id, rec.id)
            try:
                git.fetch_url(
                    mirror,
                    link.ssh.url(clone),
                    f"refs/heads/*:{REMOTE_HEADS}/*",
                    f"HEAD:{REMOTE_HEADS}-HEAD",
                    env=link.ssh.git_env(),
                )
            except CommandError as exc:
                text = (exc.stderr or str(exc)).strip().splitlines()
                why = text[-1] if text else str(exc)
                if "does not appear to be a git repository" in why or "not found" in why:
                    continue  # no clone there (any more): nothing to save
                self.unreachable[rec.id] = f"could not fetch from {rec.host}: {why}"
                failed.add(rec.id)
        return failed

    def remove(self, removed: t.Iterable[str]) -> None:
        """Remove the host's copy (session, clone, box) of each removed task."""
        gone = set(removed)
        for rec, link in self._remote():
            if rec.id not in gone:
                continue
            try:
                link.request(
                    "remove", run=self.state.run_id, task=rec.id, session=rec.session or ""
                )
            except RunnerError as exc:
                self.unreachable[rec.id] = f"its copy on {rec.host} stays: {exc}"

    def close(self) -> None:
        for link in self.links.values():
            link.close()
