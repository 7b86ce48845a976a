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

from agentmail.fs import exclusive_lock, lock_held, write_text_atomic
from agentmail.store import MailStore
from protocol.hosts import LOCAL, HostSpec
from protocol.ids import HUMAN, MAYOR
from protocol.plan import Isolation, Plan
from protocol.state import AutoSpawn, CommitPolicy, Event, RunMode, RunSettings, RunState
from runner import git, gitguard, sandbox, status_view, why, worktrees
from runner.errors import RunFailed, UsageError
from runner.events import EventTail, read_events
from runner.land import LandResult
from runner.paths import SwarmPaths, default_worktree_root, tmux_socket_name
from runner.report import render_report
from runner.sessions.base import SessionBackend, SessionExists, SessionSpec, session_name
from runner.state import RunLog, apply, current_state, load_state, rebuild

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
    keep_sessions: bool | None = None
    """None: not given (the config file's, else False)."""
    run_id: str | None = None
    base: str | None = None
    worktree_root: pathlib.Path | None = None
    tmux_socket: str | None = None
    timeout: float | None = None
    stall_after: float | None = None
    auto_spawn: AutoSpawn | None = None
    """None: not given (the config file's, else ``safe``)."""
    squash: bool = False
    per_task_commits: bool = False
    land: bool = False
    isolation: Isolation | None = None
    """None: not given (the plan's, else the config file's, else ``worktree``)."""
    network: bool | None = None
    """None: not given (the config file's, else on)."""
    agent_permissions: t.Literal["worktree", "full"] | None = None
    trust_worktrees: bool | None = None
    """None: not given (the config file's)."""
    hosts: tuple[str, ...] | None = None
    """``--hosts a,b``: the hosts to use by name (None: not given: ``local`` and every host
    of the config file)."""
    host_specs: tuple[HostSpec, ...] = ()
    """The chosen hosts (filled by :func:`configure`); empty: this machine only."""


PLAN_NAMES: t.Final = ("plan.yaml", "plan.yml", "swarm.yaml", "swarm.yml", "plan.json")
BEADS_EXPORT: t.Final = pathlib.Path(".beads") / "issues.jsonl"


def find_plan(repo: pathlib.Path, *, beads: bool = False) -> pathlib.Path:
    """The plan of a command line that names none, as an agentops user expects: a plan file in
    the repository, else beads' export (first with ``beads``: ``--bead-ids`` was given);
    UsageError saying what was looked for."""
    names = (BEADS_EXPORT, *PLAN_NAMES) if beads else (*PLAN_NAMES, BEADS_EXPORT)
    for name in names:
        path = repo / name
        if path.is_file():
            logger.info("found the plan %s", path)
            return path
    looked = ", ".join([*PLAN_NAMES, str(BEADS_EXPORT)])
    raise UsageError(
        f"no plan given and none found in {repo} (looked for {looked}); "
        "name one: swarm run PLAN (or --from-wave FILE, or --bead-ids A,B with a beads export)"
    )


def load_plan(source: pathlib.Path, *, wave: bool = False, bead_ids: t.Sequence[str] = ()) -> Plan:
    """The plan in ``source`` (any format the importers know; an OL wave JSON with ``wave``),
    checking that ``ol`` is on PATH when the plan needs it."""
    from runner.plan.importers import load_any_plan, needs_ol, require_ol

    plan = load_any_plan(source, fmt="ol-wave" if wave else None, bead_ids=list(bead_ids))
    if needs_ol(plan):
        require_ol()
    return plan


def configure(repo: pathlib.Path, plan: Plan, options: RunOptions) -> tuple[Plan, RunOptions]:
    """Fill what ``options`` leaves unset from the plan and the repository's config file.

    Precedence: command-line flag (``options``) > plan > config file > default. The config's
    gates and budgets join the plan when the plan has none of its own."""
    from runner.config import load_config

    cfg = load_config(repo)
    if cfg.gates and "gates" not in plan.model_fields_set:
        plan = plan.model_copy(update={"gates": cfg.gates})
    if cfg.budgets is not None and "budgets" not in plan.model_fields_set:
        plan = plan.model_copy(update={"budgets": cfg.budgets})
    if cfg.setup and "setup" not in plan.model_fields_set:
        plan = plan.model_copy(update={"setup": cfg.setup})
    keep_sessions = options.keep_sessions
    max_workers = options.max_workers or plan.max_workers or cfg.max_workers
    isolation = options.isolation or plan.isolation or cfg.isolation or "worktree"
    hosts = select_hosts(cfg.hosts, options.hosts, local_slots=max_workers or 5)
    if any(host.remote for host in hosts):
        if isolation == "sandbox":
            raise UsageError(
                "--isolation sandbox does not work with remote hosts yet; "
                "use --isolation clone, or leave the remote hosts out (--hosts local)"
            )
        isolation = "clone"  # a remote worker is a clone; its mirror here is one too
        max_workers = options.max_workers or sum(host.slots for host in hosts)
    else:
        hosts = ()
    return plan, dataclasses.replace(
        options,
        host_specs=hosts,
        max_workers=max_workers,
        agent=options.agent or plan.agent or cfg.agent,
        agent_cmd=options.agent_cmd or cfg.agent_cmd,
        keep_sessions=next(v for v in (keep_sessions, cfg.keep_sessions, False) if v is not None),
        worktree_root=options.worktree_root or cfg.worktree_root,
        tmux_socket=options.tmux_socket or cfg.tmux_socket,
        stall_after=options.stall_after or cfg.stall_after,
        auto_spawn=options.auto_spawn or cfg.auto_spawn or "safe",
        isolation=isolation,
        network=next(v for v in (options.network, cfg.network, True) if v is not None),
        agent_permissions=options.agent_permissions or cfg.agent_permissions,
        trust_worktrees=next(
            (v for v in (options.trust_worktrees, cfg.trust_worktrees) if v is not None), None
        ),
    )


def select_hosts(
    configured: t.Sequence[HostSpec], names: t.Sequence[str] | None, *, local_slots: int
) -> tuple[HostSpec, ...]:
    """The hosts of a run: those ``names`` (``--hosts``) picks from the config, else ``local``
    and every configured host. ``local`` needs no entry (its slots: ``local_slots``);
    UsageError naming an unknown host."""
    known = {host.name: host for host in configured}
    known.setdefault(LOCAL, HostSpec(name=LOCAL, slots=local_slots))
    if names is None:
        names = [LOCAL, *(n for n in known if n != LOCAL)]
    chosen = []
    for name in dict.fromkeys(names):
        if name not in known:
            listed = ", ".join(sorted(known))
            raise UsageError(
                f"--hosts: no host {name!r} in the config (hosts: {listed}); "
                "add it as [[tool.swarm.hosts]] (docs/hosts.md)"
            )
        chosen.append(known[name])
    if not chosen:
        raise UsageError("--hosts: name at least one host, e.g. --hosts local,build1")
    return tuple(chosen)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def create_run(repo: pathlib.Path, plan: Plan, options: RunOptions) -> RunLog:
    """Validate the run's preconditions and create it: run dir, plan.json, integration
    worktree on ``swarm/<run-id>/integration``, and the ``run_created`` event."""
    swarm = SwarmPaths.for_repo(repo)
    base_ref = options.base or plan.base or "HEAD"
    base_sha = git.resolve(repo, base_ref)
    if base_sha is None:
        if base_ref == "HEAD":
            raise UsageError(f"{repo} has no commit yet: commit something first (git commit)")
        raise UsageError(f"base {base_ref!r} is not a commit in {repo}; use --base REF")
    settings = RunSettings(
        mode=options.mode,
        max_workers=options.max_workers or plan.max_workers or 5,
        waves=options.waves,
        keep_sessions=bool(options.keep_sessions),
        agent=options.agent or plan.agent or "scripted",
        agent_cmd=options.agent_cmd,
        deadline=time.time() + options.timeout if options.timeout else None,
        stall_after=options.stall_after or RunSettings.model_fields["stall_after"].default,
        auto_spawn=options.auto_spawn or "safe",
        commit_policy=_commit_policy(options),
        land=options.land,
        isolation=options.isolation or plan.isolation or "worktree",
        network=options.network is not False,
        agent_permissions=options.agent_permissions,
        trust_worktrees=options.trust_worktrees,
        hosts=options.host_specs,
    )
    if settings.isolation == "sandbox":
        sandbox.require_bwrap()  # before anything is created: one line naming the install
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
        write_text_atomic(run.plan, plan.model_dump_json(indent=1))
        worktrees.ensure_integration_worktree(repo, integration, branch, base_sha)
        store = MailStore(swarm.mail)
        for agent in (MAYOR, HUMAN):
            store.register(agent)
        log = RunLog(run.events, run.state)
        target = plan.target or git.current_branch(repo)
        log.record(
            "run_created",
            run_id=run_id,
            tasks=[task.id for task in plan.tasks],
            done=[task.id for task in plan.tasks if task.status == "done"],
            plan_name=plan.name,
            plan_digest=plan_digest(plan),
            repo=str(repo),
            base_sha=base_sha,
            target_branch=target,
            target_head=git.resolve(repo, f"refs/heads/{target}") if target else None,
            repo_fingerprint=gitguard.repo_fingerprint(repo),
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
    """Run ids of the repository, oldest first (:func:`runner.status_view.list_runs`)."""
    return status_view.list_runs(repo)


def resolve_run(repo: pathlib.Path, run_id: str | None) -> str:
    """``run_id`` if given and known, else the latest run; UsageError naming the fix."""
    return status_view.resolve_run(repo, run_id)


def read_state(repo: pathlib.Path, run_id: str, *, from_events: bool = False) -> RunState:
    """The run's state: the fold of its events read through the snapshot (the events after it
    replayed), or with ``from_events`` the fold of every event from the first."""
    run = SwarmPaths.for_repo(repo).run(run_id)
    if from_events:
        return rebuild(read_events(run.events))
    if not run.events.exists():
        return load_state(run.state)  # UsageError naming the missing run state
    return current_state(run.events, run.state)  # the snapshot plus the events after it


def report_text(repo: pathlib.Path, state: RunState) -> str:
    """The run's report: :func:`runner.report.render_report` and, when something was refused,
    why (the failing checks' last output lines, :func:`runner.why.markdown`)."""
    run = SwarmPaths.for_repo(repo).run(state.run_id)
    events = read_events(run.events) if state.status == "failed" else []
    section = why.markdown(run, state, events)
    report = render_report(state)
    return f"{report}\n\n{section}".rstrip() if section else report


def save_report(repo: pathlib.Path, state: RunState) -> str:
    """Render the final report of the run and save it as ``report.md``; return it."""
    report = report_text(repo, state)
    write_text_atomic(SwarmPaths.for_repo(repo).run(state.run_id).report, report + "\n")
    return report


def record_landed(repo: pathlib.Path, run_id: str, result: LandResult) -> None:
    """Record ``swarm land``'s fast-forward in the run (``run_landed``, as ``--land`` does), so
    its report and ``swarm runs`` say it; skipped when a mayor holds the run (it records its own
    events only)."""
    run = SwarmPaths.for_repo(repo).run(run_id)
    with exclusive_lock(run.lock) as free:
        if free:
            RunLog.open(run.events, run.state).record(
                "run_landed", target=result.target, old=result.old, new=result.new
            )


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
    # imported here: reading commands (status, report, runs) never pay for libtmux
    from runner.sessions.process import ProcessBackend
    from runner.sessions.tmux import TmuxBackend

    if state.mode == "local":
        local: SessionBackend = ProcessBackend()
    else:
        if state.tmux_socket is None:
            raise RunFailed(f"run {state.run_id} has no tmux socket recorded")
        if shutil.which("tmux") is None:
            raise RunFailed("tmux is not on PATH; install tmux or use --mode=local")
        notify_dir.mkdir(parents=True, exist_ok=True)
        local = TmuxBackend(state.tmux_socket, notify_dir=notify_dir)
    if any(host.remote for host in state.hosts):  # workers on other hosts (docs/hosts.md)
        from runner.hosts.remote import HostsBackend

        return HostsBackend.for_state(state, local)
    return local


def mayor_missing(repo: pathlib.Path, state: RunState) -> str | None:
    """For a run that says ``running`` with no live mayor (killed, or its machine rebooted):
    the line that says so and what to do; None when the run ended or its mayor is alive."""
    run = SwarmPaths.for_repo(repo).run(state.run_id)
    return status_view.mayor_missing(run, state.run_id, state.status)


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
        from runner.mayor import Mayor, MayorConfig  # the mayor's whole world, only for it

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
    spec = SessionSpec(
        name=name,
        argv=(python, "-m", "runner", "mayor", state.run_id, "--repo", str(repo)),
        cwd=repo,
        env={"PYTHONUNBUFFERED": "1"},
        log_path=run.dir / "mayor.pane.log",
    )
    try:
        try:
            backend.start(spec)
        except SessionExists:
            if lock_held(run.lock):
                raise
            # the last mayor let go of the run and is on its way out (writing its report):
            # give it a moment, then end it
            deadline = time.monotonic() + MAYOR_EXIT_GRACE
            while backend.status(name).alive and time.monotonic() < deadline:
                time.sleep(0.05)
            backend.kill(name)
            backend.start(spec)
    finally:
        backend.close()
    return name


MAYOR_EXIT_GRACE: t.Final = 10.0
"""How long a mayor that released its run may take to exit before a new one replaces it."""


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
    tail = EventTail(run.events)
    missing_since: float | None = None
    while True:
        for event in tail.read().events:
            state = apply(state, event)
            if listener is not None:
                listener(event, state)
        if state is not None and state.status != "running":
            # the mayor tidies up after recording the end (sessions, trust): return once it let
            # go of the run, so a `swarm clean` or `swarm retry` typed next is not refused
            deadline = time.monotonic() + MAYOR_EXIT_GRACE
            while lock_held(run.lock) and time.monotonic() < deadline:
                time.sleep(0.05)
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


def follow_session(
    repo: pathlib.Path,
    state: RunState,
    session: str,
    *,
    listener: t.Callable[[Event, RunState], None] | None = None,
) -> RunState:
    """:func:`follow` a run whose mayor runs in tmux session ``session`` (alive while its pane
    is)."""
    backend = make_backend(state, SwarmPaths.for_repo(repo).run(state.run_id).dir / "notify")
    try:
        return follow(
            repo, state.run_id, listener=listener, mayor_alive=lambda: backend.status(session).alive
        )
    finally:
        backend.close()


def _last_line(path: pathlib.Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""
