"""A worker's reports: what ``swarm worker <verb>`` and the scripted agent send.

Identity comes from the worker environment (:class:`agentmail.worker_env.WorkerEnv`); every
report mails the mayor one message in the agentops format (subject ``[<task>] TYPE``, thread =
the task, signed with ``$SWARM_KEY_FILE``). ``offer``/``done``/``fail`` also write
``results/<task>.json``; ``escape`` also appends to ``scope-escapes.jsonl``. Nothing here prints
or parses arguments: the click commands (``runner.cli.worker``) and the scripted agent
(``runner.agents.scripted``, in process) call these functions and show the result their way.

Kept light on purpose: a real agent runs ``swarm worker`` several times per task, so this module
imports neither the mayor nor libtmux, rich or watchdog.
"""

from __future__ import annotations

import logging
import pathlib
import typing as t

from agentmail.errors import AgentMailError, BadInput
from agentmail.store import MailStore, load_key
from agentmail.worker_env import WorkerEnv, append_escape, write_result
from protocol import agentops
from protocol.messages import (
    ACK_REQUIRED_BY_DEFAULT,
    AssignFields,
    BeadAcceptedFields,
    CheckpointFields,
    Envelope,
    FailedFields,
    Fields,
    HelpRequestFields,
    MessageType,
    OfferingFields,
    ProgressFields,
    ScopeEscapeFields,
)
from protocol.results import ScopeEscape, WorkerResult
from runner import proc
from runner.errors import CommandError

logger = logging.getLogger(__name__)

IssueType = t.Literal["STUCK", "SPEC_UNCLEAR", "BLOCKED", "TECHNICAL"]
FailureType = t.Literal["TESTS_FAIL", "BUILD_FAIL", "SPEC_IMPOSSIBLE", "CONTEXT_HIGH", "ERROR"]
CheckpointReason = t.Literal["CONTEXT_HIGH", "MANUAL", "TIMEOUT"]
Severity = t.Literal["low", "medium", "high", "critical"]
ISSUE_TYPES: t.Final[tuple[str, ...]] = t.get_args(IssueType)
FAILURE_TYPES: t.Final[tuple[str, ...]] = t.get_args(FailureType)
CHECKPOINT_REASONS: t.Final[tuple[str, ...]] = t.get_args(CheckpointReason)
SEVERITIES: t.Final[tuple[str, ...]] = t.get_args(Severity)
DETAIL_MAX: t.Final = 400
"""Longest ``detail`` of a results file (agentops keeps it to one short line)."""


class Sent(t.NamedTuple):
    """A report that went out: the stored (signed) message and the files written besides."""

    message: Envelope
    files: t.Mapping[str, str] = {}
    """``{"result": <path>}`` or ``{"escapes": <path>}`` when a file was written too."""


def choice(value: str, choices: t.Sequence[str], option: str) -> str:
    """``value`` as one of ``choices`` (case-insensitive); BadInput naming ``option`` if not."""
    for allowed in choices:
        if value.lower() == allowed.lower():
            return allowed
    raise BadInput(f"{option}: {value!r} is not one of {', '.join(choices)}")


def send(env: WorkerEnv, mtype: MessageType, fields: Fields) -> Envelope:
    """Mail the mayor one report of type ``mtype``, signed with the worker's key."""
    store = MailStore(env.mail_root)
    key = load_key(env.key_file) if env.key_file is not None else None
    envelope = Envelope.model_validate(
        {
            "from": env.worker,
            "to": (env.mayor,),
            "type": mtype,
            "subject": agentops.render_subject(mtype, env.task),
            "body_md": agentops.render_body(mtype, fields),
            "fields": fields,
            "thread_id": env.task,
            "run_id": env.run,
            "ack_required": mtype in ACK_REQUIRED_BY_DEFAULT,
        }
    )
    return store.send(envelope, key=key)


def accepted(env: WorkerEnv, *, title: str = "") -> Sent:
    """BEAD_ACCEPTED: the worker took the task."""
    fields = BeadAcceptedFields(bead_id=env.task, title=title)
    return Sent(send(env, MessageType.BEAD_ACCEPTED, fields))


def progress(
    env: WorkerEnv,
    text: str,
    *,
    step: str = "",
    context_usage: int = 0,
    files: t.Sequence[str] = (),
) -> Sent:
    """PROGRESS."""
    fields = ProgressFields(
        bead_id=env.task,
        step=step,
        status=text,
        context_usage=context_usage,
        files_touched=tuple(files),
    )
    return Sent(send(env, MessageType.PROGRESS, fields))


def help_request(
    env: WorkerEnv,
    text: str,
    *,
    issue_type: str = "STUCK",
    question: str = "",
    tried: str = "",
    files: t.Sequence[str] = (),
) -> Sent:
    """HELP_REQUEST; the question defaults to ``text``."""
    fields = HelpRequestFields(
        bead_id=env.task,
        issue_type=choice(issue_type, ISSUE_TYPES, "--issue-type"),
        problem=text,
        what_tried=tried,
        question=question or text,
        files_touched=tuple(files),
    )
    return Sent(send(env, MessageType.HELP_REQUEST, fields))


def escape(
    env: WorkerEnv,
    *,
    finding: str,
    files: t.Sequence[str],
    intent: str = "",
    severity: str = "medium",
) -> Sent:
    """SCOPE_ESCAPE: work outside the manifest, recorded in ``scope-escapes.jsonl`` (one line,
    agentops format) and mailed to the mayor, instead of being done."""
    paths = tuple(files)
    if not paths:
        raise BadInput("--files: name at least one file")
    severity = choice(severity, SEVERITIES, "--severity")
    record = ScopeEscape.model_validate(
        {
            "worker": env.worker,
            "finding": finding,
            "suggested_files": paths,
            "task_id": env.task,
            "run_id": env.run,
            "intent": intent,
            "severity": severity,
        }
    )
    path = append_escape(env.home, record)
    fields = ScopeEscapeFields(
        bead_id=env.task, finding=finding, files=paths, intent=intent, severity=severity
    )
    return Sent(send(env, MessageType.SCOPE_ESCAPE, fields), {"escapes": str(path)})


def _passed(value: str | None) -> bool:
    return (value or "").upper() == "PASS"


def offer(
    env: WorkerEnv,
    summary: str,
    *,
    cwd: pathlib.Path,
    done: bool = False,
    commit: str | None = None,
    files: t.Sequence[str] | None = None,
    tests: str | None = None,
    lint: str | None = None,
    build: str | None = None,
) -> Sent:
    """OFFERING_READY (DONE with ``done``): the commit (default: HEAD of ``cwd``) and the files
    changed (default: since the base of the task's ASSIGN); also writes the results file."""
    sha = commit or head(cwd)
    paths = tuple(files) if files is not None else changed_files(env, cwd)
    fields = OfferingFields(
        bead_id=env.task,
        status="DONE",
        commit_sha=sha,
        files=paths,
        tests_pass=_passed(tests),
        lint_pass=_passed(lint),
        build_pass=_passed(build),
        summary=summary,
    )
    result = WorkerResult(
        type="completion",
        issue_id=env.task,
        status="done",
        detail=detail(summary, "done"),
        artifacts=paths,
        worktree_path=str(env.worktree) if env.worktree else None,
    )
    path = write_result(env.home, result)
    mtype = MessageType.DONE if done else MessageType.OFFERING_READY
    return Sent(send(env, mtype, fields), {"result": str(path)})


def fail(
    env: WorkerEnv,
    reason: str,
    *,
    failure_type: str = "ERROR",
    attempts: int = 1,
    commit: str = "",
    files: t.Sequence[str] = (),
) -> Sent:
    """FAILED; also writes the results file (``blocked``)."""
    kind = choice(failure_type, FAILURE_TYPES, "--type")
    fields = FailedFields(
        bead_id=env.task,
        failure_type=kind,
        reason=reason,
        internal_attempts=attempts,
        partial_commit_sha=commit,
        files=tuple(files),
    )
    result = WorkerResult(
        type="blocked",
        issue_id=env.task,
        status="blocked",
        detail=detail(f"{kind}: {reason}", "failed"),
        worktree_path=str(env.worktree) if env.worktree else None,
    )
    path = write_result(env.home, result)
    return Sent(send(env, MessageType.FAILED, fields), {"result": str(path)})


def checkpoint(
    env: WorkerEnv,
    *,
    reason: str = "MANUAL",
    commit: str = "",
    progress_text: str = "",
    context_usage: int = 0,
    next_steps: str = "",
) -> Sent:
    """CHECKPOINT: hand the task over to a successor."""
    fields = CheckpointFields(
        bead_id=env.task,
        checkpoint_reason=choice(reason, CHECKPOINT_REASONS, "--reason"),
        partial_commit_sha=commit,
        progress=progress_text,
        context_usage=context_usage,
        next_steps=next_steps,
    )
    return Sent(send(env, MessageType.CHECKPOINT, fields))


def head(cwd: pathlib.Path) -> str:
    return proc.run("git", "rev-parse", "HEAD", cwd=cwd).stdout.strip()


def assign_base(env: WorkerEnv) -> str:
    """The base commit of this task's latest ASSIGN in the worker's inbox, if any."""
    store = MailStore(env.mail_root)
    if not store.is_registered(env.worker):
        return ""
    try:
        page = store.list(env.worker, type=MessageType.ASSIGN, thread=env.task)
    except (AgentMailError, OSError) as exc:
        logger.debug("could not read the ASSIGN: %s", exc)
        return ""
    for stored in reversed(page.messages):
        fields = stored.envelope.fields
        if isinstance(fields, AssignFields) and fields.base_sha:
            return fields.base_sha
    return ""


def changed_files(env: WorkerEnv, cwd: pathlib.Path) -> tuple[str, ...]:
    """Files changed in ``cwd`` between the ASSIGN's base and HEAD (none without a base)."""
    base = assign_base(env)
    if not base:
        return ()
    try:
        out = proc.run("git", "diff", "--name-only", base, "HEAD", cwd=cwd).stdout
    except CommandError as exc:
        logger.debug("could not list changed files: %s", exc)
        return ()
    return tuple(line for line in out.splitlines() if line)


def detail(text: str, fallback: str) -> str:
    """One line of at most :data:`DETAIL_MAX` characters (``fallback`` when empty)."""
    text = " ".join(text.split()) or fallback
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"
