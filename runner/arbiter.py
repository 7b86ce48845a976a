"""The merge arbiter: validate offered work and merge it into the integration branch, one task
at a time, in dependency order, in its own integration worktree (the user's checkout is never
touched). Every decision is recorded in the run log before it is acted on; a refused merge
(scope violation, conflict, failing gate, git error) leaves the integration branch exactly as it
was and sends the task back. Worker branches are never rewritten, so no worker commit is ever
made unreachable.
"""

from __future__ import annotations

import logging
import pathlib

from protocol import manifest
from protocol.plan import GateFamily, Plan, Task
from protocol.state import RunState, TaskRecord
from runner import checks, git
from runner.errors import CommandError
from runner.paths import RunPaths
from runner.state import RunLog

logger = logging.getLogger(__name__)


def gate_family(plan: Plan, check: str) -> GateFamily:
    """The family (I, O, S, M) of the gate a ``gate:<name>`` check failure came from."""
    name = check.removeprefix("gate:")
    return next((g.family for g in plan.gates if g.name == name), "I")


class Arbiter:
    def __init__(
        self,
        *,
        repo: pathlib.Path,
        run: RunPaths,
        log: RunLog,
        case_sensitive: bool,
    ) -> None:
        self.repo = repo
        self.run = run
        self.log = log
        self.case_sensitive = case_sensitive
        self._merged_now: list[str] = []

    @property
    def state(self) -> RunState:
        return self.log.state

    @property
    def integration(self) -> pathlib.Path:
        return pathlib.Path(self.state.integration_worktree)

    def integrate_offers(self, plan: Plan) -> tuple[str, ...]:
        """Validate and merge offered tasks one at a time, in dependency (plan) order; a merge
        a crash interrupted is settled first, before the integration branch moves again.
        Returns the tasks merged (or accepted with nothing to merge)."""
        self._merged_now = []
        order = {task.id: index for index, task in enumerate(plan.tasks)}
        for record in [r for r in self.state.tasks.values() if r.state == "merging"]:
            self._integrate(plan, record)
        offered = sorted(
            (t for t in self.state.tasks.values() if t.state in ("offered", "validating")),
            key=lambda t: order[t.id],
        )
        if offered:
            self._sync_integration_head()
        for record in offered:
            self._integrate(plan, self.state.tasks[record.id])
        return tuple(self._merged_now)

    def _sync_integration_head(self) -> None:
        """Adopt commits a human (or a crash) put on the integration branch behind our back."""
        actual = git.head_sha(self.integration)
        if actual != self.state.integration_head:
            self.log.record("integration_advanced", head=actual, external=True)

    def _integrate(self, plan: Plan, record: TaskRecord) -> None:
        task = plan.task(record.id)
        worktree = pathlib.Path(record.worktree or "")
        head = git.head_sha(worktree)
        if record.state == "merging":
            # a crash interrupted this merge: finish it, or undo it, exactly once
            base = self.state.integration_head
            actual = git.head_sha(self.integration)
            offered = record.head_sha or head
            if actual != base and git.is_ancestor(self.repo, offered, actual):
                self._gate_and_record(plan, task, offered, base, actual)
                return
            git.reset_hard(self.integration, base)  # a half-done merge, if any
        failure = None
        if not task.validation.empty:
            self.log.record("validation_started", task.id, head_sha=head)
            failure = checks.validate(task, worktree)
        if failure is not None:
            self.save_output(task.id, "validation.log", failure.output)
            self.log.record(
                "validation_failed",
                task.id,
                reason=f"validation failed: {failure.check}: {failure.reason}",
                check=failure.check,
                attempt_limit=failure.retry_limit,
            )
            return
        if not task.writes:
            self.log.record(
                "task_merged",
                task.id,
                head_sha=head,
                merge_sha=None,
                text="read-only: validated, nothing merged",
            )
            self._merged_now.append(task.id)
            return
        base = self.state.integration_head
        changed = git.changed_files(worktree, base, head)
        outside = [
            path
            for path in changed
            if not manifest.in_manifest(path, task.files, case_sensitive=self.case_sensitive)
        ]
        if outside:
            self.log.record(
                "merge_refused",
                task.id,
                kind="scope",
                files=outside,
                reason="scope violation: changed files outside the manifest: " + ", ".join(outside),
            )
            return
        if not changed:
            self.log.record(
                "task_merged", task.id, head_sha=head, merge_sha=None, text="no changes to merge"
            )
            self._merged_now.append(task.id)
            return
        conflicts = git.merge_tree_conflicts(self.repo, base, head)
        if conflicts:
            self.log.record(
                "merge_refused",
                task.id,
                kind="conflict",
                files=conflicts,
                rebase_onto=base,
                reason="merge conflict with the integration branch in " + ", ".join(conflicts),
            )
            return
        self.log.record("merge_started", task.id, head_sha=head, integration_head=base)
        message = f"swarm({task.id}): {task.title}"
        try:
            if self.state.commit_policy == "per-task":  # agentops --per-task-commits
                message = f"chore({task.id}): {task.title}"
                merge_sha = git.merge_squash(self.integration, head, message)
            elif self.state.commit_policy == "squash":
                merge_sha = git.merge_squash(self.integration, head, message)
            else:
                merge_sha = git.merge_no_ff(self.integration, head, message)
        except git.MergeConflict as exc:
            git.reset_hard(self.integration, base)
            self.log.record(
                "merge_refused",
                task.id,
                kind="conflict",
                files=list(exc.files),
                rebase_onto=base,
                reason="merge conflict in " + ", ".join(exc.files),
            )
            return
        except CommandError as exc:  # git failed otherwise: undo, send the work back, go on
            logger.exception("merge failed", extra={"task_id": task.id})
            git.drop_stale_index_lock(self.integration)
            git.reset_hard(self.integration, base)
            self.log.record(
                "merge_refused",
                task.id,
                kind="error",
                reason=f"merge failed: {str(exc).splitlines()[0]}",
            )
            return
        self._gate_and_record(plan, task, head, base, merge_sha)

    def _gate_and_record(
        self, plan: Plan, task: Task, head: str, base: str, merge_sha: str
    ) -> None:
        """Run the fast gates on the merged integration worktree; keep or undo the merge."""
        failure = checks.run_gates(plan.gates, self.integration, fast_only=True)
        if failure is not None:
            git.reset_hard(self.integration, base)
            self.save_output(task.id, "gate.log", failure.output)
            self.log.record(
                "merge_refused",
                task.id,
                kind="gate",
                reason=f"{failure.reason}; the integration branch was reset",
                check=failure.check,
                gate_family=gate_family(plan, failure.check),
            )
            return
        self._merged(task, head, merge_sha)

    def _merged(self, task: Task, head: str, merge_sha: str) -> None:
        self.log.record(
            "task_merged",
            task.id,
            head_sha=head,
            merge_sha=merge_sha,
            integration_head=merge_sha,
            text=f"merged as {merge_sha[:12]}",
        )
        self._merged_now.append(task.id)

    def save_output(self, task_id: str, name: str, text: str) -> None:
        directory = self.run.task_dir(task_id)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)

    def commit_wave(self, plan: Plan) -> None:
        """agentops wave commits: squash the merges of the wave that ended into one
        ``chore(wave-N): close a, b`` commit (worker commits stay on their branches)."""
        base = self.state.wave_base
        if base is None:
            return
        head = git.head_sha(self.integration)
        if self.state.wave_squash is None:
            if head == base:  # nothing merged in this wave
                self.log.record("wave_committed", wave=self.state.wave, head=head)
                return
            self.log.record("wave_commit_started", wave=self.state.wave, base=base, tip=head)
        tip = self.state.wave_squash
        assert tip is not None
        if head not in (base, tip) and git.is_ancestor(self.repo, base, head):
            sha = head  # the commit was made before a crash
        else:
            merged = [
                rec for rec in self.state.tasks.values()
                if rec.state == "merged" and rec.merge_sha
                and git.is_ancestor(self.repo, rec.merge_sha, tip)
                and not git.is_ancestor(self.repo, rec.merge_sha, base)
            ]  # fmt: skip
            lines = [f"- {rec.id}: {plan.task(rec.id).title}" for rec in merged]
            subject = f"chore(wave-{self.state.wave}): close " + ", ".join(r.id for r in merged)
            sha = git.squash_onto(
                self.integration, base, tip, "\n\n".join([subject, "\n".join(lines)])
            )
        self.log.record("wave_committed", wave=self.state.wave, head=sha)
