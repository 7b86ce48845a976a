"""Create, open and drive runs: everything ``swarm run``/``resume``/``status`` share.

A run is created completely or not at all: if any step fails, what was made so far (run
directory, integration worktree and branch) is removed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pathlib
import secrets
import shutil
import time
import typing as t
from datetime import UTC, datetime

from agentmail.store import MailStore
from protocol.messages import GuidanceFields, MessageType, TerminateFields
from protocol.plan import Plan
from protocol.state import AutoSpawn, CommitPolicy, Event, RunMode, RunSettings, RunState
from runner import git, worktrees
from runner.actions import HUMAN, MAYOR, RESERVED_AGENTS, Kill, Record
from runner.decide import stop_actions
from runner.errors import RunFailed, UsageError
from runner.mayor import Mayor, MayorConfig
from runner.paths import SwarmPaths, default_worktree_root, tmux_socket_name
from runner.sessions import ProcessBackend, SessionBackend, SessionSpec, TmuxBackend, session_name
from runner.state import (
    RunLog,
    apply,
    exclusive_lock,
    load_state,
    lock_held,
    write_json_atomic,
)

logger = logging.getLogger(__name__)

Mode = RunMode
INTEGRATION_DIR: t.Final = "_integration"  # task ids start with a letter or digit: no clash


@dataclasses.dataclass(frozen=True)
class RunOptions:
    mode: Mode = "distributed"
    max_workers: int | None = None
    agent: str | None = None
    agent_cmd: str | None = None
    waves: bool = False
    keep_sessions: bool = False
    run_id: str | None = None
    base: str | None = None
    worktree_root: pathlib.Path | None = None
    tmux_socket: str | None = None
    timeout: float | None = None
    stall_after: float | None = None
    auto_spawn: AutoSpawn = "safe"
    squash: bool = False
    per_task_commits: bool = False
    land: bool = False


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def create_run(repo: pathlib.Path, plan: Plan, options: RunOptions) -> RunLog:
    """Validate the run's preconditions and create it: run dir, plan.json, integration
    worktree on ``swarm/<run-id>/integration``, and the ``run_created`` event."""
    swarm = SwarmPaths.for_repo(repo)
    clash = sorted(RESERVED_AGENTS & {task.id for task in plan.tasks})
    if clash:
        raise UsageError(f"task id {clash[0]!r} is reserved for the mailbox; rename the task")
    base_ref = options.base or plan.base or "HEAD"
    base_sha = git.resolve(repo, base_ref)
    if base_sha is None:
        raise UsageError(f"base {base_ref!r} is not a commit in {repo}; use --base REF")
    settings = RunSettings(
        mode=options.mode,
        max_workers=options.max_workers or plan.max_workers or 5,
        waves=options.waves,
        keep_sessions=options.keep_sessions,
        agent=options.agent or plan.agent or "scripted",
        agent_cmd=options.agent_cmd,
        deadline=time.time() + options.timeout if options.timeout else None,
        stall_after=options.stall_after or RunSettings.model_fields["stall_after"].default,
        auto_spawn=options.auto_spawn,
        commit_policy=_commit_policy(options),
        land=options.land,
    )
    run_id = options.run_id or new_run_id()
    run = swarm.run(run_id)
    if run.dir.exists():
        raise UsageError(f"run {run_id!r} already exists in {swarm.runs}; pick another --run-id")
    root = (options.worktree_root or default_worktree_root(repo)).resolve()
    integration = root / run_id / INTEGRATION_DIR
    branch = f"swarm/{run_id}/integration"
    worktrees.ensure_excluded(repo)
    run.dir.mkdir(parents=True)
    try:
        write_json_atomic(run.plan, plan.model_dump_json(indent=1))
        worktrees.ensure_integration_worktree(repo, integration, branch, base_sha)
        store = MailStore(swarm.mail)
        for agent in (MAYOR, HUMAN):
            store.register(agent)
        log = RunLog(run.events, run.state)
        log.record(
            "run_created",
            run_id=run_id,
            tasks=[task.id for task in plan.tasks],
            done=[task.id for task in plan.tasks if task.status == "done"],
            plan_name=plan.name,
            plan_digest=plan_digest(plan),
            repo=str(repo),
            base_sha=base_sha,
            target_branch=plan.target or git.current_branch(repo),
            integration_branch=branch,
            integration_worktree=str(integration),
            integration_head=base_sha,
            worktree_root=str(root),
            tmux_socket=(options.tmux_socket or tmux_socket_name(repo))
            if options.mode == "distributed"
            else None,
            **settings.model_dump(),
        )
    except BaseException:
        shutil.rmtree(run.dir, ignore_errors=True)
        try:
            worktrees.remove_worktree(repo, integration, delete_branch=branch, force=True)
        except Exception:
            logger.warning("could not roll back the integration worktree %s", integration)
        raise
    return log


def _commit_policy(options: RunOptions) -> CommitPolicy:
    if options.per_task_commits:
        return "per-task"
    if options.squash:
        return "squash"
    return "wave" if options.waves else "merge"  # agentops commits per wave under --waves


def list_runs(repo: pathlib.Path) -> list[str]:
    """Run ids of the repository, oldest first (ids start with their creation time)."""
    runs = SwarmPaths.for_repo(repo).runs
    if not runs.is_dir():
        return []
    found = [p for p in runs.iterdir() if (p / "events.jsonl").exists()]
    found.sort(key=lambda p: ((p / "events.jsonl").stat().st_ctime, p.name))
    return [p.name for p in found]


def resolve_run(repo: pathlib.Path, run_id: str | None) -> str:
    """``run_id`` if given and known, else the latest run; UsageError naming the fix."""
    runs = list_runs(repo)
    if run_id is None:
        if not runs:
            raise UsageError(f"no runs in {repo}; start one with `swarm run PLAN`")
        return runs[-1]
    if run_id not in runs:
        raise UsageError(f"no run {run_id!r} in {repo}; `swarm status` lists the latest run")
    return run_id


def read_state(repo: pathlib.Path, run_id: str) -> RunState:
    return load_state(SwarmPaths.for_repo(repo).run(run_id).state)


def load_run_plan(repo: pathlib.Path, run_id: str) -> Plan:
    return Plan.model_validate_json(SwarmPaths.for_repo(repo).run(run_id).plan.read_bytes())


def plan_digest(plan: Plan) -> str:
    """What ``run_created`` records of the plan, so a plan edited behind the run is refused."""
    return hashlib.sha256(plan.model_dump_json().encode()).hexdigest()


def verified_plan(repo: pathlib.Path, state: RunState) -> Plan:
    """The run's plan as created: ``plan.json`` without the tasks the run spawned (the mayor
    takes those from their events), checked against the digest ``run_created`` recorded."""
    path = SwarmPaths.for_repo(repo).run(state.run_id).plan
    plan = load_run_plan(repo, state.run_id)
    spawned = {rec.spawned for rec in state.escapes if rec.spawned}
    base = plan.model_copy(update={"tasks": tuple(t for t in plan.tasks if t.id not in spawned)})
    if state.plan_digest and plan_digest(base) != state.plan_digest:
        raise RunFailed(
            f"{path} changed since the run was created (a worker may have edited it); "
            "refusing to go on with it: restore it, or start a new run with `swarm run`"
        )
    return base


def make_backend(state: RunState, notify_dir: pathlib.Path) -> SessionBackend:
    if state.mode == "local":
        return ProcessBackend()
    if state.tmux_socket is None:
        raise RunFailed(f"run {state.run_id} has no tmux socket recorded")
    if shutil.which("tmux") is None:
        raise RunFailed("tmux is not on PATH; install tmux or use --mode=local")
    notify_dir.mkdir(parents=True, exist_ok=True)
    return TmuxBackend(state.tmux_socket, notify_dir=notify_dir)


def mayor_running(repo: pathlib.Path, run_id: str) -> bool:
    """Does a live mayor hold the run's lock?"""
    return lock_held(SwarmPaths.for_repo(repo).run(run_id).lock)


def drive(
    repo: pathlib.Path,
    run_id: str,
    *,
    poll_interval: float = 2.0,
    resume: bool = False,
    listener: t.Callable[[Event, RunState], None] | None = None,
) -> RunState:
    """Be the run's mayor until it ends (held by the run's lock: one mayor per run).

    A run that already ended is returned as it is, unless ``resume`` restarts a stopped one
    (its ``--timeout`` deadline is dropped)."""
    swarm = SwarmPaths.for_repo(repo)
    run = swarm.run(run_id)
    with exclusive_lock(run.lock) as held:
        if not held:
            raise RunFailed(f"run {run_id} already has a live mayor (lock {run.lock})")
        log = RunLog.open(run.events, run.state, listener=listener)
        if log.state.status != "running":
            if not (resume and log.state.status == "stopped"):
                return log.state
            log.record("run_resumed", pid=os.getpid())
        plan = verified_plan(repo, log.state)
        backend = make_backend(log.state, run.dir / "notify")
        try:
            mayor = Mayor(
                MayorConfig(repo=repo, swarm=swarm, run=run, poll_interval=poll_interval),
                plan=plan,
                log=log,
                store=MailStore(swarm.mail),
                backend=backend,
            )
            return mayor.run()
        finally:
            backend.close()


def mayor_session(state: RunState) -> str:
    return session_name(state.run_id, "mayor")


def start_mayor_session(repo: pathlib.Path, state: RunState, python: str) -> str:
    """Start the run's mayor inside its private tmux server (session ``swarm-<run>-mayor``), so
    a closed terminal, Ctrl-C or SIGHUP of whoever follows the run cannot stop it."""
    run = SwarmPaths.for_repo(repo).run(state.run_id)
    backend = make_backend(state, run.dir / "notify")
    name = mayor_session(state)
    try:
        backend.start(
            SessionSpec(
                name=name,
                argv=(python, "-m", "runner", "mayor", state.run_id, "--repo", str(repo)),
                cwd=repo,
                env={"PYTHONUNBUFFERED": "1"},
                log_path=run.dir / "mayor.pane.log",
            )
        )
    finally:
        backend.close()
    return name


def follow(
    repo: pathlib.Path,
    run_id: str,
    *,
    listener: t.Callable[[Event, RunState], None] | None = None,
    mayor_alive: t.Callable[[], bool],
    poll: float = 0.2,
) -> RunState:
    """Follow a run driven by another process: replay its events to ``listener`` until the run
    ends. Raises RunFailed when the mayor went away without ending the run."""
    run = SwarmPaths.for_repo(repo).run(run_id)
    state: RunState | None = None
    offset = 0
    missing_since: float | None = None
    while True:
        with run.events.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # only whole lines; a torn tail is read next time
        for line in chunk[:end].splitlines():
            if line.strip():
                event = Event.model_validate_json(line)
                state = apply(state, event)
                if listener is not None:
                    listener(event, state)
        offset += end
        if state is not None and state.status != "running":
            return state
        if mayor_alive():
            missing_since = None
        else:
            missing_since = missing_since or time.monotonic()
            if time.monotonic() - missing_since > 3.0:  # a start-up grace period
                pane_log = run.dir / "mayor.pane.log"
                last = _last_line(pane_log)
                raise RunFailed(
                    f"the mayor of run {run_id} exited without ending the run"
                    + (f" ({last})" if last else "")
                    + f"; see {pane_log} and continue with: swarm resume {run_id}"
                )
        time.sleep(poll)


def _last_line(path: pathlib.Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


StopOutcome = t.Literal["stopped", "asked", "ended"]


def stop_run(repo: pathlib.Path, run_id: str, *, kill: bool) -> StopOutcome:
    """Stop a run the one way a mayor does (:func:`runner.decide.stop_actions`): mail its live
    mayor a TERMINATE ("asked"), or, with no mayor alive, record the stop here ("stopped");
    "ended" when the run had already ended."""
    swarm = SwarmPaths.for_repo(repo)
    paths = swarm.run(run_id)
    with exclusive_lock(paths.lock) as no_mayor:
        if no_mayor:  # nobody drives the run: stop it ourselves
            log = RunLog.open(paths.events, paths.state)
            if log.state.status != "running":
                return "ended"
            backend = make_backend(log.state, paths.dir / "notify")
            try:
                with log.batch():
                    for action in stop_actions(log.state, reason=STOP_REASON, kill=kill):
                        if isinstance(action, Record):
                            log.record(action.ev.kind, action.ev.task_id, **action.ev.data)
                        elif isinstance(action, Kill):
                            backend.kill(action.session)
            finally:
                backend.close()
            return "stopped"
    mail_mayor(repo, run_id, MessageType.TERMINATE, TerminateFields(text=STOP_REASON, kill=kill))
    return "asked"


STOP_REASON: t.Final = "stopped by swarm stop"


def unpause_run(repo: pathlib.Path, run_id: str) -> None:
    """Ask the run's mayor to resume dispatch after a critical scope escape paused it."""
    if not read_state(repo, run_id).paused:
        raise UsageError(f"run {run_id} is not paused")
    fields = GuidanceFields(text="resume dispatch", signal="resume-dispatch")
    mail_mayor(repo, run_id, MessageType.GUIDANCE, fields)


def mail_mayor(
    repo: pathlib.Path, run_id: str, mtype: MessageType, fields: GuidanceFields | TerminateFields
) -> None:
    """A message from the human to the run's mayor."""
    from protocol.messages import Envelope

    MailStore(SwarmPaths.for_repo(repo).mail).send(
        Envelope.model_validate(
            {
                "from": HUMAN,
                "to": [MAYOR],
                "type": mtype,
                "run_id": run_id,
                "subject": f"{mtype.value}",
                "fields": fields,
            }
        )
    )
