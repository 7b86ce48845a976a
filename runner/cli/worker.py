"""`swarm worker`: the verbs an agent in a worker pane reports with.

Identity comes from the worker environment (``SWARM_*``, see agentmail.worker_env); every verb
mails the mayor a message in the agentops format (subject ``[<task>] TYPE``, thread = task,
signed with ``$SWARM_KEY_FILE``) and prints its id. ``offer``/``done``/``fail`` also write
``results/<task>.json``; ``escape`` also appends to ``scope-escapes.jsonl``. The commands only
parse and print: the reports are :mod:`runner.worker_report` (which the scripted agent calls
in process).
"""

from __future__ import annotations

import pathlib
import typing as t

import click

from agentmail.worker_env import WorkerEnv
from runner import worker_report as report
from runner.cli.common import echo_json, handle_errors, json_option

PASS_FAIL: t.Final = click.Choice(["PASS", "FAIL"], case_sensitive=False)


def _files(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(f.strip() for f in value.split(",") if f.strip())


def _show(sent: report.Sent, as_json: bool) -> None:
    """Print the message id, or with ``--json`` the message and the files written."""
    if as_json:
        echo_json("worker.message", {"message": dict(sent.doc), **sent.files})
    else:
        click.echo(sent.id)


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
    _show(report.accepted(WorkerEnv.from_environ(), title=title), as_json)


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
    sent = report.progress(env, text, step=step, context_usage=context_usage, files=_files(files))
    _show(sent, as_json)


@command.command(name="help")
@click.argument("text")
@click.option(
    "--issue-type",
    type=click.Choice(report.ISSUE_TYPES, case_sensitive=False),
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
    sent = report.help_request(
        WorkerEnv.from_environ(),
        text,
        issue_type=issue_type,
        question=question,
        tried=tried,
        files=_files(files),
    )
    _show(sent, as_json)


@command.command()
@click.option("--finding", required=True, help="What needs changing outside the manifest.")
@click.option("--files", required=True, help="The files it concerns, a,b.")
@click.option("--intent", default="", help="What the change would achieve.")
@click.option(
    "--severity",
    type=click.Choice(report.SEVERITIES),
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
    sent = report.escape(
        WorkerEnv.from_environ(),
        finding=finding,
        files=_files(files),
        intent=intent,
        severity=severity,
    )
    _show(sent, as_json)


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
    done: bool,
    summary: str,
    commit: str | None,
    files: str | None,
    tests: str | None,
    lint: str | None,
    build: str | None,
    as_json: bool,
) -> None:
    sent = report.offer(
        WorkerEnv.from_environ(),
        summary,
        cwd=pathlib.Path.cwd(),
        done=done,
        commit=commit,
        files=_files(files) if files is not None else None,
        tests=tests,
        lint=lint,
        build=build,
    )
    _show(sent, as_json)


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
    _offer(False, summary, commit, files, tests, lint, build, as_json)


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
    _offer(True, summary, commit, files, tests, lint, build, as_json)


@command.command()
@click.argument("reason")
@click.option(
    "--type",
    "failure_type",
    type=click.Choice(report.FAILURE_TYPES, case_sensitive=False),
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
    sent = report.fail(
        WorkerEnv.from_environ(),
        reason,
        failure_type=failure_type,
        attempts=attempts,
        commit=commit,
        files=_files(files),
    )
    _show(sent, as_json)


@command.command()
@click.option(
    "--reason",
    type=click.Choice(report.CHECKPOINT_REASONS, case_sensitive=False),
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
    sent = report.checkpoint(
        WorkerEnv.from_environ(),
        reason=reason,
        commit=commit,
        progress_text=progress_text,
        context_usage=context_usage,
        next_steps=next_steps,
    )
    _show(sent, as_json)
