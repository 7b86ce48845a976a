"""``swarm run``, ``swarm resume`` and the hidden ``swarm mayor``: start or continue a run, be
its mayor or follow it (the mayor's work is :mod:`runner.launch`)."""

from __future__ import annotations

import logging
import pathlib
import shutil
import sys
import typing as t

import click

from protocol.plan import Plan, parse_duration
from protocol.state import Event, RunState
from runner import launch, preflight, why
from runner.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    echo_json,
    fail,
    find_repo,
    handle_errors,
    json_option,
    repo_option,
    run_exit_code,
    run_option,
)
from runner.paths import SwarmPaths
from runner.report import status_document


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _print_event(event: Event, state: RunState) -> None:
    """One progress line per meaningful event, on stderr (stdout stays for --json)."""
    done = sum(1 for task in state.tasks.values() if task.state == "merged")
    total = len(state.tasks)
    data = event.data
    text: t.Callable[[], str] | None = {
        "task_dispatched": lambda: f"started (attempt {data['attempt']}) in {data['session']}",
        "task_offered": lambda: "offered its work",
        "task_merged": lambda: f"merged {str(data.get('merge_sha') or '')[:12]}".rstrip(),
        "merge_refused": lambda: f"refused: {data.get('reason', '')}",
        "validation_failed": lambda: f"{data.get('reason', '')}",
        "task_crashed": lambda: f"crashed: {data.get('reason', '')}",
        "task_failed": lambda: f"FAILED: {data.get('reason', '')}",
        "task_skipped": lambda: f"skipped: {data.get('reason', '')}",
        "task_retried": lambda: "will run again (swarm retry)",
        "help_requested": lambda: f"asks for help: {data.get('text', '')}",
        "escape_reported": lambda: f"scope escape: {data.get('text', '')}",
        "final_gate_failed": lambda: f"final {data.get('reason', '')}",
        "run_finished": lambda: f"run {data['status']}: {data.get('reason', '')}",
    }.get(event.kind)
    if text is None:
        return
    who = f"{event.task_id}: " if event.task_id else ""
    click.echo(f"[{done}/{total}] {who}{text()}", err=True)
    for line in _why_lines(event, state):
        click.echo(f"    {line}", err=True)


def _why_lines(event: Event, state: RunState) -> list[str]:
    """Below a refusal: the failing check's last output lines and where the rest is."""
    found: why.Why | None = None
    if event.kind == "final_gate_failed":
        found = why.final_gate([event])
    elif event.kind in ("validation_failed", "merge_refused") and event.task_id in state.tasks:
        run = SwarmPaths.for_repo(pathlib.Path(state.repo)).run(state.run_id)
        found = why.of_task(run, state.tasks[event.task_id])
    if found is None:
        return []
    return why.text_lines(found, indent="", hint=why.logs_hint(found, state.run_id))[1:]


@click.command(name="run")
@click.argument(
    "plan_file",
    metavar="PLAN",
    required=False,
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
)
@click.option(
    "--from-wave",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="Run an OL wave JSON (needs `ol` on PATH).",
)
@click.option("--bead-ids", default=None, help="Comma-separated bead ids to take from PLAN.")
@click.option(
    "--mode",
    type=click.Choice(["distributed", "local"]),
    default="distributed",
    show_default=True,
    help="tmux sessions per worker, or plain child processes.",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=None,
    help="Concurrent workers (default: the plan's, else 5).",
)
@click.option(
    "--agent",
    default=None,
    help="Agent preset: claude, codex, aider, gemini, scripted (default: scripted).",
)
@click.option(
    "--agent-cmd",
    default=None,
    help="Agent command template with {brief}, {task}, {worktree} placeholders.",
)
@click.option(
    "--waves", is_flag=True, help="agentops wave barriers instead of continuous dispatch."
)
@click.option(
    "--keep-sessions/--no-keep-sessions",
    default=None,
    help="Keep tmux sessions of merged tasks (default: close them).",
)
@click.option("--run-id", default=None, help="Name the run (default: a timestamp).")
@click.option("--base", default=None, help="Base commit of the integration branch (default HEAD).")
@click.option(
    "--worktree-root",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Where worktrees go (default: under the XDG state dir).",
)
@click.option("--tmux-socket", default=None, help="tmux -L socket name (default swarm-<hash>).")
@click.option(
    "--timeout",
    default=None,
    callback=_duration,
    help="Stop the run after DURATION (90s, 30m, 2h); exit 4.",
)
@click.option("--wait", is_flag=True, help="Wait for the run to end (the default in this version).")
@click.option("--foreground", is_flag=True, help="Run the mayor in this process (debugging).")
@click.option("--detach", is_flag=True, help="Start the run and print its id at once.")
@click.option(
    "--stall-after",
    default=None,
    callback=_duration,
    help="NUDGE a silent worker after DURATION (default 10m); ask a human after 2x.",
)
@click.option(
    "--auto-spawn",
    type=click.Choice(["off", "safe", "all"]),
    default=None,
    help="Follow-up tasks from scope escapes (default: safe).",
)
@click.option("--squash", is_flag=True, help="Squash each task into one commit (no merge commit).")
@click.option(
    "--per-task-commits",
    is_flag=True,
    help="agentops style: one 'chore(<id>): <subject>' commit per task.",
)
@click.option(
    "--isolation",
    type=click.Choice(["worktree", "clone", "sandbox"]),
    default=None,
    help="Each worker's checkout: a git worktree (default), its own clone, or that clone "
    "in a bubblewrap sandbox (docs/isolation.md).",
)
@click.option(
    "--hosts",
    "hosts",
    default=None,
    metavar="A,B",
    help="Hosts to run workers on, by name ('local' and [[tool.swarm.hosts]] entries; "
    "default: local and every configured host; docs/hosts.md).",
)
@click.option(
    "--network/--no-network",
    default=None,
    help="Sandboxed workers reach the network (default) or have none at all.",
)
@click.option(
    "--land",
    "land_after",
    is_flag=True,
    help="Fast-forward the target branch to the result when that is safe.",
)
@click.option(
    "--allow-concurrent",
    is_flag=True,
    help="Start even while a run of the same plan is live in this repository.",
)
@click.option(
    "--agent-permissions",
    type=click.Choice(["worktree", "full"]),
    default=None,
    help="What agents may do unattended (default: worktree; see docs/agents.md).",
)
@click.option(
    "--trust-worktrees/--no-trust-worktrees",
    default=None,
    help="Let swarm record agent CLIs' folder trust for this run's worktrees only.",
)
@repo_option
@json_option
@handle_errors
def run_command(
    plan_file: pathlib.Path | None,
    from_wave: pathlib.Path | None,
    bead_ids: str | None,
    mode: launch.Mode,
    max_workers: int | None,
    agent: str | None,
    agent_cmd: str | None,
    waves: bool,
    keep_sessions: bool | None,
    run_id: str | None,
    base: str | None,
    worktree_root: pathlib.Path | None,
    tmux_socket: str | None,
    timeout: float | None,
    wait: bool,
    foreground: bool,
    detach: bool,
    stall_after: float | None,
    auto_spawn: t.Literal["off", "safe", "all"] | None,
    squash: bool,
    per_task_commits: bool,
    isolation: t.Literal["worktree", "clone", "sandbox"] | None,
    network: bool | None,
    hosts: str | None,
    land_after: bool,
    allow_concurrent: bool,
    agent_permissions: t.Literal["worktree", "full"] | None,
    trust_worktrees: bool | None,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Run PLAN: one worker per task, merged into swarm/<run-id>/integration.

    PLAN is a swarm plan (YAML/JSON), a swarm-iosm plan.md, an OL wave JSON, a beads export or
    agentops TaskCreate JSON (detected from the content).

    \b
    Examples:
      swarm run plan.yaml
      swarm run plan.yaml --max-workers 3 --agent claude
      swarm run plan.yaml --mode=local --timeout 30m
    """
    top = find_repo(repo)
    if plan_file is None and from_wave is None:
        plan_file = launch.find_plan(top, beads=bool(bead_ids))  # UsageError names the fix
    source = from_wave or plan_file
    assert source is not None
    plan = launch.load_plan(
        source, wave=from_wave is not None, bead_ids=[b for b in (bead_ids or "").split(",") if b]
    )
    if mode == "distributed" and shutil.which("tmux") is None:
        fail("tmux is not on PATH: install tmux, or use --mode=local", EXIT_USAGE)
    plan, options = launch.configure(
        top,
        plan,
        launch.RunOptions(
            mode=mode,
            max_workers=max_workers,
            agent=agent,
            agent_cmd=agent_cmd,
            waves=waves,
            keep_sessions=keep_sessions,
            run_id=run_id,
            base=base,
            worktree_root=worktree_root,
            tmux_socket=tmux_socket,
            timeout=timeout,
            stall_after=stall_after,
            auto_spawn=auto_spawn,
            squash=squash,
            per_task_commits=per_task_commits,
            land=land_after,
            isolation=isolation,
            network=network,
            agent_permissions=agent_permissions,
            trust_worktrees=trust_worktrees,
            hosts=None if hosts is None else tuple(h.strip() for h in hosts.split(",") if h),
        ),
    )
    _preflight(top, plan, options, plan_file=plan_file, allow_concurrent=allow_concurrent)
    log = launch.create_run(top, plan, options)
    state = log.state
    click.echo(
        f"swarm: run {state.run_id}: {len(plan.tasks)} tasks, {state.max_workers} workers, "
        f"integration branch {state.integration_branch}",
        err=True,
    )
    _drive_or_follow(top, state, foreground=foreground, detach=detach, as_json=as_json)


def _check_agents(top: pathlib.Path, plan: Plan, agent: str | None, agent_cmd: str | None) -> None:
    from runner.config import load_config, preset_from_config

    cfg = load_config(top)
    preflight.check_agents(
        plan, agent=agent, agent_cmd=agent_cmd, presets=lambda n: preset_from_config(cfg, n)
    )


def _preflight(
    top: pathlib.Path,
    plan: Plan,
    options: launch.RunOptions,
    *,
    plan_file: pathlib.Path | None,
    allow_concurrent: bool,
) -> None:
    """Refuse, before anything is created, what would only fail later (exit 2, the fix);
    warn about what the run leaves out."""
    _check_agents(top, plan, options.agent, options.agent_cmd)
    if not allow_concurrent and (twin := preflight.live_twin(top, launch.plan_digest(plan))):
        fail(
            f"run {twin} of the same plan is live in {top}: follow it with `swarm watch {twin}`, "
            f"stop it with `swarm stop {twin}`, or pass --allow-concurrent to start another",
            EXIT_USAGE,
        )
    left_out = preflight.left_out(top, plan_file)
    if left_out is not None:
        click.echo(f"swarm: warning: {left_out}", err=True)


def _drive_or_follow(
    top: pathlib.Path, state: RunState, *, foreground: bool, detach: bool, as_json: bool
) -> t.NoReturn:
    """Be the mayor here (``--foreground``, local mode), or start it in the private tmux server
    and follow it (the default), or start it and return at once (``--detach``)."""
    rid = state.run_id
    listener = None if as_json else _print_event
    if foreground or state.mode == "local":
        try:
            final = launch.drive(top, rid, resume=True, listener=listener)
        except KeyboardInterrupt:
            click.echo(f"swarm: interrupted; continue the run with: swarm resume {rid}", err=True)
            sys.exit(EXIT_INTERRUPTED)
    else:
        session = launch.start_mayor_session(top, state, sys.executable)
        click.echo(
            f"swarm: the mayor runs in tmux session {session} (swarm attach); "
            f"watch a worker with: swarm attach TASK --run {rid}",
            err=True,
        )
        if detach:
            if as_json:
                echo_json("run", {"run_id": rid, "status": "running", "session": session})
            else:
                click.echo(rid)
            sys.exit(EXIT_OK)
        try:
            final = launch.follow_session(top, state, session, listener=listener)
        except KeyboardInterrupt:
            click.echo(
                f"swarm: stopped following; the run goes on. `swarm status`, `swarm attach`, "
                f"`swarm watch {rid}` to look again",
                err=True,
            )
            sys.exit(EXIT_INTERRUPTED)
    _finish(top, final, as_json)


def _finish(top: pathlib.Path, final: RunState, as_json: bool) -> t.NoReturn:
    report = launch.save_report(top, final)
    if as_json:
        echo_json("run", status_document(final))
    else:
        click.echo(report)
        if page := _html_report(top, final):
            click.echo(f"swarm: the run as a picture: {page}", err=True)
    sys.exit(run_exit_code(final))


def _html_report(top: pathlib.Path, final: RunState) -> pathlib.Path | None:
    """The run's ``report.html``: the mayor's notifier writes it as the run ends; written here
    when it is not there yet. None for a run still going, or if the page cannot be made."""
    if final.status == "running":
        return None
    from runner import report_html

    page = report_html.report_path(top, final.run_id)
    if page.exists():
        return page
    try:
        return report_html.write_report(top, final.run_id)
    except (OSError, ValueError):
        return None


def _continue_options(func: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    """``--foreground`` and ``--detach`` of the commands that continue a run."""
    func = click.option("--detach", is_flag=True, help="Start the mayor and return at once.")(func)
    return click.option("--foreground", is_flag=True, help="Be the mayor in this process.")(func)


@click.command(name="resume")
@click.argument("run_id", metavar="[RUN]", required=False)
@_continue_options
@repo_option
@json_option
@handle_errors
def resume_command(
    run_id: str | None, foreground: bool, detach: bool, repo: pathlib.Path | None, as_json: bool
) -> None:
    """Continue a run after a crash, a killed tmux server or an interrupt.

    Live workers are adopted, finished ones are read from their mail, lost sessions are
    restarted in their worktrees, and nothing is merged twice. One mayor per run: resuming a
    run whose mayor is alive exits 1.

    \b
    Examples:
      swarm resume
      swarm resume 20261121-051500-3f2a --foreground
    """
    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    if launch.mayor_running(top, rid):
        fail(
            f"run {rid} already has a live mayor: watch it with `swarm attach` or "
            f"`swarm watch {rid}`"
        )
    state = launch.read_state(top, rid)
    if state.status in ("done", "failed"):
        click.echo(f"swarm: run {rid} already ended: {state.status}", err=True)
        _finish(top, state, as_json)
    _check_agents(top, launch.verified_plan(top, state), state.agent, state.agent_cmd)
    _drive_or_follow(top, state, foreground=foreground, detach=detach, as_json=as_json)


@click.command(name="retry")
@click.argument("task_ids", metavar="TASK...", nargs=-1, required=True)
@run_option
@_continue_options
@repo_option
@json_option
@handle_errors
def retry_command(
    task_ids: tuple[str, ...],
    run_id: str | None,
    foreground: bool,
    detach: bool,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Run tasks that failed, were blocked, skipped or cancelled again, with a fresh budget.

    The skipped tasks that wait on them come back too. A live mayor is asked to do it; a run
    that already ended is reopened and resumed (its mayor followed, as `swarm resume` does).
    The next attempt starts in the task's worktree, and its brief says why the last one ended.

    \b
    Examples:
      swarm retry T03
      swarm retry T03 T05 --run 20261121-051500-3f2a --detach
    """
    from runner import control

    top = find_repo(repo)
    rid = launch.resolve_run(top, run_id)
    state = launch.read_state(top, rid)
    _check_agents(top, launch.verified_plan(top, state), state.agent, state.agent_cmd)
    result = control.retry(top, rid, task_ids)
    named = ", ".join(result.tasks)
    if result.outcome == "asked":
        if as_json:
            echo_json("retry", {"run_id": rid, "outcome": "asked", "tasks": list(result.tasks)})
        click.echo(f"swarm: asked the mayor of run {rid} to retry {named}", err=True)
        sys.exit(EXIT_OK)
    click.echo(f"swarm: {named} will run again in run {rid}", err=True)
    state = launch.read_state(top, rid)
    _drive_or_follow(top, state, foreground=foreground, detach=detach, as_json=as_json)


@click.command(name="mayor", hidden=True)
@click.argument("run_id")
@repo_option
@handle_errors
def mayor_command(run_id: str, repo: pathlib.Path | None) -> None:
    """Be the mayor of RUN (what `swarm run` starts inside the run's tmux session).

    \b
    Examples:
      swarm mayor 20261121-051500-3f2a --repo .
    """
    top = find_repo(repo)
    run = SwarmPaths.for_repo(top).run(run_id)
    handler = logging.FileHandler(run.log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.INFO)
    final = launch.drive(top, run_id, resume=True, listener=_print_event)
    _finish(top, final, as_json=False)


commands: t.Final = (run_command, resume_command, retry_command, mayor_command)
