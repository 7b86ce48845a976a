"""The mayor: one reconciler loop per run.

Each step **observes** (unread mail, one session-status call, the clock, new scope-escape lines),
asks the pure :func:`runner.decide.decide` what to do, **records** each action's event in the
run log (checked by the lifecycle table) and then **executes** it with a small executor: the
launcher (worktree, brief, session, lease), the arbiter (validation and merges), the outbox
(mail) or session control. It asks again until nothing is left to do, then sleeps until a
wake-up: a message (the watcher), a pane death (the session backend) or a timer. Mail is marked
read only after its effect is recorded, so a crash at any point loses nothing (``swarm resume``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import pathlib
import queue
import sys
import time
import typing as t

from agentmail.store import MailStore
from agentmail.watch import Watcher
from protocol import manifest
from protocol.messages import Envelope, HelpRequestFields
from protocol.plan import Plan, Task
from protocol.results import ScopeEscape
from protocol.state import RunState
from runner import checks, escapes, git, isolation, notify
from runner.actions import (
    HUMAN,
    MAYOR,
    Action,
    Drop,
    Finish,
    Integrate,
    Kill,
    Launch,
    Observations,
    PlanView,
    Ratchet,
    Record,
    Send,
    StartWave,
    ask_human,
)
from runner.agents import worker as agent_worker
from runner.agents.panes import PaneReport, PaneWatch
from runner.agents.registry import adapter_for
from runner.arbiter import Arbiter, gate_family
from runner.boxmail import Collector
from runner.config import load_config
from runner.decide import decide, next_wake, sessions_prefix, stage, stop_actions
from runner.hosts.remote import HostsBackend
from runner.launcher import Launcher
from runner.outbox import Outbox
from runner.paths import RunPaths, SwarmPaths
from runner.sessions import MISSING, SessionBackend, SessionStatus
from runner.spawning import remediation
from runner.state import RunLog, write_json_atomic

logger = logging.getLogger(__name__)

MAIL_WAKES: t.Final = frozenset({"mail", "box"})
"""Wake-ups that bring mail only: such a step need not ask tmux for every session."""
SWITCH_INTERVAL: t.Final = 0.0005
"""Seconds a thread may hold the GIL while another wants it, while the loop runs."""
STAGE_DELAY: t.Final = 0.05
"""Seconds from a change of the run to staging the worktrees of the tasks that start next: the
agents the change started get the machine first."""
MAX_PASSES: t.Final = 6
"""Asks of :func:`decide` per step; a step needs three (observed, after the merges, after the
dispatch); more means an action did not lead where decide expected, and the next wake-up goes
on from the recorded state."""


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
        self.log = log
        self.store = store
        self.backend = backend
        self._wake: queue.Queue[str] = queue.Queue()
        self._woken: set[str] = set()  # why the loop woke since the last step
        self._polled = -math.inf  # monotonic time of the last session poll
        self._mail_cursor: str | None = None  # delivery position already looked at
        self._seen: tuple[Envelope, ...] = ()  # this step's mail, marked read by _settle
        self._stage_seq = -1  # the run log's last event when staging was last looked at
        self._stage_at: float | None = None  # monotonic time staging is due
        known = {task.id for task in plan.tasks}
        added = [  # spawned tasks come from their events (folded by the log), never plan.json
            Task.model_validate(task_def)
            for task_def in log.fold.task_defs
            if task_def["id"] not in known
        ]
        if added:  # workers (the scripted agent) read their task from plan.json: keep it whole
            plan = plan.model_copy(update={"tasks": (*plan.tasks, *added)})
            write_json_atomic(config.run.plan, plan.model_dump_json(indent=1))
        case_sensitive = manifest.filesystem_case_sensitive(config.repo)
        self.view = PlanView.build(plan, case_sensitive=case_sensitive)
        self._escape_offset = log.state.escape_offset
        limits = escapes.LoopGuard.for_budgets(plan.budgets)  # the counters: from the log
        self._guard = dataclasses.replace(
            log.fold.guard, max_idle=limits.max_idle, max_iterations=limits.max_iterations
        )
        self.outbox = Outbox(store, backend, log.state.run_id)
        self.hosts = backend if isinstance(backend, HostsBackend) else None
        self.launcher = Launcher(
            repo=config.repo,
            swarm=config.swarm,
            run=config.run,
            log=log,
            store=store,
            backend=backend,
            outbox=self.outbox,
            settings=load_config(config.repo),
            case_sensitive=case_sensitive,
            setup=plan.setup,
            python=config.python,
            hosts=self.hosts,
        )
        self.arbiter = Arbiter(
            repo=config.repo,
            run=config.run,
            log=log,
            case_sensitive=case_sensitive,
            check_env=self.launcher.check_env(),  # validation and gates: the worker's PATH
            check_wrap=self.launcher.check_wrap,  # a sandboxed task's validation: its sandbox
        )
        self.boxes = Collector(store=store, swarm=config.swarm, run=config.run, log=log)
        self._panes = PaneWatch()  # what each worker's screen shows (runner.agents.panes)
        # what each worker's screen shows (runner.agents.panes); an idle agent is nudged after
        # a quarter of the stall time, at most 45 s
        nudge_after = min(45.0, max(5.0, log.state.stall_after / 4))
        self._panes = PaneWatch(nudge_after=nudge_after)
        self._quick_exits: dict[str, str] = {}  # task -> how its agent last exited at once
        notify.attach(log, config.repo, config.run, plan, config.python)  # alerts, report.html

    @property
    def state(self) -> RunState:
        return self.log.state

    @property
    def plan(self) -> Plan:
        return self.view.plan

    @property
    def integration(self) -> pathlib.Path:
        return pathlib.Path(self.state.integration_worktree)

    def wake(self, reason: str = "") -> None:
        """Thread-safe: make the loop run a step soon."""
        self._wake.put(reason)

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> RunState:
        """Run steps until the run ends; returns the final state."""
        switch = sys.getswitchinterval()
        # the launcher's checkout thread waits in git while this one makes the key, brief and
        # mail: a thread that wants the GIL gets it within 0.5 ms instead of 5
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL))
        try:
            return self._run()
        finally:
            sys.setswitchinterval(switch)

    def _run(self) -> RunState:
        self.store.register(MAYOR)
        self.store.register(HUMAN)
        self.backend.set_exit_callback(lambda name: self.wake(f"exit:{name}"))
        self.log.record("mayor_started", pid=os.getpid())
        git.drop_stale_index_lock(self.integration)  # a mayor killed mid-merge leaves one
        watcher = Watcher(self.store, MAYOR, lambda _stored: self.wake("mail"))
        watcher.start()
        boxes = self.boxes.watch(lambda: self.wake("box"))  # sandboxed workers' outboxes
        try:
            self.step(adopting=True)  # keep live workers, restart those lost while no mayor ran
            while self.state.status == "running":
                self._sleep()
                self.step()
        finally:
            watcher.stop()
            self.arbiter.close()
            self.launcher.drop_staged()  # all of them once the run ended
            if boxes is not None:
                boxes.stop()
        if agent_worker.options_from(self.state, self.launcher.settings).trust_worktrees:
            gone = agent_worker.forget_trust(rec.worktree for rec in self.state.tasks.values())
            logger.info("forgot the folder trust recorded for %d worktree(s)", gone)
        return self.state

    def step(self, *, adopting: bool = False) -> None:
        """Observe, then decide and act until nothing is left to do. Idempotent."""
        with self.log.batch():
            obs = self.observe(adopting=adopting)
            self._seen = obs.mail
            for _ in range(MAX_PASSES):
                actions = decide(self.state, self.view, obs)
                if not actions:
                    break
                merged: tuple[str, ...] = ()
                for action in actions:
                    merged += self.execute(action)
                obs = obs.consumed(merged=merged)
            else:
                logger.warning("decide did not settle in %d passes", MAX_PASSES)
            self._settle()
            self._check_loop()
            self.launcher.release_leases()
        self._stage(time.monotonic())

    def _stage(self, now: float) -> None:
        """Worktrees made ahead for the tasks that start next (:meth:`Launcher.stage`): a
        short while after the run changed, off every path a worker waits on."""
        if not self.launcher.stages:
            return
        if self.state.last_seq != self._stage_seq:
            self._stage_seq = self.state.last_seq
            if self._stage_at is None:
                self._stage_at = now + STAGE_DELAY
        if self._stage_at is None or now < self._stage_at:
            return
        self._stage_at = None
        self.launcher.drop_staged()
        for tid in stage(self.state, self.view, self.launcher.staged):
            self.launcher.stage(self.plan.task(tid))

    def _settle(self) -> None:
        """Off the offer -> dispatch path, once the tasks a merge unblocked are started (and
        before the run's end is recorded, which followers wait for): mail whose effect is
        recorded is read (a crash before this finds it handled and unread, and marks it
        then), and the integration worktree checks out the step's merges."""
        handled = set(self.state.handled_mail)
        for env in self._seen:
            if env.id in handled:
                self.store.mark_read(MAYOR, env.id)
        self._seen = tuple(env for env in self._seen if env.id not in handled)
        self.arbiter.settle()

    def _sleep(self) -> None:
        timeout = self.config.poll_interval
        nearest = next_wake(self.state, self.plan, time.time(), self._idle())
        if nearest is not None:
            timeout = max(0.0, min(timeout, nearest))
        if self._stage_at is not None:
            timeout = max(0.0, min(timeout, self._stage_at - time.monotonic()))
        try:
            self._woken.add(self._wake.get(timeout=timeout))
        except queue.Empty:
            self._woken.add("timer")
            return
        while True:  # coalesce a burst of wake-ups into one step
            try:
                self._woken.add(self._wake.get_nowait())
            except queue.Empty:
                return

    # -- observe ---------------------------------------------------------------------------

    def observe(self, *, adopting: bool = False) -> Observations:
        # sessions before mail: the last words of a pane seen dead are already in the mailbox
        lost = self._lost()
        sessions = self._sessions() if adopting or self._poll_due() else None
        self._woken.clear()
        if self.hosts is not None:  # remote workers' mail, logs and commits, verified here
            self.hosts.reap()  # a host that came back: what it runs for re-placed tasks
            self.hosts.relay(
                self.state, run=self.config.run, store=self.store, collector=self.boxes
            )
        self.boxes.collect()  # sandboxed workers' outboxes, verified, into the mailbox
        panes = self._screens(sessions)
        return Observations(
            now=time.time(),
            mail=self._unread(),
            sessions=sessions,
            exits=self._exits(sessions),
            panes=panes,
            pane_states=self._panes.states(),
            idle=self._idle(),
            escapes=self._new_escapes(),
            adopting=adopting,
            lost=lost,
        )

    def _lost(self) -> dict[str, str]:
        """Why each task's worker is gone with its host: a background start there failed, or
        the host has been unreachable past its grace period (decide records the crashes)."""
        if self.hosts is None:
            return {}
        lost = {
            task_id: f"could not start the worker on {host}: {why}"
            for host, task_id, why in self.hosts.failures()
        }
        for host, gone in self.hosts.lost().items():
            for rec in self.state.tasks.values():
                if rec.host == host:
                    lost.setdefault(rec.id, f"host {host} unreachable for {gone:.0f}s: re-placed")
        return lost

    def _exits(self, sessions: t.Mapping[str, SessionStatus] | None) -> dict[str, tuple[str, bool]]:
        """Why each running worker whose pane died exited: its last lines (from the pane log),
        and whether it exited at once the same way as the time before."""
        exits: dict[str, tuple[str, bool]] = {}
        for task in self.state.tasks.values():
            status = (sessions or {}).get(task.session or "", MISSING)
            if task.state != "running" or not task.session or not status.exists or status.alive:
                continue
            started = task.dispatched_at
            verdict = agent_worker.exit_reason(
                status=status.exit_status,
                elapsed=time.time() - started.timestamp() if started else None,
                tail=agent_worker.log_tail(self.config.run.pane_log(task.id)),
                previous=self._quick_exits.get(task.id),
                preset=self.launcher.preset_of(self.plan.task(task.id)).name,
            )
            self._quick_exits[task.id] = verdict.signature
            exits[task.id] = (verdict.reason, verdict.fatal)
        return exits

    def _screens(self, sessions: t.Mapping[str, SessionStatus] | None) -> dict[str, PaneReport]:
        """What the screens of live workers of a known CLI show that needs acting on."""
        reports: dict[str, PaneReport] = {}
        swarm = str(agent_worker.shim_dir(self.config.swarm.home) / "swarm")
        for task in self.state.tasks.values():
            if task.state != "running" or not task.session:
                self._panes.forget(task.id)
                continue
            if not (sessions or {}).get(task.session, MISSING).alive:
                continue
            adapter = adapter_for(self.launcher.preset_of(self.plan.task(task.id)).name)
            if adapter is None:
                continue
            screen = self.backend.screen(task.session)
            hint = adapter.hook_hint(pathlib.Path(task.worktree)) if task.worktree else None
            seen = self._panes.observe(
                task.id, adapter, screen, time.time(), swarm=swarm, hint=hint
            )
            if seen is not None:
                reports[task.id] = seen
        return reports

    def _poll_due(self) -> bool:
        """Whether this step asks tmux for the sessions: not when only mail woke it (every
        worker report), unless the last poll is a poll interval old. Not looking is always
        safe (a death is only seen later), and a pane that dies wakes the loop itself."""
        now = time.monotonic()
        if (
            self._woken
            and self._woken <= MAIL_WAKES
            and now - self._polled < self.config.poll_interval
        ):
            return False
        self._polled = now
        return True

    def _sessions(self) -> t.Mapping[str, SessionStatus] | None:
        if not any(r.state == "running" and r.session for r in self.state.tasks.values()):
            return None
        return self.backend.statuses(sessions_prefix(self.state.run_id))  # one tmux call

    def _unread(self) -> tuple[Envelope, ...]:
        handled = set(self.state.handled_mail)
        page = self.store.list(MAYOR, unread=True, cursor=self._mail_cursor)
        self._mail_cursor = page.next_cursor
        fresh = []
        for stored in page.messages:
            env = stored.envelope
            if env.run_id is not None and env.run_id != self.state.run_id:
                continue  # another run's mail: leave it for its mayor
            if env.id in handled:  # its effect was recorded before a crash
                self.store.mark_read(MAYOR, env.id)
                continue
            fresh.append(env)
        return tuple(fresh)

    def _idle(self) -> dict[str, float]:
        """Seconds since each running worker last wrote to its pane or was heard from."""
        now = time.time()
        idle: dict[str, float] = {}
        for task in self.state.tasks.values():
            if task.state != "running":
                continue
            last = task.last_activity.timestamp() if task.last_activity else now
            heard = now - last
            try:
                last = max(last, self.config.run.pane_log(task.id).stat().st_mtime)
            except FileNotFoundError:
                pass
            idle[task.id] = now - last
            screen = self._panes.idle_for(task.id, now)
            if screen is not None:  # content, not output timestamps: a redrawn title is no news
                idle[task.id] = min(heard, screen)
        return idle

    def _new_escapes(self) -> tuple[tuple[int, ScopeEscape | str], ...]:
        offset = max(self._escape_offset, self.state.escape_offset)
        entries, end = escapes.read_escapes(self.config.swarm.escapes, offset)
        if not entries:
            return ()
        self._escape_offset = end
        ends = [after for after, _ in entries[1:]] + [end]
        return tuple((after, entry) for (_, entry), after in zip(entries, ends, strict=True))

    # -- execute ---------------------------------------------------------------------------

    def execute(self, action: Action) -> tuple[str, ...]:
        """Carry out one action (its event first); returns the tasks the arbiter merged."""
        match action:
            case Record(ev):
                if ev.kind == "run_finished":  # a stop: what followers see is settled first
                    self._settle()
                self.log.record(ev.kind, ev.task_id, **ev.data)
                if task_def := ev.data.get("task_def"):
                    self._add_task(Task.model_validate(task_def))
            case Send():
                self.outbox.send(action)
            case Kill(session):
                self.backend.kill(session)
            case Drop(msg_id):
                self.store.mark_read(MAYOR, msg_id)
            case Launch(task_id, attempt, resumed):
                self.launcher.start(self.plan.task(task_id), attempt, resumed=resumed)
            case Integrate():
                isolation.take_offers(self.config.repo, self.log)  # clones: fetch, or refuse
                merged, reset = self.arbiter.integrate_offers(self.plan)
                self._alert_reset(reset)
                return merged
            case StartWave(tasks):
                self.arbiter.commit_wave(self.plan)  # the previous wave, now that it ended
                state = self.state
                self.log.record(
                    "wave_started",
                    wave=state.wave + 1,
                    base=state.integration_head,
                    tasks=list(tasks),
                )
            case Ratchet(task_id, bead):
                from runner.plan.importers import ol_ratchet

                self.arbiter.settle()  # the ratchet reads the integration worktree
                result = ol_ratchet(bead, cwd=str(self.integration))
                self.log.record(
                    "ol_ratchet",
                    task_id,
                    argv=list(result.argv),
                    returncode=result.returncode,
                    stderr=result.stderr[-2000:],
                )
            case Finish():
                self._settle()
                self._finish()
        return ()

    def _alert_reset(self, reset: str | None) -> None:
        if reset is not None:
            question = "Nothing but the arbiter may move it; find out who changed it."
            fields = HelpRequestFields(issue_type="BLOCKED", problem=reset, question=question)
            self.outbox.send(ask_human("run", fields, importance="urgent"))

    def _add_task(self, task: Task) -> None:
        self.view = self.view.with_task(task)
        # workers (the scripted agent) read their task from plan.json
        write_json_atomic(self.config.run.plan, self.plan.model_dump_json(indent=1))

    def _finish(self) -> None:
        """Every task settled: commit the last wave, run the final gates (a failure may spawn a
        remediation task), land when asked, and record the end."""
        if self.state.commit_policy == "wave":
            self.arbiter.commit_wave(self.plan)
        failed = [rec.id for rec in self.state.tasks.values() if rec.state != "merged"]
        if failed:
            reason = f"{len(failed)} task(s) not merged: {', '.join(failed)}"
            self.log.record("run_finished", status="failed", reason=reason)
            return
        # gates and landing need the branch at the recorded head (and gates, no stray edits)
        self._alert_reset(self.arbiter.guard_integration(edits=bool(self.plan.gates)))
        wrap = self.launcher.check_wrap(None) if self.plan.gates else None  # a sandbox's
        failure = checks.run_gates(
            self.plan.gates,
            self.integration,
            fast_only=False,
            env=self.arbiter.check_env,
            wrap=wrap,
        )
        if failure is not None:
            family = gate_family(self.plan, failure.check)
            self.log.record(
                "final_gate_failed",
                reason=failure.reason,
                gate_family=family,
                output=failure.output,
            )
            ev = remediation(
                self.state, self.plan, failure.check, failure.reason, failure.output, family
            )
            if ev is not None:
                self.execute(Record(ev))
                if ev.data["spawn"]:
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

    def _land(self) -> None:
        from runner.land import land

        result = land(self.config.repo, self.state.model_copy(update={"status": "done"}))
        if result.landed:
            self.log.record("run_landed", target=result.target, old=result.old, new=result.new)
        else:
            self.log.record("land_refused", reason=result.reason, commands=list(result.commands))

    def _check_loop(self) -> None:
        """The anti-loop guard, after every step (swarm-iosm's rules: see runner.escapes)."""
        if self.state.status != "running":
            return
        self._guard = self._guard.observe(escapes.progress_of(self.state))
        reason = escapes.check_loop(self._guard, spawn_refused_by_budget=self.state.budget_refused)
        if reason is not None:
            for action in stop_actions(self.state, reason=reason, kill=False):
                self.execute(action)
