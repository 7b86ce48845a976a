"""`swarm worker`: the verbs an agent in a worker pane reports with.

Identity comes from the worker environment (``SWARM_*``, see agentmail.worker_env); every verb
mails the mayor a message in the agentops format (subject ``[<task>] TYPE``, thread = task,
signed with ``$SWARM_KEY_FILE``) and prints its id. ``offer``/``done``/``fail`` also write
``results/<task>.json``; ``escape`` also appends to ``scope-escapes.jsonl``.
"""

from __future__ import annotations

import json
import logging
import pathlib
import typing as t

import click

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
from runner.cli.common import echo_json, handle_errors, json_option
from runner.errors import CommandError

logger = logging.getLogger(__name__)

PASS_FAIL: t.Final = click.Choice(["PASS", "FAIL"], case_sensitive=False)
_DETAIL_MAX: t.Final = 400


def _files(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(f.strip() for f in value.split(",") if f.strip())


def _send(
    env: WorkerEnv, mtype: MessageType, fields: Fields, *, as_json: bool, **extra: t.Any
) -> Envelope:
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
    stored = store.send(envelope, key=key)
    if as_json:
        echo_json("worker.message", {"message": json.loads(stored.to_json()), **extra})
    else:
        click.echo(stored.id)
    return stored


def _head(cwd: pathlib.Path) -> str:
    return proc.run("git", "rev-parse", "HEAD", cwd=cwd).stdout.strip()


def _assign_base(env: WorkerEnv) -> str:
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


def _changed_files(env: WorkerEnv, cwd: pathlib.Path) -> tuple[str, ...]:
    base = _assign_base(env)
    if not base:
        return ()
    try:
        out = proc.run("git", "diff", "--name-only", base, "HEAD", cwd=cwd).stdout
    except CommandError as exc:
        logger.debug("could not list changed files: %s", exc)
        return ()
    return tuple(line for line in out.splitlines() if line)


def _detail(text: str, fallback: str) -> str:
    text = " ".join(text.split()) or fallback
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


@click.group(name="worker")
def command() -> None:
    """Report from inside a worker pane (identity from $SWARM_WORKER and friends).

    \b
    Examples:
      swarm worker accepted --title 'Add login'
      swarm worker progress 'tests written' --step 'Step 2'
      swarm worker offer 'login works' --tests PASS
    """


@command.command()
@click.option("--title", default="", help="The task's title.")
@json_option
@handle_errors
def accepted(title: str, as_json: bool) -> None:
    """Tell the mayor the task is accepted (BEAD_ACCEPTED).

    \b
    Examples:
      swarm worker accepted --title 'Add login'
    """
    env = WorkerEnv.from_environ()
    fields = BeadAcceptedFields(bead_id=env.task, title=title)
    _send(env, MessageType.BEAD_ACCEPTED, fields, as_json=as_json)


@command.command()
@click.argument("text")
@click.option("--step", default="", help="Which step, e.g. 'Step 4 - implementing auth'.")
@click.option("--context-usage", type=click.IntRange(0, 100), default=0, help="Context used (%).")
@click.option("--files", default=None, help="Files touched, a,b.")
@json_option
@handle_errors
def progress(text: str, step: str, context_usage: int, files: str | None, as_json: bool) -> None:
    """Report progress (PROGRESS).

    \b
    Examples:
      swarm worker progress 'tests written' --step 'Step 2' --context-usage 35 --files src/a.py
    """
    env = WorkerEnv.from_environ()
    fields = ProgressFields(
        bead_id=env.task,
        step=step,
        status=text,
        context_usage=context_usage,
        files_touched=_files(files),
    )
    _send(env, MessageType.PROGRESS, fields, as_json=as_json)


@command.command(name="help")
@click.argument("text")
@click.option(
    "--issue-type",
    type=click.Choice(["STUCK", "SPEC_UNCLEAR", "BLOCKED", "TECHNICAL"], case_sensitive=False),
    default="STUCK",
    show_default=True,
)
@click.option("--question", default="", help="The question to answer.")
@click.option("--tried", default="", help="What was tried already.")
@click.option("--files", default=None, help="Files touched, a,b.")
@json_option
@handle_errors
def help_(
    text: str, issue_type: str, question: str, tried: str, files: str | None, as_json: bool
) -> None:
    """Ask the mayor for help (HELP_REQUEST).

    \b
    Examples:
      swarm worker help 'the spec contradicts itself' --issue-type SPEC_UNCLEAR --question 'why?'
    """
    env = WorkerEnv.from_environ()
    fields = HelpRequestFields(
        bead_id=env.task,
        issue_type=issue_type.upper(),
        problem=text,
        what_tried=tried,
        question=question or text,
        files_touched=_files(files),
    )
    _send(env, MessageType.HELP_REQUEST, fields, as_json=as_json)


@command.command()
@click.option("--finding", required=True, help="What needs changing outside the manifest.")
@click.option("--files", required=True, help="The files it concerns, a,b.")
@click.option("--intent", default="", help="What the change would achieve.")
@click.option(
    "--severity",
    type=click.Choice(["low", "medium", "high", "critical"]),
    default="medium",
    show_default=True,
)
@json_option
@handle_errors
def escape(finding: str, files: str, intent: str, severity: str, as_json: bool) -> None:
    """Record work outside the manifest instead of doing it (SCOPE_ESCAPE).

    \b
    Examples:
      swarm worker escape --finding 'config needs a flag' --files src/config.py --severity high
    """
    env = WorkerEnv.from_environ()
    paths = _files(files)
    if not paths:
        raise BadInput("--files: name at least one file")
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
    _send(env, MessageType.SCOPE_ESCAPE, fields, as_json=as_json, escapes=str(path))


def _offer_options(func: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    for option in reversed(
        [
            click.argument("summary"),
            click.option("--commit", default=None, help="Commit offered (default: HEAD)."),
            click.option("--files", default=None, help="Files changed, a,b (default: since base)."),
            click.option("--tests", type=PASS_FAIL, default=None, help="Self-validation: tests."),
            click.option("--lint", type=PASS_FAIL, default=None, help="Self-validation: lint."),
            click.option("--build", type=PASS_FAIL, default=None, help="Self-validation: build."),
            json_option,
        ]
    ):
        func = option(func)
    return func


def _offer(
    mtype: MessageType,
    summary: str,
    commit: str | None,
    files: str | None,
    tests: str | None,
    lint: str | None,
    build: str | None,
    as_json: bool,
) -> None:
    env = WorkerEnv.from_environ()
    cwd = pathlib.Path.cwd()
    sha = commit or _head(cwd)
    paths = _files(files) if files is not None else _changed_files(env, cwd)
    fields = OfferingFields(
        bead_id=env.task,
        status="DONE",
        commit_sha=sha,
        files=paths,
        tests_pass=(tests or "").upper() == "PASS",
        lint_pass=(lint or "").upper() == "PASS",
        build_pass=(build or "").upper() == "PASS",
        summary=summary,
    )
    result = WorkerResult(
        type="completion",
        issue_id=env.task,
        status="done",
        detail=_detail(summary, "done"),
        artifacts=paths,
        worktree_path=str(env.worktree) if env.worktree else None,
    )
    path = write_result(env.home, result)
    _send(env, mtype, fields, as_json=as_json, result=str(path))


@command.command()
@_offer_options
@handle_errors
def offer(
    summary: str,
    commit: str | None,
    files: str | None,
    tests: str | None,
    lint: str | None,
    build: str | None,
    as_json: bool,
) -> None:
    """Offer the work for merging (OFFERING_READY).

    \b
    Examples:
      swarm worker offer 'login works' --tests PASS --lint PASS --build PASS
      swarm worker offer 'fix' --commit abc1234 --files src/a.py,src/b.py
    """
    _offer(MessageType.OFFERING_READY, summary, commit, files, tests, lint, build, as_json)


@command.command()
@_offer_options
@handle_errors
def done(
    summary: str,
    commit: str | None,
    files: str | None,
    tests: str | None,
    lint: str | None,
    build: str | None,
    as_json: bool,
) -> None:
    """Report the task done (DONE; same shape as offer).

    \b
    Examples:
      swarm worker done 'docs updated' --tests PASS
    """
    _offer(MessageType.DONE, summary, commit, files, tests, lint, build, as_json)


@command.command()
@click.argument("reason")
@click.option(
    "--type",
    "failure_type",
    type=click.Choice(
        ["TESTS_FAIL", "BUILD_FAIL", "SPEC_IMPOSSIBLE", "CONTEXT_HIGH", "ERROR"],
        case_sensitive=False,
    ),
    default="ERROR",
    show_default=True,
)
@click.option("--attempts", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--commit", default="", help="Partial work commit, if any.")
@click.option("--files", default=None, help="Files of the partial work, a,b.")
@json_option
@handle_errors
def fail(
    reason: str,
    failure_type: str,
    attempts: int,
    commit: str,
    files: str | None,
    as_json: bool,
) -> None:
    """Report the task failed (FAILED).

    \b
    Examples:
      swarm worker fail 'needs a schema change' --type SPEC_IMPOSSIBLE --attempts 2
    """
    env = WorkerEnv.from_environ()
    fields = FailedFields(
        bead_id=env.task,
        failure_type=failure_type.upper(),
        reason=reason,
        internal_attempts=attempts,
        partial_commit_sha=commit,
        files=_files(files),
    )
    result = WorkerResult(
        type="blocked",
        issue_id=env.task,
        status="blocked",
        detail=_detail(f"{failure_type.upper()}: {reason}", "failed"),
        worktree_path=str(env.worktree) if env.worktree else None,
    )
    path = write_result(env.home, result)
    _send(env, MessageType.FAILED, fields, as_json=as_json, result=str(path))


@command.command()
@click.option(
    "--reason",
    type=click.Choice(["CONTEXT_HIGH", "MANUAL", "TIMEOUT"], case_sensitive=False),
    default="MANUAL",
    show_default=True,
)
@click.option("--commit", default="", help="Partial work commit.")
@click.option("--progress", "progress_text", default="", help="What is done so far.")
@click.option("--next", "next_steps", default="", help="What a successor should do next.")
@click.option("--context-usage", type=click.IntRange(0, 100), default=0, help="Context used (%).")
@json_option
@handle_errors
def checkpoint(
    reason: str,
    commit: str,
    progress_text: str,
    next_steps: str,
    context_usage: int,
    as_json: bool,
) -> None:
    """Hand the task over to a successor (CHECKPOINT).

    \b
    Examples:
      swarm worker checkpoint --reason CONTEXT_HIGH --progress 'models done' --next 'views'
    """
    env = WorkerEnv.from_environ()
    fields = CheckpointFields(
        bead_id=env.task,
        checkpoint_reason=reason.upper(),
        partial_commit_sha=commit,
        progress=progress_text,
        context_usage=context_usage,
        next_steps=next_steps,
    )
    _send(env, MessageType.CHECKPOINT, fields, as_json=as_json)
