"""What the mayor does next: a pure function of the run state, the plan and what was observed.

:func:`decide` is the whole policy of a run: mail from workers and humans, dead sessions,
timeouts and stalls, scope escapes, rework and fix-up budgets, dispatch (the scheduler), the end
of the run and its remediation. It reads no file, runs no process and looks at no clock; the
mayor observes (:class:`Observations`), asks :func:`decide`, records each action's event (checked
by the lifecycle table) and then hands the action to its executor. Asking again after the
actions ran returns what follows from them, until there is nothing left to do.
"""

from __future__ import annotations

import typing as t

from protocol.messages import (
    Envelope,
    GuidanceFields,
    HelpRequestFields,
    MessageType,
    OfferingAcceptedFields,
    TerminateFields,
    TextFields,
)
from protocol.plan import Plan
from protocol.state import (
    OFFERED_STATES,
    TERMINAL_TASK_STATES,
    TRANSITIONS,
    EventKind,
    RunState,
    TaskRecord,
    TaskState,
)
from runner.actions import (
    FIXUP_REFUSALS,
    HUMAN,
    Action,
    Decisions,
    Drop,
    Ev,
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
    summary,
    worker_name,
)
from runner.agents.panes import PaneReport
from runner.scheduler import SchedulerInput, TaskStates, stage_ahead
from runner.scheduler import decide as schedule
from runner.sessions import MISSING, session_name
from runner.spawning import escapes_decided

# -- the policy ----------------------------------------------------------------------------------


def decide(state: RunState, plan: PlanView, obs: Observations) -> list[Action]:
    """Everything to do now, in order. Empty when the run has nothing left to act on."""
    if state.status != "running":
        return []
    out = Decisions(state)
    superseded = _superseded_progress(obs.mail)
    for env in obs.mail:
        if env.id in superseded:
            out.add(Drop(env.id))
            continue
        _mail(out, plan, env)
        if out.stopped:
            return out.actions
    _lost(out, obs)
    if obs.sessions is not None:
        _sessions(out, obs)
    _clock(out, plan, obs)
    if out.stopped:
        return out.actions
    escapes_decided(out, plan, obs)
    if not obs.integrated and any(s in OFFERED_STATES for s in out.view.values()):
        out.add(Integrate())  # what follows depends on what the arbiter merges
        return out.actions
    _rework(out, plan)
    _dispatch(out, plan)
    _answer_merged(out, plan, obs.merged)
    if all(s in TERMINAL_TASK_STATES for s in out.view.values()) and not out.stopped:
        out.add(Finish())
    return out.actions


def _superseded_progress(mail: tuple[Envelope, ...]) -> set[str]:
    """PROGRESS messages a later PROGRESS of the same sender and task makes moot: a chatty
    worker costs one recorded event per ask, not one per message, and never starves merging."""
    latest: dict[tuple[str, str | None], str] = {}
    superseded: set[str] = set()
    for env in mail:
        if env.type is MessageType.PROGRESS:
            key = (env.sender, env.thread_id or env.fields.bead_id)
            if key in latest:
                superseded.add(latest[key])
            latest[key] = env.id
    return superseded


def _mail(out: Decisions, plan: PlanView, env: Envelope) -> None:
    """One message's effect (each records an event carrying its ``msg_id``)."""
    fields = env.fields
    if env.sender == HUMAN and isinstance(fields, GuidanceFields):
        if fields.signal == "resume-dispatch" and out.paused:
            out.record("dispatch_resumed", msg_id=env.id)
        elif fields.signal == "retry":
            try:
                order, dependents = out.state.task_order, plan.index.dependents
                again = retry_set(out.view, order, dependents, fields.tasks)
            except ValueError as exc:
                out.record("mail_ignored", msg_id=env.id, reason=str(exc))
                return
            out.record("task_retried", again[0], msg_id=env.id)  # the message handled with it
            for tid in again[1:]:
                out.record("task_retried", tid)
        else:
            out.record("mail_ignored", msg_id=env.id, reason="guidance for no one")
        return
    if env.sender == HUMAN and isinstance(fields, TerminateFields):
        for action in stop_actions(
            out.state,
            reason=fields.text or "stopped by swarm stop",
            kill=fields.kill,
            msg_id=env.id,
        ):
            out.actions.append(action)
        out.stopped = True
        return
    tid = env.thread_id or fields.bead_id
    task = out.state.tasks.get(tid or "")
    if task is None or env.sender != worker_name(task.id):
        out.record(
            "mail_ignored",
            msg_id=env.id,
            sender=env.sender,
            reason=f"no task {tid!r} for sender {env.sender!r} in this run",
        )
        return
    text = summary(env)
    running = out.view[task.id] == "running"
    if env.type.is_success and running:
        head = str(getattr(fields, "commit_sha", "") or "")
        out.record("task_offered", task.id, msg_id=env.id, head_sha=head or None, text=text)
    elif env.type is MessageType.FAILED and running:
        reason = f"the worker reported FAILED: {text}"
        out.record("task_crashed", task.id, msg_id=env.id, text=text, reason=reason)
    elif env.type is MessageType.HELP_REQUEST:
        out.record("help_requested", task.id, msg_id=env.id, text=text)
        out.add(ask_human(task.id, fields, subject=env.subject, body=env.body_md))
    elif env.type is MessageType.SCOPE_ESCAPE:
        escape = fields.model_dump(mode="json")
        out.record("escape_reported", task.id, msg_id=env.id, text=text, escape=escape)
    else:
        out.record("task_message", task.id, msg_id=env.id, type=env.type.value, text=text)


def _lost(out: Decisions, obs: Observations) -> None:
    """A running task whose worker went with its host crashed (its commits are in its mirror
    already): the rework path starts it again, where placement puts it."""
    for task in out.running():
        if task.id in obs.lost:
            out.record("task_crashed", task.id, exit_status=None, reason=obs.lost[task.id])


def _sessions(out: Decisions, obs: Observations) -> None:
    """A running task whose pane died without reporting crashed; on adoption, one whose session
    vanished while no mayor ran (a killed tmux server, a reboot) restarts in place."""
    assert obs.sessions is not None
    for task in out.running():
        if not task.session:
            continue
        status = obs.sessions.get(task.session, MISSING)
        if obs.adopting and not status.exists:
            out.add(Launch(task.id, task.attempt, resumed=True))
        elif not status.alive:
            code = status.exit_status
            reason = f"the agent exited (status {code}) without reporting completion"
            # with its last lines; twice the same quick exit is not retried blindly
            reason, fatal = obs.exits.get(task.id, (reason, False))
            kind: EventKind = "task_failed" if fatal else "task_crashed"
            out.record(kind, task.id, exit_status=code, reason=reason)


def _clock(out: Decisions, plan: PlanView, obs: Observations) -> None:
    """The run's deadline, each task's timeout, and stalls (a NUDGE, then a human and a
    restart)."""
    state = out.state
    if state.deadline is not None and obs.now >= state.deadline:
        out.actions.extend(stop_actions(state, reason="timeout", kill=True))
        out.stopped = True
        return
    for task in out.running():
        limit = plan.plan.task(task.id).timeout
        started = task.dispatched_at
        if limit is not None and started and obs.now - started.timestamp() >= limit:
            out.record(
                "task_crashed", task.id, exit_status=None, reason=f"timed out after {limit:g}s"
            )
            if task.session:
                out.add(Kill(task.session))
            continue
        shown = obs.pane_states.get(task.id)
        if shown is not None and shown != task.pane and task.id not in obs.panes:
            out.record("task_pane", task.id, pane=shown)
        if task.id in obs.panes:
            _pane(out, task, obs.panes[task.id])
            continue
        _stall(out, task, obs.idle.get(task.id, 0.0))


def _pane(out: Decisions, task: TaskRecord, seen: PaneReport) -> None:
    """What a worker's screen shows: a dialog or permission prompt is reported to the human
    with the pane's text; an idle agent that has not reported gets the nudge typed in."""
    out.record("task_nudged", task.id, pane=seen.state, text=seen.what)
    if seen.kind == "nudge":
        fields = TextFields(text=seen.text)
        out.add(
            Send(worker_name(task.id), MessageType.NUDGE, task.id, fields, type_into=task.session)
        )
        return
    help_fields = HelpRequestFields(
        issue_type="BLOCKED",
        problem=f"Worker of task {task.id} is at {seen.what}.\n\nIts pane:\n{seen.screen}",
        question=f"Answer it with `swarm attach {task.id} --rw`.",
    )
    out.add(ask_human(task.id, help_fields))


def _stall(out: Decisions, task: TaskRecord, idle: float) -> None:
    stall_after = out.state.stall_after
    if task.nudges == 0 and idle >= stall_after:
        out.record("task_nudged", task.id, idle=round(idle, 1))
        text = (
            f"No output or mail from you for {idle:.0f}s: report progress "
            "with `swarm worker progress`, or `swarm worker help` if stuck."
        )
        out.add(Send(worker_name(task.id), MessageType.NUDGE, task.id, TextFields(text=text)))
    elif task.nudges == 1 and idle >= 2 * stall_after:
        restart = out.state.stall_restart
        out.record(
            "task_nudged",
            task.id,
            idle=round(idle, 1),
            stalled=True,
            text=f"stalled for {idle:.0f}s",
        )
        question = "Restarted by policy." if restart else f"Attach with `swarm attach {task.id}`?"
        help_fields = HelpRequestFields(
            issue_type="STUCK",
            problem=f"Worker of task {task.id} silent for {idle:.0f}s.\n\nLast pane lines:\n",
            question=question,
        )
        out.add(ask_human(task.id, help_fields, pane_tail_of=task.session))
        if restart:
            reason = f"stalled: no output or mail for {idle:.0f}s"
            out.record("task_crashed", task.id, exit_status=None, reason=reason)
            if task.session:
                out.add(Kill(task.session))


def next_wake(state: RunState, plan: Plan, now: float, idle: t.Mapping[str, float]) -> float | None:
    """Seconds until the nearest deadline, task timeout or stall check, if any."""
    waits: list[float] = []
    if state.deadline is not None:
        waits.append(state.deadline - now)
    for task in state.tasks.values():
        if task.state != "running":
            continue
        limit = plan.task(task.id).timeout
        if limit is not None and task.dispatched_at is not None:
            waits.append(limit - (now - task.dispatched_at.timestamp()))
        if task.nudges < 2:
            waits.append(state.stall_after * (task.nudges + 1) - idle.get(task.id, 0.0))
    return min(waits) if waits else None


# -- rework and dispatch -------------------------------------------------------------------------


def _rework(out: Decisions, plan: PlanView) -> None:
    """Send refused work back: conflicts and scope violations are fix-ups (bounded by
    ``budgets.max_fixups``, then the task is blocked and a human asked); anything else is a
    retry (bounded by ``budgets.max_attempts`` and the failed check's own limit)."""
    budgets = plan.plan.budgets
    for record in out.state.tasks.values():
        if record.state != "rework" or out.view[record.id] != "rework":
            continue  # refused in this very ask: its record is not up to date yet
        if record.refusal in FIXUP_REFUSALS:
            if record.fixups >= budgets.max_fixups:
                _block(out, record)
            else:
                out.add(Launch(record.id, record.attempt + 1))
            continue
        limit = min(budgets.max_attempts, record.attempt_limit or budgets.max_attempts)
        tries = record.attempt - record.spent - record.fixups
        if tries >= limit:
            out.record("task_failed", record.id, reason=f"{record.reason} (after {tries} attempts)")
        else:
            out.add(Launch(record.id, record.attempt + 1))


def _block(out: Decisions, record: TaskRecord) -> None:
    reason = f"{record.reason} (after {record.fixups} fix-ups)"
    out.record("task_blocked", record.id, reason=reason)
    help_fields = HelpRequestFields(
        issue_type="BLOCKED",
        problem=f"Task {record.id} was refused {record.fixups + 1} times: {reason}",
        files_touched=record.files,
        question=f"Fix branch {record.branch} by hand (swarm attach {record.id} --rw), "
        "or drop the task.",
    )
    out.add(ask_human(record.id, help_fields))


def _dispatch(out: Decisions, plan: PlanView) -> None:
    if out.stopped:
        return
    decision = schedule(
        SchedulerInput(
            plan=plan.plan,
            states=TaskStates(plan.index, out.view),
            max_workers=out.state.max_workers,
            waves=out.state.waves,
            case_sensitive=plan.case_sensitive,
            paused=out.paused,
        )
    )
    for tid, reason in decision.skip:
        out.record("task_skipped", tid, reason=reason)
    if decision.start and out.state.commit_policy == "wave":
        out.add(StartWave(decision.start))
    for tid in decision.start:
        out.add(Launch(tid, out.state.tasks[tid].attempt + 1))  # after `swarm retry`: not 1


def stage(state: RunState, plan: PlanView, staged: t.Collection[str]) -> tuple[str, ...]:
    """The tasks whose checkout is worth making now, before they can start: the next to start
    when what they wait on merges (:func:`runner.scheduler.stage_ahead`). None while the run
    is not running; ``staged``: the tasks whose checkout is made and who still wait."""
    if state.status != "running":
        return ()
    view = {tid: rec.state for tid, rec in state.tasks.items()}
    picked = stage_ahead(
        SchedulerInput(
            plan=plan.plan,
            states=TaskStates(plan.index, view),
            max_workers=state.max_workers,
            waves=state.waves,
            case_sensitive=plan.case_sensitive,
            paused=state.paused,
        ),
        staged,
    )
    # a task that started before (then `swarm retry`) has a worktree of its own
    return tuple(tid for tid in picked if tid not in state.tasks or not state.tasks[tid].worktree)


def _answer_merged(out: Decisions, plan: PlanView, merged: tuple[str, ...]) -> None:
    """After dispatching what a merge unblocked: the worker's answer, its session closed, and
    an OL bead ratcheted."""
    for tid in merged:
        record = out.state.tasks[tid]
        sha = record.merge_sha
        summary_text = f"merged as {sha[:12]}" if sha else "accepted: nothing to merge"
        answer = OfferingAcceptedFields(commit_sha=record.head_sha or "", summary=summary_text)
        out.add(Send(worker_name(tid), MessageType.OFFERING_ACCEPTED, tid, answer))
        if record.session and not out.state.keep_sessions:
            out.add(Kill(record.session))
        bead = plan.plan.task(tid).metadata.get("ol_bead_id")
        if isinstance(bead, str) and bead:
            out.add(Ratchet(tid, bead))


# -- stopping ------------------------------------------------------------------------------------


def retry_set(
    states: t.Mapping[str, TaskState],
    order: t.Sequence[str],
    dependents: t.Mapping[str, tuple[str, ...]],
    task_ids: t.Iterable[str],
) -> tuple[str, ...]:
    """What ``swarm retry TASK...`` runs again: the tasks named (each must have ended without
    merging), then every skipped task waiting on one of them, in plan ``order``. Raises
    ValueError naming a task that is unknown or cannot be retried."""
    wanted = list(dict.fromkeys(task_ids))
    if not wanted:
        raise ValueError("name the tasks to retry")
    retryable = TRANSITIONS["task_retried"].sources
    for tid in wanted:
        if tid not in states:
            raise ValueError(f"task {tid} is not in the run")
        if states[tid] not in retryable:
            raise ValueError(
                f"task {tid} is {states[tid]}: only failed, blocked, skipped or cancelled "
                "tasks can be retried"
            )
    chosen, queue = set(wanted), list(wanted)
    while queue:
        for dep in dependents.get(queue.pop(), ()):
            if dep not in chosen and states.get(dep) == "skipped":
                chosen.add(dep)
                queue.append(dep)
    return tuple(tid for tid in order if tid in chosen)


def stop_actions(
    state: RunState,
    *,
    reason: str,
    kill: bool,
    status: t.Literal["stopped", "failed"] = "stopped",
    msg_id: str | None = None,
) -> list[Action]:
    """Stop a run (the one stop path: the mayor's, and ``swarm stop`` when no mayor runs).
    Without ``kill``, running work goes on and only tasks not started are cancelled."""
    actions: list[Action] = []
    for record in state.tasks.values():
        if record.state in TERMINAL_TASK_STATES:
            continue
        if kill or record.state == "pending":
            actions.append(Record(Ev("task_cancelled", record.id, {"reason": reason})))
        if kill and record.session:
            actions.append(Kill(record.session))
    data: dict[str, t.Any] = {"status": status, "reason": reason}
    if msg_id:
        data["msg_id"] = msg_id
    actions.append(Record(Ev("run_finished", None, data)))
    return actions


def sessions_prefix(run_id: str) -> str:
    """The name prefix shared by every session of a run (for one status call)."""
    return session_name(run_id, "")
