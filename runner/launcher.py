"""The launcher: start (or restart) a task's worker — worktree, brief, the worker's mail, its
tmux session, the lease on its manifest. It records ``task_dispatched`` before it acts and
``task_crashed``/``task_failed`` when the start fails, so a crash at any point loses nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import sys
import typing as t
from concurrent import futures

from agentmail.errors import AgentMailError
from agentmail.leases import Leases
from agentmail.store import MailStore
from agentmail.worker_env import WorkerEnv
from protocol.messages import AssignFields, GuidanceFields, RetryRequiredFields, TextFields
from protocol.messages import MessageType as M
from protocol.plan import Task
from protocol.state import TERMINAL_TASK_STATES, RunState, TaskRecord
from runner import checks, git, proc, sandbox, why, worktrees
from runner.actions import FIXUP_REFUSALS, HUMAN, MAYOR, task_branch, worker_name
from runner.agents import codex
from runner.agents import worker as agent_worker
from runner.agents.adapter import BRIEF_NAME, AgentSetupError
from runner.agents.presets import AgentPreset, command_preset, preset
from runner.agents.registry import adapter_for
from runner.brief import BriefContext, render_brief
from runner.config import SwarmConfig, preset_from_config
from runner.errors import CommandError, RunnerError
from runner.hosts import placement
from runner.outbox import Outbox
from runner.paths import RunPaths, SwarmPaths, worktree_dir
from runner.sessions import SessionBackend, SessionExists, SessionSpec, session_name
from runner.state import RunLog

if t.TYPE_CHECKING:
    from runner.hosts.remote import HostsBackend

logger = logging.getLogger(__name__)

LEASE_TTL: t.Final = 24 * 3600.0
MAYOR_WRITES: t.Final = (BRIEF_NAME, codex.RULES)
"""Files the mayor writes into a worker's checkout (the brief, the Codex rules)."""
SETUP_TIMEOUT: t.Final = 1800.0
"""Seconds one ``setup`` command may take (installing dependencies can be slow)."""


def task_worktree(state: RunState, task_id: str) -> pathlib.Path:
    """Where a task's checkout is: ``<worktree-root>/<run-id>/<task-id>``."""
    return worktree_dir(pathlib.Path(state.worktree_root), state.run_id, task_id)


@dataclasses.dataclass(frozen=True)
class WorkerStart:
    """Where a task's attempt runs and from which commit (pure: from the run state)."""

    task: Task
    attempt: int
    resumed: bool
    branch: str
    worktree: pathlib.Path
    session: str
    base: str
    rebase_onto: str | None
    fixup: bool

    @classmethod
    def plan(cls, state: RunState, task: Task, attempt: int, *, resumed: bool) -> WorkerStart:
        record = state.tasks[task.id]
        again = attempt > 1 or resumed
        conflicted = record.state == "rework" and record.refusal == "conflict"
        return cls(
            task=task,
            attempt=attempt,
            resumed=resumed,
            branch=task_branch(state.run_id, task.id),
            worktree=task_worktree(state, task.id),
            session=session_name(state.run_id, task.id),
            base=record.base_sha if again and record.base_sha else state.integration_head,
            rebase_onto=state.integration_head if conflicted else None,
            fixup=record.state == "rework" and record.refusal in FIXUP_REFUSALS,
        )


def worker_environ(
    swarm: SwarmPaths,
    run_id: str,
    start: WorkerStart,
    key_file: pathlib.Path,
    brief: pathlib.Path,
    python: str,
) -> dict[str, str]:
    """The environment of a worker pane (DESIGN.md "Worker environment")."""
    env = WorkerEnv(
        home=swarm.home,
        run=run_id,
        task=start.task.id,
        worker=worker_name(start.task.id),
        mayor=MAYOR,
        key_file=key_file,
        brief=brief,
        worktree=start.worktree,
        attempt=start.attempt,
    ).to_environ()
    env["SWARM_BASE"] = start.base
    if start.rebase_onto:
        env["SWARM_REBASE_ONTO"] = start.rebase_onto
    # a folder holding only `swarm` first, never swarm's whole venv (runner.agents.worker)
    env["PATH"] = agent_worker.agent_path(swarm.home, python)
    return env


class Launcher:
    def __init__(
        self,
        *,
        repo: pathlib.Path,
        swarm: SwarmPaths,
        run: RunPaths,
        log: RunLog,
        store: MailStore,
        backend: SessionBackend,
        outbox: Outbox,
        settings: SwarmConfig,
        case_sensitive: bool,
        setup: t.Sequence[str] = (),
        python: str = sys.executable,
        hosts: HostsBackend | None = None,
    ) -> None:
        self.repo = repo
        self.hosts = hosts
        self.swarm = swarm
        self.run = run
        self.log = log
        self.store = store
        self.backend = backend
        self.outbox = outbox
        self.settings = settings
        self.python = python
        self.setup = tuple(setup)
        self.leases = Leases(store.root, case_sensitive=case_sensitive)
        self._leased: set[str] = set()
        self._git_identity: t.Mapping[str, str] | None = None
        self._bwrap: str | None = None
        self._staged = self._found_staged()
        state = log.state
        self.preset = (
            command_preset(state.agent_cmd) if state.agent_cmd else self._named(state.agent)
        )

    def start(self, task: Task, attempt: int, *, resumed: bool = False) -> None:
        """Start (or restart) a worker: worktree, brief, ASSIGN/RETRY mail, session.

        ``resumed``: the same attempt again after its session was lost (no mayor was running);
        the brief lists what the worktree already holds and the agent's resume flag is used."""
        state = self.log.state
        record = state.tasks[task.id]
        start = WorkerStart.plan(state, task, attempt, resumed=resumed)
        down = self.hosts.down() if self.hosts is not None else ()
        self.log.record(
            "task_dispatched",
            task.id,
            attempt=attempt,
            host=placement.place(state, task.id, down=down),  # "" without --hosts
            session=start.session,
            branch=start.branch,
            worktree=str(start.worktree),
            base_sha=start.base,
            fixup=start.fixup,
            resumed=resumed,
        )
        try:
            self._start(start, record)
        except (RunnerError, OSError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # an agent that could only stop at a dialog is not started again (its reason says
            # what to do once)
            fatal = isinstance(exc, AgentSetupError) or (
                isinstance(exc, CommandError) and exc.returncode == 127
            )
            self.log.record(
                "task_failed" if fatal else "task_crashed",
                task.id,
                reason=f"could not start the worker: {reason}",
                exit_status=getattr(exc, "returncode", None),
            )
            return
        if task.needs_user_input and attempt == 1:
            text = f"Task {task.id} needs your input: swarm attach {task.id}"
            self.outbox.mail(
                HUMAN, M.GUIDANCE, task.id, GuidanceFields(text=text), importance="high"
            )

    def _start(self, start: WorkerStart, record: TaskRecord) -> None:
        task = start.task
        isolation = self.log.state.isolation
        # a worktree staged for a task that never started (a started one's is the worker's)
        staged = self._staged.pop(task.id, False) and not record.worktree
        if start.resumed:  # the brief lists what the checkout holds: it comes first
            self._checkout(start, staged)
            key_file, brief = self._key_brief_mail(start, record)
        else:  # the checkout (git's time) while the key, brief and mail are made durable
            with futures.ThreadPoolExecutor(1, thread_name_prefix="swarm-checkout") as pool:
                made = pool.submit(self._checkout, start, staged)
                try:
                    key_file, brief = self._key_brief_mail(start, record)
                finally:
                    made.result()  # its error first: it says why the worker cannot start
        if isolation != "worktree":  # what the mayor writes into the clone, never via a link
            worktrees.drop_planted_links(start.worktree, MAYOR_WRITES)
        host = self.log.state.tasks[task.id].host
        remote = self.hosts.remote(host) if self.hosts is not None else None
        prepared = agent_worker.prepare_worker(
            preset=self._preset_on(task, host),
            task=task,
            repo=self.repo,
            worktree=start.worktree,
            brief=brief,
            swarm_home=self.swarm.home,
            python=self.python,
            options=agent_worker.options_from(self.log.state, self.settings),
            resume=start.resumed,
            identity=self._identity(),
            as_root=False if isolation == "sandbox" else None,  # runner.sandbox.sandbox_uid
        )
        if isolation != "worktree":  # the agents' files the preparation excluded, too
            worktrees.sync_excludes(self.repo, start.worktree)
        argv = prepared.argv
        wrap: checks.Wrap | None = None  # where the setup commands run: where the agent does
        if isolation == "sandbox":
            box = self._sandbox(task, start.worktree, key_file, brief, argv[0])
            box.box.prepare(box.home)  # made afresh at each start
            argv, wrap = box.argv(argv), box.argv
        env = worker_environ(self.swarm, self.log.state.run_id, start, key_file, brief, self.python)
        env.update(prepared.env)  # the brief in the worktree, git identity, the CLI's needs
        spec = SessionSpec(
            name=start.session,
            argv=argv,
            cwd=start.worktree,
            env=env,
            log_path=self.run.pane_log(task.id),
        )
        if remote is not None:  # the clone, setup and session on that host
            from runner.hosts.remote import WorkerJob

            assert self.hosts is not None
            job = WorkerJob(
                spec=spec,
                run_id=self.log.state.run_id,
                task_id=task.id,
                branch=start.branch,
                repo=self.repo,
                mirror=start.worktree,
                swarm_home=self.swarm.home,
                key_file=key_file,
                plan=self.run.plan,
                brief=brief,
                python=self.python,
                setup=self.setup,
                ship=MAYOR_WRITES,
            )
            self.hosts.start_worker(host, job)  # in the background: the loop goes on
        else:
            self._setup(task.id, start.worktree, env, wrap)
            try:
                self.backend.start(spec)  # replaces a dead session of that name itself
            except SessionExists:  # an agent still alive after offering: start afresh
                self.backend.kill(start.session)
                self.backend.start(spec)
        self._lease(task, worker_name(task.id), start.attempt)

    def _checkout(self, start: WorkerStart, staged: bool) -> None:
        """The worker's checkout: the staged worktree on the task's branch, else made (or
        adopted) afresh."""
        if not (
            staged and worktrees.take_staged(self.repo, start.worktree, start.branch, start.base)
        ):
            state = self.log.state
            worktrees.create_checkout(
                state.isolation, self.repo, start.worktree, start.branch, start.base
            )
        self.run.staged(start.task.id).unlink(missing_ok=True)  # taken, or the worker's now

    # -- checkouts made ahead --------------------------------------------------------------

    @property
    def stages(self) -> bool:
        """Whether worktrees are made before their task can start: local worktrees only (a
        clone is the worker's own, a host makes its own), never in waves (a wave starts
        from the base its start records)."""
        state = self.log.state
        return (
            state.isolation == "worktree"
            and self.hosts is None
            and not state.waves
            and state.commit_policy != "wave"
        )

    @property
    def staged(self) -> t.KeysView[str]:
        """Tasks whose staging was done or tried and which have not started."""
        return self._staged.keys()

    def stage(self, task: Task) -> None:
        """Make ``task``'s worktree (detached at the integration head) and its mailbox while
        what it waits on still runs: its start then costs one ``git checkout`` of what the
        merges changed instead of a ``git worktree add``. Best effort: when it fails, the
        start makes the checkout as usual. The marker comes first, so a mayor killed halfway
        leaves a worktree its successor knows (and ``swarm clean`` finds it at the task's
        path)."""
        state = self.log.state
        path = task_worktree(state, task.id)
        marker = self.run.staged(task.id)
        self._staged[task.id] = False
        try:
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(f"{state.integration_head}\n")
            self.store.register(worker_name(task.id))
            worktrees.stage_worktree(self.repo, path, state.integration_head)
        except (RunnerError, OSError) as exc:
            marker.unlink(missing_ok=True)
            logger.warning("could not stage the worktree: %s", exc, extra={"task_id": task.id})
            return
        self._staged[task.id] = True

    def drop_staged(self) -> None:
        """Remove the staged worktrees of tasks that will not start (skipped, cancelled; all
        of them once the run ended). A task that ever started keeps its worktree."""
        state = self.log.state
        running = state.status == "running"
        for tid in list(self._staged):
            record = state.tasks.get(tid)
            if running and record is not None and record.state == "pending":
                continue
            del self._staged[tid]
            if record is None or not record.worktree:
                worktrees.discard_staged(self.repo, task_worktree(state, tid))
            self.run.staged(tid).unlink(missing_ok=True)

    def _found_staged(self) -> dict[str, bool]:
        """The markers an earlier mayor of this run left (``drop_staged`` sorts them out)."""
        try:
            names = sorted(marker.name for marker in self.run.staged_dir.iterdir())
        except FileNotFoundError:
            return {}
        tasks = self.log.state.tasks
        return {name: True for name in names if name in tasks}

    def _key_brief_mail(
        self, start: WorkerStart, record: TaskRecord
    ) -> tuple[pathlib.Path, pathlib.Path]:
        """The worker's key, its brief and its ASSIGN (RETRY_REQUIRED, GUIDANCE) mail: what
        must be durable before its agent starts. Nothing here reads the checkout but a
        resumed brief's history."""
        task = start.task
        history = self._history(record, start.worktree, start.base) if start.resumed else ""
        key_file = self.store.register(worker_name(task.id))
        brief = self.run.brief(task.id)
        brief.parent.mkdir(parents=True, exist_ok=True)
        retried = start.attempt > 1 and not start.resumed
        swarm = agent_worker.swarm_shim(self.swarm.home, self.python)
        brief.write_text(
            render_brief(
                BriefContext(
                    run_id=self.log.state.run_id,
                    task=task,
                    attempt=start.attempt,
                    worktree=start.worktree,
                    branch=start.branch,
                    base_sha=start.base,
                    retry_reason=record.reason if retried else "",
                    retry_files=record.files if retried else (),
                    retry_output=why.brief_quote(self.run, record) if retried else "",
                    rebase_onto=start.rebase_onto,
                    history=history,
                    swarm=str(swarm),
                )
            )
        )
        self._mail_worker(start, record, brief)
        return key_file, brief

    def _sandbox(
        self,
        task: Task,
        clone: pathlib.Path,
        key_file: pathlib.Path,
        brief: pathlib.Path,
        program: str,
    ) -> sandbox.SandboxSpec:
        if self._bwrap is None:
            self._bwrap = sandbox.require_bwrap()
        worker = worker_name(task.id)
        box = sandbox.Box.of(self.run, task.id, worker)
        home = sandbox.home_entries(self.preset_of(task).home, pathlib.Path.home(), box)
        state = self.log.state
        path = agent_worker.agent_path(self.swarm.home, self.python)
        adapter = adapter_for(self.preset_of(task).name)
        programs = dict.fromkeys([program, *((adapter.program,) if adapter else ())])
        return sandbox.SandboxSpec(
            bwrap=self._bwrap,
            box=box,
            clone=clone,
            objects=git.common_dir(self.repo) / "objects",
            inbox=self.store.maildir(worker),
            key_file=key_file,
            plan=self.run.plan,
            brief=brief,
            shim_dir=agent_worker.shim_dir(self.swarm.home),
            home=home,
            hidden=self._hidden(),
            network=state.network,
            # the command, and the CLI a wrapper runs (aider under swarm's aider_wrapper)
            code=[
                *sandbox.code_roots(),
                *(root for p in programs for root in sandbox.program_roots(p, path)),
            ],
            uid=sandbox.sandbox_uid(),
        )

    def check_wrap(self, task: Task | None) -> checks.Wrap | None:
        """Where ``task``'s validation commands run, or with None the run's gates: in a
        sandboxed run, inside its worker's sandbox, and the gates in one of their own that
        sees what a worker sees but the integration worktree for its clone (the workers'
        code never runs with more than a worker had); else None (as you, in the checkout)."""
        state = self.log.state
        if state.isolation != "sandbox":
            return None
        if task is None:
            return self._gates_sandbox().argv
        record = state.tasks.get(task.id)
        if record is None or not record.worktree:
            return None
        key_file = self.store.key_path(worker_name(task.id))
        spec = self._sandbox(
            task, pathlib.Path(record.worktree), key_file, self.run.brief(task.id), "sh"
        )
        spec.box.prepare(())  # its folders, as the worker left them or afresh (never followed)
        return spec.argv

    def _gates_sandbox(self) -> sandbox.SandboxSpec:
        if self._bwrap is None:
            self._bwrap = sandbox.require_bwrap()
        box = sandbox.Box(self.run.dir / "sandbox-gates", "gates", self.log.state.run_id)
        box.prepare(())
        return sandbox.SandboxSpec(
            bwrap=self._bwrap,
            box=box,
            clone=pathlib.Path(self.log.state.integration_worktree),
            objects=git.common_dir(self.repo),
            shim_dir=agent_worker.shim_dir(self.swarm.home),
            home=(),
            hidden=self._hidden(),
            network=self.log.state.network,
            code=sandbox.code_roots(),
            uid=sandbox.sandbox_uid(),
        )

    def _hidden(self) -> tuple[pathlib.Path, ...]:
        """What no sandbox shows, even inside a bound folder."""
        return (
            self.repo.resolve(),
            pathlib.Path(self.log.state.worktree_root),
            pathlib.Path.home(),
            self.swarm.home.resolve(),
        )

    def _setup(
        self,
        task_id: str,
        worktree: pathlib.Path,
        env: t.Mapping[str, str],
        wrap: checks.Wrap | None = None,
    ) -> None:
        """Run the plan's ``setup`` commands in the worktree, with the worker's environment
        (in a sandboxed run, inside its sandbox: a retried setup runs on the worker's files),
        once per worktree (until they all succeed); their output goes to ``setup.log``."""
        done = self.run.task_dir(task_id) / "setup.done"
        if not self.setup or done.exists():
            return
        log = self.run.setup_log(task_id)
        with log.open("a") as out:
            for command in self.setup:
                argv: t.Sequence[str] = ("sh", "-c", command)
                argv = wrap(argv) if wrap else argv
                result = proc.run(*argv, cwd=worktree, env=env, check=False, timeout=SETUP_TIMEOUT)
                code = result.returncode
                out.write(f"$ {command}\n{result.stdout}{result.stderr}[exit {code}]\n")
                if code != 0:
                    last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
                    raise RunnerError(
                        f"setup command {command!r} exited {code}: {last[0][:200]} "
                        f"(output in {log})"
                    )
        done.touch()

    def check_env(self) -> dict[str, str]:
        """The environment additions checks and gates run with: the worker's (no mail key)."""
        return agent_worker.check_environ(self.swarm.home, self.python, self._identity())

    def _identity(self) -> t.Mapping[str, str]:
        """The git identity workers commit with (read once per run), and the repository's
        excludes for the agents' files (added once)."""
        if self._git_identity is None:
            agent_worker.exclude_agent_files(self.repo)
            self._git_identity = agent_worker.git_identity(self.repo)
        return self._git_identity

    def _mail_worker(self, start: WorkerStart, record: TaskRecord, brief: pathlib.Path) -> None:
        task, worker = start.task, worker_name(start.task.id)
        if start.resumed:
            text = (
                "Your session was lost and has been restarted in the same worktree; "
                f"see the brief: {brief}"
            )
            self.outbox.mail(worker, M.GUIDANCE, task.id, TextFields(text=text))
        elif start.attempt == 1:
            assign = AssignFields(
                title=task.title,
                attempt=1,
                brief=str(brief),
                worktree=str(start.worktree),
                branch=start.branch,
                base_sha=start.base,
            )
            self.outbox.mail(worker, M.ASSIGN, task.id, assign, ack_required=True)
        else:
            retry = RetryRequiredFields(
                attempt=start.attempt,
                reason=record.reason,
                files=record.files,
                rebase_onto=start.rebase_onto or "",
            )
            self.outbox.mail(
                worker, M.RETRY_REQUIRED, task.id, retry, ack_required=True, importance="high"
            )

    def _history(self, record: TaskRecord, worktree: pathlib.Path, base: str) -> str:
        """What a restarted worker already did: its commits and its last report."""
        commits = git.log_subjects(worktree, base, "HEAD")
        lines = [f"- commit: {subject}" for subject in commits] or ["- no commits yet"]
        if not git.is_clean(worktree):
            lines.append("- uncommitted changes are in the worktree (`git status`)")
        if record.last_message:
            lines.append(f"- last report: {record.last_message}")
        return "\n".join(lines)

    # -- presets ---------------------------------------------------------------------------

    def _named(self, name: str) -> AgentPreset:
        """A custom preset of the repository's config, else a built-in one."""
        return preset_from_config(self.settings, name) or preset(name)

    def _preset_on(self, task: Task, host: str) -> AgentPreset:
        """The task's preset, or the host's ``agent`` for a task that names none."""
        spec = next((h for h in self.log.state.hosts if h.name == host), None)
        if task.agent is None and spec is not None and spec.agent:
            return self._named(spec.agent)
        return self.preset_of(task)

    def preset_of(self, task: Task) -> AgentPreset:
        if task.agent is None:
            return self.preset
        if " " not in task.agent:
            return self._named(task.agent)
        return command_preset(task.agent)

    # -- leases ----------------------------------------------------------------------------

    def _lease(self, task: Task, worker: str, attempt: int) -> None:
        """Hold a lease on a running write task's manifest, so `swarm mail leases` shows who
        holds what. Advisory: the scheduler's locks already keep manifests apart."""
        if not task.writes or not task.files:
            return
        try:
            if attempt > 1 or task.id in self._leased:  # the earlier attempt's lease
                self.leases.release(None, worker)
            self.leases.reserve(
                worker,
                task.files,
                exclusive=True,
                ttl=task.timeout or LEASE_TTL,
                reason=f"run {self.log.state.run_id} task {task.id} attempt {attempt}",
            )
        except AgentMailError as exc:
            logger.warning("could not lease the manifest: %s", exc, extra={"task_id": task.id})
        self._leased.add(task.id)

    def release_leases(self) -> None:
        """Release the leases of tasks that settled (all of them once the run ended)."""
        state = self.log.state
        running = state.status == "running"
        for tid in sorted(self._leased):
            if running and state.tasks[tid].state not in TERMINAL_TASK_STATES:
                continue
            self._leased.discard(tid)
            try:
                self.leases.release(None, worker_name(tid))
            except AgentMailError as exc:
                logger.warning("could not release a lease: %s", exc, extra={"task_id": tid})
