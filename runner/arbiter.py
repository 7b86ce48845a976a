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
import typing as t

from protocol import manifest
from protocol.plan import GateFamily, Plan, Task
from protocol.state import OFFERED_STATES, EventKind, RunState, TaskRecord
from runner import checks, git, gitguard, gitrun
from runner.errors import CommandError, RunnerError
from runner.paths import RunPaths
from runner.state import RunLog

logger = logging.getLogger(__name__)

Recorded: t.TypeAlias = tuple[EventKind, str | None, dict[str, t.Any]]
SYMLINK_MODE: t.Final = "120000"
SUBMODULE_MODE: t.Final = "160000"


class Integrated(t.NamedTuple):
    merged: tuple[str, ...]
    """Tasks merged (or accepted with nothing to merge), in order."""
    reset: str | None = None
    """What was undone on the integration branch before merging, for a human."""


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
        check_env: t.Mapping[str, str] | None = None,
        check_wrap: t.Callable[[Task | None], checks.Wrap | None] | None = None,
    ) -> None:
        self.repo = repo
        self.run = run
        self.log = log
        self.case_sensitive = case_sensitive
        self.check_env = check_env
        """What validation and gates run with on top of the environment: the worker's."""
        self.check_wrap = check_wrap
        """Where a task's validation runs, or with None the gates (a sandboxed run's: in a
        sandbox)."""
        self._merged_now: list[str] = []
        self._objects = gitrun.ObjectReader(repo)
        """One ``git cat-file`` for every merge and head the arbiter reads (:meth:`close`)."""
        self._checkout_due = False

    @property
    def state(self) -> RunState:
        return self.log.state

    @property
    def integration(self) -> pathlib.Path:
        return pathlib.Path(self.state.integration_worktree)

    def integrate_offers(self, plan: Plan) -> Integrated:
        """Validate and merge offered tasks one at a time, in dependency (plan) order; a merge
        a crash interrupted is settled first, before the integration branch moves again."""
        return self._integrate_offers(plan)

    def close(self) -> None:
        """End the arbiter's ``git cat-file`` (it starts again on the next use)."""
        self._objects.close()

    def settle(self) -> None:
        """Check out the merges recorded without gates (the integration branch moves once per
        step, to the last of them; the mayor calls this when the step's dispatches are done,
        and every reader of the integration worktree here calls it first)."""
        if not self._checkout_due:
            return
        self._checkout_due = False
        try:
            git.reset_hard(self.integration, self.state.integration_head)
        except (RunnerError, OSError) as exc:  # recorded: the next guard moves it there
            logger.error("could not check out the integration head: %s", exc)

    def _integrate_offers(self, plan: Plan) -> Integrated:
        self._merged_now = []
        reset = None
        order = {task.id: index for index, task in enumerate(plan.tasks)}
        for record in [r for r in self.state.tasks.values() if r.state == "merging"]:
            self._guarded(plan, record)
        offered = sorted(
            (t for t in self.state.tasks.values() if t.state in ("offered", "validating")),
            key=lambda t: order[t.id],
        )
        if offered:  # stray edits matter only to gates: without gates no merge commits them
            reset = self.guard_integration(edits=bool(plan.gates))
        for record in offered:
            self._guarded(plan, self.state.tasks[record.id])
        return Integrated(tuple(self._merged_now), reset)

    def guard_integration(self, *, edits: bool = True) -> str | None:
        """Only the arbiter moves the integration branch: a head it did not record, or edits
        in the integration worktree (looked for with ``edits``), are recorded and undone (reset
        to the recorded head). Returns what was undone, for a human, or None."""
        self.settle()
        recorded = self.state.integration_head
        try:
            if edits:  # one git process for the head and the edits
                status = gitguard.status(self.integration)
                actual, dirty = status.head or "(no commit)", status.dirty
            elif head := gitrun.worktree_ref(self.repo, self.integration):  # no process
                actual, dirty = self._objects.commit(head), []
            else:
                actual, dirty = git.head_sha(self.integration), []
        except (CommandError, OSError) as exc:
            actual, dirty = f"unreadable: {str(exc).splitlines()[0]}", ["(unknown)"]
        if actual == recorded and not dirty:
            return None
        if not dirty and self._cut_short(actual, recorded):
            # a merge recorded (started and merged in one write) whose one act, moving the
            # branch, a crash cut short: finish the recorded decision; nobody else moved it
            git.reset_hard(self.integration, recorded)
            return None
        self.log.record(
            "integration_reset",
            found=actual,
            head=recorded,
            dirty=dirty[:20],
            reason="the integration branch moved or changed outside the arbiter",
        )
        git.drop_stale_index_lock(self.integration)
        git.reset_hard(self.integration, recorded)
        git.clean_untracked(self.integration)
        what = f"head {actual[:12]} instead of {recorded[:12]}" if actual != recorded else ""
        stray = f"uncommitted edits in {', '.join(dirty[:5])}" if dirty else ""
        return (
            f"The integration worktree {self.integration} was changed outside the arbiter "
            f"({'; '.join(x for x in (what, stray) if x)}); it was reset to {recorded[:12]}."
        )

    def _cut_short(self, actual: str, recorded: str) -> bool:
        """The branch is behind the recorded head only by recorded merges: following first
        parents from the recorded head through tasks' merge commits reaches it."""
        merges = {rec.merge_sha for rec in self.state.tasks.values() if rec.merge_sha}
        sha = recorded
        try:
            while sha in merges:
                merges.discard(sha)  # each merge once: a cycle cannot happen, a loop neither
                sha = git.head_sha(self.repo, f"{sha}^1")
                if sha == actual:
                    return True
        except (CommandError, OSError):
            return False
        return False

    def _guarded(self, plan: Plan, record: TaskRecord) -> None:
        """Integrate one task; anything git, a file or the worker's branch throws at it turns
        into a refusal (the task goes back, the integration branch is left as recorded) and
        the run goes on. A resumed mayor meeting the same state refuses it the same way."""
        try:
            self._integrate(plan, record)
        except (RunnerError, OSError, ValueError) as exc:
            logger.exception("integration failed", extra={"task_id": record.id})
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            try:
                git.drop_stale_index_lock(self.integration)
                git.reset_hard(self.integration, self.state.integration_head)
            except (RunnerError, OSError) as undo:
                logger.error("could not reset the integration worktree: %s", undo)
            if self.state.tasks[record.id].state in OFFERED_STATES:
                self.log.record(
                    "merge_refused",
                    record.id,
                    kind="error",
                    reason=f"could not integrate the offer: {text}",
                )

    def _integrate(self, plan: Plan, record: TaskRecord) -> None:
        task = plan.task(record.id)
        worktree = pathlib.Path(record.worktree or "")
        if not worktree.is_dir():
            raise RunnerError(f"the task's worktree {worktree} is gone")
        # the worktree's head and, for a write task, its uncommitted edits: one git process
        status = gitguard.status(worktree) if task.writes else None
        head = status.head if status is not None else git.head_sha(worktree)
        if self.state.isolation != "worktree":  # a clone's offer, fetched (runner.isolation)
            head = git.head_sha(self.repo, f"refs/heads/{record.branch}")
        if head is None:
            raise RunnerError(f"the task's branch in {worktree} has no commit")
        if record.state == "merging":
            # a crash interrupted this merge: finish it, or undo it, exactly once
            base = self.state.integration_head
            actual = git.head_sha(self.integration)
            offered = record.head_sha or head
            if actual != base and git.is_ancestor(self.repo, offered, actual):
                self._gate_and_record(plan, task, offered, base, actual)
                return
            git.reset_hard(self.integration, base)  # a half-done merge, if any
        if status is not None:
            unsaved = [p for p in status.dirty if self._inside(p, task.files)]
            if unsaved:
                self._refuse(
                    task,
                    "uncommitted",
                    unsaved,
                    "uncommitted changes in the manifest would not be merged: "
                    "commit them (git add, git commit), then offer again",
                )
                return
        failure = None
        if not task.validation.empty:
            self.log.record("validation_started", task.id, head_sha=head)
            wrap = self.check_wrap(task) if self.check_wrap else None
            failure = checks.validate(task, worktree, env=self.check_env, wrap=wrap)
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
        # what would land (ort, with its virtual merge base), judged before anything moves
        result = gitguard.merge_tree(self.repo, base, head)
        if result.conflicts:
            self._refuse(
                task,
                "conflict",
                list(result.conflicts),
                "merge conflict with the integration branch in " + ", ".join(result.conflicts),
                rebase_onto=base,
            )
            return
        changes = gitguard.tree_changes(self._objects, base, result.tree)
        outside = self._out_of_scope(task, changes, result.tree)
        if outside:
            self._refuse(
                task,
                "scope",
                [path for path, _ in outside],
                "scope violation: " + "; ".join(f"{p} ({why})" for p, why in outside),
            )
            return
        if not changes and task.allow_empty:
            self.log.record(
                "task_merged",
                task.id,
                head_sha=head,
                merge_sha=None,
                no_changes=True,
                text="merged (no changes)",
            )
            self._merged_now.append(task.id)
            return
        if not changes:
            self._refuse(
                task,
                "empty",
                [],
                "the offer changes nothing on the integration branch: commit the "
                "work on the task branch, or make the task read-only when no change "
                "is expected",
            )
            return
        # the commit holds exactly the tree the scope check judged: merge (two parents) or
        # squash (one), then the integration worktree checks it out
        squash = self.state.commit_policy in ("per-task", "squash")
        title = (
            f"chore({task.id})" if self.state.commit_policy == "per-task" else f"swarm({task.id})"
        )
        parents = (base,) if squash else (base, head)
        started: Recorded = ("merge_started", task.id, {"head_sha": head, "integration_head": base})
        if any(gate.fast for gate in plan.gates):
            self.log.record_all([started])
            merge_sha = git.commit_tree(self.repo, result.tree, parents, f"{title}: {task.title}")
            git.reset_hard(self.integration, merge_sha)
            self._gate_and_record(plan, task, head, base, merge_sha)
            return
        # no gate can refuse it: the commit object first (it moves nothing), then both
        # decisions in one durable write, then the one act, moving the branch, once for all
        # the merges of this step (a crash before it leaves the branch behind the recorded
        # head, on its first-parent line: the next guard finishes the act)
        merge_sha = git.commit_tree(self.repo, result.tree, parents, f"{title}: {task.title}")
        merged: Recorded = ("task_merged", task.id, self._merged_data(head, merge_sha))
        self.log.record_all([started, merged])
        self._merged_now.append(task.id)
        self._checkout_due = True

    def _inside(self, path: str, files: t.Sequence[str]) -> bool:
        try:
            return manifest.in_manifest(path, files, case_sensitive=self.case_sensitive)
        except ValueError:  # not a path the manifest can name (" ", "a/../b"): never inside
            return False

    def _out_of_scope(
        self, task: Task, changes: list[gitguard.TreeChange], tree: str
    ) -> list[tuple[str, str]]:
        """Each path of the merge result the task may not land, with why."""
        outside: list[tuple[str, str]] = []
        links: list[str] = []
        for change in changes:
            path = change.path
            if manifest.is_protected(path):
                outside.append((path, "the swarm home and .git are never merged"))
            elif not self._inside(path, task.files):
                outside.append((path, "outside the manifest"))
            elif change.mode == SUBMODULE_MODE:
                outside.append((path, "a submodule (gitlink)"))
            elif change.mode == SYMLINK_MODE:
                links.append(path)
        if links:  # resolved against every link of the result, as the file system would
            targets = gitguard.symlink_targets(self.repo, tree)
            for escape in manifest.escaping_symlinks(targets, check=links):
                outside.append((escape.path, f"a symlink to {escape.target!r}: {escape.reason}"))
        return outside

    def _refuse(self, task: Task, kind: str, files: list[str], reason: str, **extra: t.Any) -> None:
        self.log.record("merge_refused", task.id, kind=kind, files=files, reason=reason, **extra)

    def _gate_and_record(
        self, plan: Plan, task: Task, head: str, base: str, merge_sha: str
    ) -> None:
        """Run the fast gates on the merged integration worktree; keep or undo the merge."""
        wrap = self.check_wrap(None) if self.check_wrap and plan.gates else None
        failure = checks.run_gates(
            plan.gates, self.integration, fast_only=True, env=self.check_env, wrap=wrap
        )
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
        self.log.record("task_merged", task.id, **self._merged_data(head, merge_sha))
        self._merged_now.append(task.id)

    @staticmethod
    def _merged_data(head: str, merge_sha: str) -> dict[str, t.Any]:
        return {
            "head_sha": head,
            "merge_sha": merge_sha,
            "integration_head": merge_sha,
            "text": f"merged as {merge_sha[:12]}",
        }

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
        self.settle()
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
                rec
                for rec in self.state.tasks.values()
                if rec.state == "merged"
                and rec.merge_sha
                and git.is_ancestor(self.repo, rec.merge_sha, tip)
                and not git.is_ancestor(self.repo, rec.merge_sha, base)
            ]
            lines = [f"- {rec.id}: {plan.task(rec.id).title}" for rec in merged]
            subject = f"chore(wave-{self.state.wave}): close " + ", ".join(r.id for r in merged)
            sha = git.squash_onto(
                self.integration, base, tip, "\n\n".join([subject, "\n".join(lines)])
            )
        self.log.record("wave_committed", wave=self.state.wave, head=sha)
