"""The mayor: one event loop per run.

Wake-ups come from the mail watcher (a worker reported), from the session backend (a pane died)
and from timers (timeouts, a periodic safety rescan); it never busy-polls. Each wake-up runs one
:meth:`Mayor.step`: handle unread mail, notice dead panes, validate and merge offered work, retry
or fail what was refused, ask the pure scheduler what to start, start it. Every decision is
recorded in the run log *before* it is acted on, and mail is marked read only after its effect is
recorded, so a crash at any point loses nothing (see ``swarm resume``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import queue
import sys
import time
import typing as t
from datetime import UTC, datetime

from agentmail.errors import AgentMailError
from agentmail.leases import Leases
from agentmail.store import MailStore, Stored
from agentmail.watch import Watcher
from protocol import manifest
from protocol.agentops import render_body
from protocol.messages import Envelope, Fields, MessageType
from protocol.plan import GateFamily, Plan, Task
from protocol.results import ScopeEscape
from protocol.state import TERMINAL_TASK_STATES, RunState, TaskRecord
from runner import checks, escapes, git, worktrees
from runner.agents import worker as agent_worker
from runner.agents.adapter import AgentSetupError
from runner.agents.panes import PaneWatch
from runner.agents.presets import AgentPreset, command_preset, preset
from runner.agents.registry import adapter_for
from runner.arbiter import Arbiter, gate_family
from runner.brief import BriefContext, render_brief
from runner.config import load_config, preset_from_config
from runner.errors import CommandError, RunnerError
from runner.paths import RunPaths, SwarmPaths
from runner.scheduler import PlanIndex, SchedulerInput, TaskStates, decide
from runner.sessions import (
    MISSING,
    SessionBackend,
    SessionExists,
    SessionSpec,
    session_name,
)
from runner.state import RunLog, read_events, write_json_atomic

logger = logging.getLogger(__name__)

MAYOR: t.Final = "mayor"
HUMAN: t.Final = "human"
RESERVED_AGENTS: t.Final = frozenset({MAYOR, HUMAN})


def worker_name(task_id: str) -> str:
    """The mail identity of a task's worker: the task id itself (ids are already safe names)."""
    return task_id


def task_branch(run_id: str, task_id: str) -> str:
    return f"swarm/{run_id}/{task_id}"


def now() -> datetime:
    return datetime.now(UTC)


@dataclasses.dataclass(frozen=True)
class MayorConfig:
    repo: pathlib.Path
    swarm: SwarmPaths
    run: RunPaths
    poll_interval: float = 2.0
    """Safety rescan period: wake-ups come from the watcher and pane deaths first."""
    python: str = sys.executable


class Mayor:
    def __init__(
        self,
        config: MayorConfig,
        *,
        plan: Plan,
        log: RunLog,
        store: MailStore,
        backend: SessionBackend,
    ) -> None:
        self.config = config
        self.plan = plan
        self.log = log
        self.store = store
        self.backend = backend
        self._wake: queue.Queue[str] = queue.Queue()
        self._mail_cursor: str | None = None  # delivery position already looked at
        events = read_events(config.run.events)
        known = {task.id for task in plan.tasks}
        added = [
            Task.model_validate(e.data["task_def"])
            for e in events
            if e.data.get("task_def") and e.data["task_def"]["id"] not in known
        ]
        if added:  # spawned before a crash that came before plan.json was rewritten
            self.plan = plan.model_copy(update={"tasks": (*plan.tasks, *added)})
        self._ledger = escapes.EscapeLedger.from_events(events)
        self._escape_offset = self._ledger.offset
        self._guard = escapes.LoopGuard.for_budgets(plan.budgets).replay(events)
        self._order = {task.id: index for index, task in enumerate(self.plan.tasks)}
        self._budget_refused = False
        self._after_dispatch: list[t.Callable[[], None]] = []
        self._case_sensitive = manifest.filesystem_case_sensitive(config.repo)
        self._index = PlanIndex.build(self.plan, case_sensitive=self._case_sensitive)
        self._settings = load_config(config.repo)  # custom agent presets
        self._leases = Leases(store.root, case_sensitive=self._case_sensitive)
        self._leased: set[str] = set()
        self._preset = self._agent_preset()
        self._panes = PaneWatch()  # what each worker's screen shows (runner.agents.panes)
        self._quick_exits: dict[str, str] = {}  # task -> how its agent last exited at once
        self._arbiter = Arbiter(
            repo=config.repo,
            run=config.run,
            log=log,
            case_sensitive=self._case_sensitive,
            on_merged=self._after_merge,
        )

    # -- properties ------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        return self.log.state

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def integration(self) -> pathlib.Path:
        return pathlib.Path(self.state.integration_worktree)

    def wake(self, reason: str = "") -> None:
        """Thread-safe: make the loop run a step soon."""
        self._wake.put(reason)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> RunState:
        """Run steps until the run ends; returns the final state."""
        self.store.register(MAYOR)
        self.store.register(HUMAN)
        self.backend.set_exit_callback(lambda name: self.wake(f"exit:{name}"))
        self.log.record("mayor_started", pid=os.getpid())
        git.drop_stale_index_lock(self.integration)  # a mayor killed mid-merge leaves one
        self._adopt()
        watcher = Watcher(self.store, MAYOR, lambda _stored: self.wake("mail"))
        watcher.start()
        try:
            while self.state.status == "running":
                self.step()
                if self.state.status != "running":
                    break
                self._sleep()
        finally:
            watcher.stop()
        return self.state

    def _adopt(self) -> None:
        """On (re)start: keep live workers, and restart those whose session vanished while no
        mayor ran (a killed tmux server, a reboot) in their existing worktrees, same attempt.
        Their last words are read first: a worker that finished is not restarted."""
        self._handle_mail()
        for record in self._tasks_in("running"):
            if record.session and self.backend.status(record.session).exists:
                continue  # alive, or dead with its exit status kept: step() decides
            self._start(self.plan.task(record.id), record.attempt, resumed=True)

    def _sleep(self) -> None:
        timeout = self.config.poll_interval
        next_deadline = self._next_deadline()
        if next_deadline is not None:
            timeout = max(0.0, min(timeout, next_deadline))
        try:
            self._wake.get(timeout=timeout)
        except queue.Empty:
            return
        while True:  # coalesce a burst of wake-ups into one step
            try:
                self._wake.get_nowait()
            except queue.Empty:
                return

    def step(self) -> None:
        """One pass over everything that may have changed. Idempotent."""
        with self.log.batch():
            self._step()

    def _step(self) -> None:
        self._handle_mail()
        self._ingest_escapes()
        self._check_sessions()
        self._check_timeouts()
        self._arbiter.integrate_offers(self.plan, self._order)
        self._rework()
        self._dispatch()
        while self._after_dispatch:
            self._after_dispatch.pop(0)()
        self._finish_if_done()
        self._check_loop()
        self._release_leases()

    # -- mail ------------------------------------------------------------------------------

    def _handle_mail(self) -> None:
        handled = set(self.state.handled_mail)
        page = self.store.list(MAYOR, unread=True, cursor=self._mail_cursor)
        for stored in page.messages:
            env = stored.envelope
            if env.run_id is not None and env.run_id != self.run_id:
                continue  # another run's mail: leave it for its mayor
            if env.id not in handled:
                self._on_message(stored)
                handled.add(env.id)
            self.store.mark_read(MAYOR, env.id)
        self._mail_cursor = page.next_cursor

    def _on_message(self, stored: Stored) -> None:
        env = stored.envelope
        if env.sender == HUMAN and env.type is MessageType.GUIDANCE:
            if env.fields.model_dump().get("text") == RESUME_DISPATCH and self.state.paused:
                self.log.record("dispatch_resumed", msg_id=env.id)
            else:
                self.log.record("mail_ignored", msg_id=env.id, reason="guidance for no one")
            return
        if env.type is MessageType.TERMINATE and env.sender == HUMAN:
            self._stop(
                reason=env.fields.model_dump().get("text") or "stopped by swarm stop",
                kill="kill" in env.subject.lower(),
                msg_id=env.id,
            )
            return
        tid = env.thread_id or env.fields.bead_id
        task = self.state.tasks.get(tid or "")
        if task is None or env.sender != worker_name(task.id):
            self.log.record(
                "mail_ignored",
                msg_id=env.id,
                sender=env.sender,
                reason=f"no task {tid!r} for sender {env.sender!r} in this run",
            )
            return
        text = _summary(env)
        if env.type.is_success and task.state == "running":
            head = str(env.fields.model_dump().get("commit_sha") or "")
            self.log.record(
                "task_offered", task.id, msg_id=env.id, head_sha=head or None, text=text
            )
        elif env.type is MessageType.FAILED and task.state == "running":
            self.log.record(
                "task_crashed",
                task.id,
                msg_id=env.id,
                text=text,
                reason=f"the worker reported FAILED: {text}",
            )
        elif env.type is MessageType.HELP_REQUEST:
            self.log.record("help_requested", task.id, msg_id=env.id, text=text)
            self._send(
                HUMAN,
                MessageType.HELP_REQUEST,
                task.id,
                env.fields,
                subject=env.subject,
                body=env.body_md,
                importance="high",
                ack_required=True,
            )
        elif env.type is MessageType.SCOPE_ESCAPE:
            self.log.record(
                "escape_reported",
                task.id,
                msg_id=env.id,
                text=text,
                escape=env.fields.model_dump(mode="json"),
            )
        else:
            self.log.record("task_message", task.id, msg_id=env.id, type=env.type.value, text=text)

    def _send(
        self,
        to: str,
        mtype: MessageType,
        task_id: str,
        fields: Fields | dict[str, t.Any],
        *,
        subject: str = "",
        body: str = "",
        **extra: t.Any,
    ) -> None:
        data = fields if isinstance(fields, dict) else fields.model_dump()
        data = {"bead_id": task_id, **data}
        env = Envelope.model_validate(
            {
                "from": MAYOR,
                "to": [to],
                "type": mtype,
                "thread_id": task_id,
                "run_id": self.run_id,
                "subject": subject or f"[{task_id}] {mtype.value}",
                "fields": data,
                "body_md": body,
                **extra,
            }
        )
        if not body:
            env = env.model_copy(update={"body_md": render_body(mtype, env.fields)})
        try:
            self.store.send(env)
        except Exception:  # mail to a worker is advisory; never let it stop the run
            logger.exception("failed to send %s", mtype.value, extra={"task_id": task_id})

    # -- sessions and timeouts -------------------------------------------------------------

    def _check_sessions(self) -> None:
        running = [task for task in self._tasks_in("running") if task.session]
        if not running:
            return
        statuses = self.backend.statuses(session_name(self.run_id, ""))  # one tmux call
        for task in running:
            assert task.session is not None
            status = statuses.get(task.session, MISSING)
            if status.alive:
                continue
            self._handle_mail()  # its last words may have landed after the listing
            if self.state.tasks[task.id].state != "running":
                continue
            code = status.exit_status
            started = task.dispatched_at
            verdict = agent_worker.exit_reason(
                status=code,
                elapsed=(now() - started).total_seconds() if started else None,
                tail=agent_worker.log_tail(self.config.run.pane_log(task.id)),
                previous=self._quick_exits.get(task.id),
                preset=self._task_preset(self.plan.task(task.id)).name,
            )
            self._quick_exits[task.id] = verdict.signature
            self.log.record(
                "task_failed" if verdict.fatal else "task_crashed",
                task.id,
                exit_status=code,
                reason=verdict.reason,
            )

    def _check_timeouts(self) -> None:
        deadline = self.state.deadline
        if deadline is not None and time.time() >= deadline:
            self._stop(reason="timeout", kill=True, status="stopped")
            return
        for task in self._tasks_in("running"):
            limit = self.plan.task(task.id).timeout
            started = task.dispatched_at
            if limit is not None and started and (now() - started).total_seconds() >= limit:
                self.log.record(
                    "task_crashed", task.id, exit_status=None, reason=f"timed out after {limit:g}s"
                )
                if task.session:
                    self.backend.kill(task.session)
                continue
            self._check_stall(task)

    def _idle_seconds(self, task: TaskRecord) -> float:
        """Seconds since the worker last wrote to its pane or was heard from."""
        last = task.last_activity.timestamp() if task.last_activity else time.time()
        try:
            last = max(last, self.config.run.pane_log(task.id).stat().st_mtime)
        except FileNotFoundError:
            pass
        return time.time() - last

    def _check_stall(self, task: TaskRecord) -> None:
        """NUDGE after ``stall_after`` of silence; after twice that, ask a human and restart."""
        stall_after = self.state.stall_after
        idle = self._idle_seconds(task)
        adapter = adapter_for(self._task_preset(self.plan.task(task.id)).name)
        if adapter is not None and task.session:
            swarm = agent_worker.shim_dir(self.config.swarm.home) / "swarm"
            screen = self.backend.screen(task.session)
            seen = self._panes.observe(task.id, adapter, screen, time.time(), swarm=str(swarm))
            if seen is not None:
                typed = seen.kind == "nudge" and self.backend.send_text(task.session, seen.text)
                self.log.record(
                    "task_nudged", task.id, pane=seen.state, typed=typed, text=seen.what
                )
                if seen.kind == "blocked":
                    self._send(
                        HUMAN,
                        MessageType.HELP_REQUEST,
                        task.id,
                        {
                            "issue_type": "BLOCKED",
                            "problem": f"Worker of task {task.id} is at {seen.what}.\n\n"
                            f"Its pane:\n{seen.screen}",
                            "question": f"Answer it with `swarm attach {task.id} --rw`.",
                        },
                        importance="high",
                        ack_required=True,
                    )
                return
            screen_idle = self._panes.idle_for(task.id, time.time())
            if screen_idle is not None:  # content, not output timestamps: a redrawn title
                heard = task.last_activity.timestamp() if task.last_activity else time.time()
                idle = min(time.time() - heard, screen_idle)
        if task.nudges == 0 and idle >= stall_after:
            self.log.record("task_nudged", task.id, idle=round(idle, 1))
            self._send(
                worker_name(task.id),
                MessageType.NUDGE,
                task.id,
                {
                    "text": f"No output or mail from you for {idle:.0f}s: report progress "
                    "with `swarm worker progress`, or `swarm worker help` if stuck."
                },
            )
        elif task.nudges == 1 and idle >= 2 * stall_after:
            tail = self.backend.capture(task.session, 50) if task.session else ""
            self.log.record(
                "task_nudged",
                task.id,
                idle=round(idle, 1),
                stalled=True,
                text=f"stalled for {idle:.0f}s",
            )
            self._send(
                HUMAN,
                MessageType.HELP_REQUEST,
                task.id,
                {
                    "issue_type": "STUCK",
                    "problem": f"Worker of task {task.id} silent for {idle:.0f}s.\n\n"
                    f"Last pane lines:\n{tail}",
                    "question": "Restarted by policy."
                    if self.state.stall_restart
                    else f"Attach with `swarm attach {task.id}`?",
                },
                importance="high",
                ack_required=True,
            )
            if self.state.stall_restart:
                if task.session:
                    self.backend.kill(task.session)
                self.log.record(
                    "task_crashed",
                    task.id,
                    exit_status=None,
                    reason=f"stalled: no output or mail for {idle:.0f}s",
                )

    def _next_deadline(self) -> float | None:
        """Seconds until the nearest timeout or stall check, if any."""
        waits: list[float] = []
        if self.state.deadline is not None:
            waits.append(self.state.deadline - time.time())
        for task in self._tasks_in("running"):
            limit = self.plan.task(task.id).timeout
            if limit is not None and task.dispatched_at is not None:
                waits.append(limit - (now() - task.dispatched_at).total_seconds())
            if task.nudges < 2:
                stall = self.state.stall_after * (task.nudges + 1)
                waits.append(stall - self._idle_seconds(task))
        return min(waits) if waits else None

    # -- merged work and retries ----------------------------------------------------------

    def _after_merge(self, task: Task, merge_sha: str | None) -> None:
        """What follows a merge (called by the arbiter): answer the worker and close its
        session once what the merge unblocked is dispatched, ratchet an OL bead."""
        record = self.state.tasks[task.id]
        summary = f"merged as {merge_sha[:12]}" if merge_sha else "accepted: nothing to merge"
        fields = {"commit_sha": record.head_sha or "", "summary": summary}
        # after dispatching what this merge unblocked: the worker's answer and its session
        self._after_dispatch.append(
            lambda: self._send(worker_name(task.id), MessageType.OFFERING_ACCEPTED, task.id, fields)
        )
        if record.session and not self.state.keep_sessions:
            session = record.session
            self._after_dispatch.append(lambda: self.backend.kill(session))
        bead = task.metadata.get("ol_bead_id")
        if isinstance(bead, str) and bead:
            from runner.plan.importers import ol_ratchet

            result = ol_ratchet(bead, cwd=str(self.integration))
            self.log.record(
                "ol_ratchet",
                task.id,
                argv=list(result.argv),
                returncode=result.returncode,
                stderr=result.stderr[-2000:],
            )

    def _rework(self) -> None:
        """Send refused work back: conflicts and scope violations are fix-ups (bounded by
        ``budgets.max_fixups``, then the task is blocked and a human asked); anything else is
        a retry (bounded by ``budgets.max_attempts`` and the failed check's own limit)."""
        budgets = self.plan.budgets
        if self.state.status != "running":
            return
        for record in self._tasks_in("rework"):
            if record.refusal in FIXUP_REFUSALS:
                if record.fixups >= budgets.max_fixups:
                    self._block(record)
                    continue
                self._start(self.plan.task(record.id), record.attempt + 1)
                continue
            limit = min(budgets.max_attempts, record.attempt_limit or budgets.max_attempts)
            if record.attempt - record.fixups >= limit:
                self.log.record(
                    "task_failed",
                    record.id,
                    reason=f"{record.reason} (after {record.attempt - record.fixups} attempts)",
                )
                continue
            self._start(self.plan.task(record.id), record.attempt + 1)

    def _block(self, record: TaskRecord) -> None:
        reason = f"{record.reason} (after {record.fixups} fix-ups)"
        self.log.record("task_blocked", record.id, reason=reason)
        self._send(
            HUMAN,
            MessageType.HELP_REQUEST,
            record.id,
            {
                "issue_type": "BLOCKED",
                "problem": f"Task {record.id} was refused {record.fixups + 1} times: {reason}",
                "files_touched": list(record.files),
                "question": f"Fix branch {record.branch} by hand (swarm attach {record.id} "
                "--rw), or drop the task.",
            },
            importance="high",
            ack_required=True,
        )

    # -- dispatch --------------------------------------------------------------------------

    def _dispatch(self) -> None:
        if self.state.status != "running":
            return
        states = {tid: rec.state for tid, rec in self.state.tasks.items()}
        decision = decide(
            SchedulerInput(
                plan=self.plan,
                states=TaskStates(self._index, states),
                max_workers=self.state.max_workers,
                waves=self.state.waves,
                case_sensitive=self._case_sensitive,
                paused=self.state.paused,
            )
        )
        for tid, reason in decision.skip:
            self.log.record("task_skipped", tid, reason=reason)
        if decision.start and self.state.commit_policy == "wave":
            self._arbiter.commit_wave(self.plan)  # the previous wave, now that it has ended
            self.log.record(
                "wave_started",
                wave=self.state.wave + 1,
                base=self.state.integration_head,
                tasks=list(decision.start),
            )
        for tid in decision.start:
            self._start(self.plan.task(tid), 1)

    def _start(self, task: Task, attempt: int, *, resumed: bool = False) -> None:
        """Start (or restart) a worker: worktree, brief, ASSIGN/RETRY mail, session.

        ``resumed``: the same attempt again after its session was lost (no mayor was running);
        the brief lists what the worktree already holds and the agent's resume flag is used."""
        record = self.state.tasks[task.id]
        run_id = self.run_id
        branch = task_branch(run_id, task.id)
        worktree = pathlib.Path(self.state.worktree_root) / run_id / task.id
        session = session_name(run_id, task.id)
        again = attempt > 1 or resumed
        base = record.base_sha if again and record.base_sha else self.state.integration_head
        rebase_onto = self.state.integration_head if _conflicted(record) else None
        retry_reason, retry_files = (
            (record.reason, record.files) if attempt > 1 and not resumed else ("", ())
        )
        self.log.record(
            "task_dispatched",
            task.id,
            attempt=attempt,
            session=session,
            branch=branch,
            worktree=str(worktree),
            base_sha=base,
            fixup=record.state == "rework" and record.refusal in FIXUP_REFUSALS,
            resumed=resumed,
        )
        try:
            worktrees.create_worktree(self.config.repo, worktree, branch, base)
            history = self._history(record, worktree, base) if resumed else ""
            worker = worker_name(task.id)
            key_file = self.store.register(worker)
            brief = self.config.run.brief(task.id)
            brief.parent.mkdir(parents=True, exist_ok=True)
            swarm = agent_worker.swarm_shim(self.config.swarm.home, self.config.python)
            brief.write_text(
                render_brief(
                    BriefContext(
                        run_id=run_id,
                        task=task,
                        attempt=attempt,
                        worktree=worktree,
                        branch=branch,
                        base_sha=base,
                        retry_reason=retry_reason,
                        retry_files=retry_files,
                        rebase_onto=rebase_onto,
                        history=history,
                        swarm=str(swarm),
                    )
                )
            )
            if resumed:
                self._send(
                    worker,
                    MessageType.GUIDANCE,
                    task.id,
                    {
                        "text": "Your session was lost and has been restarted in the same "
                        f"worktree; see the brief: {brief}"
                    },
                )
            elif attempt == 1:
                self._send(
                    worker,
                    MessageType.ASSIGN,
                    task.id,
                    {
                        "title": task.title,
                        "attempt": attempt,
                        "brief": str(brief),
                        "worktree": str(worktree),
                        "branch": branch,
                        "base_sha": base,
                    },
                    ack_required=True,
                )
            else:
                self._send(
                    worker,
                    MessageType.RETRY_REQUIRED,
                    task.id,
                    {
                        "attempt": attempt,
                        "reason": retry_reason,
                        "files": list(retry_files),
                        "rebase_onto": rebase_onto or "",
                    },
                    ack_required=True,
                    importance="high",
                )
            env = self._worker_env(
                task, worker, key_file, brief, worktree, attempt, base, rebase_onto
            )
            prepared = agent_worker.prepare_worker(
                preset=self._task_preset(task),
                task=task,
                repo=self.config.repo,
                worktree=worktree,
                brief=brief,
                swarm_home=self.config.swarm.home,
                python=self.config.python,
                options=agent_worker.options_from(self._settings),
                resume=resumed,
            )
            env.update(prepared.env)
            argv = prepared.argv
            self._panes.forget(task.id)
            spec = SessionSpec(
                name=session,
                argv=argv,
                cwd=worktree,
                env=env,
                log_path=self.config.run.pane_log(task.id),
            )
            try:
                self.backend.start(spec)  # replaces a dead session of that name itself
            except SessionExists:  # an agent still alive after offering: start afresh
                self.backend.kill(session)
                self.backend.start(spec)
            self._lease(task, worker, attempt)
            self._leased.add(task.id)
        except (RunnerError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            fatal = isinstance(exc, AgentSetupError) or (
                isinstance(exc, CommandError) and exc.returncode == 127
            )
            kind = "task_failed" if fatal else "task_crashed"
            self.log.record(
                kind,
                task.id,
                reason=f"could not start the worker: {reason}",
                exit_status=getattr(exc, "returncode", None),
            )
            return
        if task.needs_user_input and attempt == 1:
            self._send(
                HUMAN,
                MessageType.GUIDANCE,
                task.id,
                {"text": f"Task {task.id} needs your input: swarm attach {task.id}"},
                importance="high",
            )

    def _lease(self, task: Task, worker: str, attempt: int) -> None:
        """Hold a lease on a running write task's manifest, so `swarm mail leases` shows who
        holds what. Advisory: the scheduler's locks already keep manifests apart."""
        if not task.writes or not task.files:
            return
        try:
            if attempt > 1 or task.id in self._leased:  # the earlier attempt's lease
                self._leases.release(None, worker)
            self._leases.reserve(
                worker,
                task.files,
                exclusive=True,
                ttl=task.timeout or LEASE_TTL,
                reason=f"run {self.run_id} task {task.id} attempt {attempt}",
            )
        except AgentMailError as exc:
            logger.warning("could not lease the manifest: %s", exc, extra={"task_id": task.id})

    def _release_leases(self) -> None:
        """Release the leases of tasks that settled (all of them once the run ended)."""
        running = self.state.status == "running"
        for tid in sorted(self._leased):
            if running and self.state.tasks[tid].state not in TERMINAL_TASK_STATES:
                continue
            self._leased.discard(tid)
            try:
                self._leases.release(None, worker_name(tid))
            except AgentMailError as exc:
                logger.warning("could not release a lease: %s", exc, extra={"task_id": tid})

    def _history(self, record: TaskRecord, worktree: pathlib.Path, base: str) -> str:
        """What a restarted worker already did: its commits and its last report."""
        commits = git.log_subjects(worktree, base, "HEAD")
        lines = [f"- commit: {subject}" for subject in commits] or ["- no commits yet"]
        if not git.is_clean(worktree):
            lines.append("- uncommitted changes are in the worktree (`git status`)")
        if record.last_message:
            lines.append(f"- last report: {record.last_message}")
        return "\n".join(lines)

    def _worker_env(
        self,
        task: Task,
        worker: str,
        key_file: pathlib.Path,
        brief: pathlib.Path,
        worktree: pathlib.Path,
        attempt: int,
        base: str,
        rebase_onto: str | None,
    ) -> dict[str, str]:
        env = {
            "SWARM_HOME": str(self.config.swarm.home),
            "SWARM_RUN": self.run_id,
            "SWARM_TASK": task.id,
            "SWARM_WORKER": worker,
            "SWARM_MAYOR": MAYOR,
            "SWARM_KEY_FILE": str(key_file),
            "SWARM_BRIEF": str(brief),
            "SWARM_WORKTREE": str(worktree),
            "SWARM_ATTEMPT": str(attempt),
            "SWARM_BASE": base,
            "PATH": agent_worker.agent_path(self.config.swarm.home, self.config.python),
        }
        if rebase_onto:
            env["SWARM_REBASE_ONTO"] = rebase_onto
        return env

    def _agent_preset(self) -> AgentPreset:
        if self.state.agent_cmd:
            return command_preset(self.state.agent_cmd)
        return self._named_preset(self.state.agent)

    def _named_preset(self, name: str) -> AgentPreset:
        """A custom preset of the repository's config, else a built-in one."""
        return preset_from_config(self._settings, name) or preset(name)

    def _task_preset(self, task: Task) -> AgentPreset:
        if task.agent is None:
            return self._preset
        if " " not in task.agent:
            return self._named_preset(task.agent)
        return command_preset(task.agent)

    # -- the end ---------------------------------------------------------------------------

    def _finish_if_done(self) -> None:
        if self.state.status != "running":
            return
        if any(rec.state not in TERMINAL_TASK_STATES for rec in self.state.tasks.values()):
            return
        if self.state.commit_policy == "wave":
            self._arbiter.commit_wave(self.plan)
        failed = [rec.id for rec in self.state.tasks.values() if rec.state != "merged"]
        if failed:
            self.log.record(
                "run_finished",
                status="failed",
                reason=f"{len(failed)} task(s) not merged: {', '.join(failed)}",
            )
            return
        if self.plan.gates:
            failure = checks.run_gates(self.plan.gates, self.integration, fast_only=False)
            if failure is not None:
                family = gate_family(self.plan, failure.check)
                self.log.record(
                    "final_gate_failed",
                    reason=failure.reason,
                    gate_family=family,
                    output=failure.output,
                )
                if self._remediate(failure, family):
                    return
                self.log.record(
                    "run_finished",
                    status="failed",
                    reason=f"final {failure.reason}",
                    output=failure.output,
                )
                return
        if self.state.land:
            self._land()  # before run_finished: whoever follows the run sees the outcome
        self.log.record("run_finished", status="done", reason="every task merged")

    def _remediate(self, failure: checks.CheckFailure, family: GateFamily) -> bool:
        """A failing final gate may spawn one remediation task within its family's budget."""
        key = f"{failure.check}|remediate"
        ledger = self._ledger
        budgets = self.plan.budgets
        if key in ledger.seen_keys:
            return False
        used = ledger.spawned_by_family.get(family, 0)
        if ledger.spawned_total >= budgets.spawns or used >= budgets.family.get(family, 0):
            self._decided(
                {
                    "key": key,
                    "spawn": False,
                    "family": family,
                    "reason": f"no budget left to remediate {failure.check}",
                }
            )
            return False
        tid = escapes.next_auto_id(self.state.tasks)
        task = Task(
            id=tid,
            subject=f"Make {failure.check} pass",
            description=f"The final {failure.reason}. Output:\n\n{failure.output}",
            files=("**",),
            concurrency="write-shared",
            issue_type="remediation",
            blocked_by=(),
        )
        self._decided(
            {
                "key": key,
                "spawn": True,
                "family": family,
                "task": tid,
                "reason": f"remediation of {failure.check}",
            },
            task_def=task,
        )
        return True

    def _land(self) -> None:
        from runner.land import land

        result = land(self.config.repo, self.state.model_copy(update={"status": "done"}))
        if result.landed:
            self.log.record("run_landed", target=result.target, old=result.old, new=result.new)
        else:
            self.log.record("land_refused", reason=result.reason, commands=list(result.commands))

    # -- scope escapes and the anti-loop guard ---------------------------------------------

    def _ingest_escapes(self) -> None:
        """Decide each new line of scope-escapes.jsonl exactly once (the ledger is folded from
        ``escape_decided`` events, so a restart reads on where it stopped)."""
        path = self.config.swarm.escapes
        entries, end = escapes.read_escapes(path, self._escape_offset)
        if not entries:
            return
        ends = [offset for offset, _ in entries[1:]] + [end]
        for (_, entry), after in zip(entries, ends, strict=True):
            self._escape_offset = after
            if isinstance(entry, str):
                self._decided({"offset": after, "key": None, "spawn": False, "reason": entry})
                continue
            if entry.run_id is not None and entry.run_id != self.run_id:
                continue  # another run's escape
            self._decide_escape(entry, after)

    def _decide_escape(self, escape: ScopeEscape, offset: int) -> None:
        ledger = self._ledger
        family: GateFamily = "I"  # an escape counts against the implementation family
        decision = escapes.decide_spawn(
            escapes.SpawnPolicyInput(
                escape=escape,
                policy=self.state.auto_spawn,
                budgets=self.plan.budgets,
                spawned_total=ledger.spawned_total,
                spawned_by_family=ledger.spawned_by_family,
                seen_keys=ledger.seen_keys,
                gate_failed=family in self.state.failed_gate_families,
                family=family,
            )
        )
        source = escape.task_id if escape.task_id in self.state.tasks else None
        tid = escapes.next_auto_id(self.state.tasks) if decision.spawn else None
        task = None
        if tid is not None:
            task = escapes.follow_up_task(escape, tid, source or "")
            if source is None:
                task = task.model_copy(update={"blocked_by": ()})
        pause = decision.pause and not self.state.paused
        self._decided(
            {
                "offset": offset,
                "key": escapes.dedup_key(escape),
                "spawn": decision.spawn,
                "reason": decision.reason,
                "family": family,
                "task": tid,
                "pause": decision.pause,
                "source": source,
                "finding": escape.finding[:200],
            },
            task_id=source,
            task_def=task,
        )
        if pause:  # the escape_decided event itself paused dispatch (one event: atomic)
            self._send(
                HUMAN,
                MessageType.HELP_REQUEST,
                source or "run",
                {
                    "issue_type": "BLOCKED",
                    "problem": f"Critical scope escape: {escape.finding}",
                    "files_touched": list(escape.suggested_files),
                    "question": "Dispatch is paused. Resume it with `swarm unpause`.",
                },
                importance="urgent",
                ack_required=True,
            )
        if not decision.spawn and "budget" in decision.reason and "exhausted" in decision.reason:
            self._budget_refused = True

    def _decided(
        self, data: dict[str, t.Any], task_id: str | None = None, task_def: Task | None = None
    ) -> None:
        """Record an escape (or remediation) decision; a spawned task travels in the same
        event, so a crash can never separate the decision from the task it created."""
        if task_def is not None:
            data = {**data, "task_def": task_def.model_dump(mode="json")}
        self.log.record(escapes.ESCAPE_EVENT, task_id, **data)
        self._ledger = self._ledger.record(data)
        if task_def is not None:
            self._add_task(task_def)

    def _add_task(self, task: Task) -> None:
        self.plan = self.plan.model_copy(update={"tasks": (*self.plan.tasks, task)})
        # workers (the scripted agent) read their task from plan.json
        write_json_atomic(self.config.run.plan, self.plan.model_dump_json(indent=1))
        self._order[task.id] = len(self._order)
        self._index = PlanIndex.build(self.plan, case_sensitive=self._case_sensitive)

    def _check_loop(self) -> None:
        if self.state.status != "running":
            return
        self._guard = self._guard.observe(escapes.progress_of(self.state))
        reason = escapes.check_loop(self._guard, spawn_refused_by_budget=self._budget_refused)
        if reason is not None:
            self._stop(reason=reason, kill=False, status="stopped")

    def _stop(
        self, *, reason: str, kill: bool, status: str = "stopped", msg_id: str | None = None
    ) -> None:
        extra: dict[str, t.Any] = {"msg_id": msg_id} if msg_id else {}
        for record in self.state.tasks.values():
            if record.state in TERMINAL_TASK_STATES:
                continue
            if record.session and kill:
                self.backend.kill(record.session)
            if kill or record.state in ("pending", "ready"):
                self.log.record("task_cancelled", record.id, reason=reason)
        self.log.record("run_finished", status=status, reason=reason, **extra)

    def _tasks_in(self, state: str) -> list[TaskRecord]:
        return [rec for rec in self.state.tasks.values() if rec.state == state]


LEASE_TTL: t.Final = 24 * 3600.0
RESUME_DISPATCH: t.Final = "resume-dispatch"
FIXUP_REFUSALS: t.Final = frozenset({"conflict", "scope"})


def _conflicted(record: TaskRecord) -> bool:
    """The task is back for rework because its branch conflicts with the integration branch."""
    return record.state == "rework" and record.refusal == "conflict"


def _summary(env: Envelope) -> str:
    data = env.fields.model_dump()
    for key in ("summary", "step", "reason", "problem", "finding", "text", "title", "status"):
        value = data.get(key)
        if value:
            return f"{env.type.value}: {str(value).splitlines()[0][:200]}"
    return env.type.value
