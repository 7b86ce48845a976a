"""A worker's reports: what ``swarm worker <verb>`` and the scripted agent send.

Identity comes from the worker environment (:class:`agentmail.worker_env.WorkerEnv`); every
report mails the mayor one message in the agentops format (subject ``[<task>] TYPE``, thread =
the task, signed with ``$SWARM_KEY_FILE``). ``offer``/``done``/``fail`` also write
``results/<task>.json``; ``escape`` also appends to ``scope-escapes.jsonl``. Nothing here prints
or parses arguments: the click commands (``runner.cli.worker``) and the scripted agent
(``runner.agents.scripted``, in process) call these functions and show the result their way.

Every report is idempotent: its key is (run, task, attempt, type, sequence), the sequence
counted on disk once the report is delivered (:func:`agentmail.delivery.send_sequenced`), so
an agent whose ``swarm worker`` was killed and who runs it again never sends it twice.

Kept light on purpose: a real agent runs ``swarm worker`` several times per task, in a fresh
process each time, so this module imports neither pydantic nor the mayor, libtmux, rich or
watchdog. It builds the envelope's JSON document by hand (:mod:`agentmail.wire`); the mayor's
store parses and verifies it with the models as it does every message.
"""

from __future__ import annotations

import os
import pathlib
import typing as t

from agentmail import ledger, ulid, wire
from agentmail.delivery import load_key, send_sequenced
from agentmail.errors import AgentMailError, BadInput
from agentmail.worker_env import WorkerEnv, append_escape, write_result

if t.TYPE_CHECKING:
    from protocol.messages import Envelope

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

    doc: t.Mapping[str, t.Any]
    """The message as stored: the envelope's JSON document, signed."""
    files: t.Mapping[str, str] = {}
    """``{"result": <path>}`` or ``{"escapes": <path>}`` when a file was written too."""

    @property
    def id(self) -> str:
        return str(self.doc["id"])

    @property
    def message(self) -> Envelope:
        """The message as the model (parsing it imports pydantic: the CLI never asks)."""
        from protocol.messages import Envelope

        return Envelope.model_validate(self.doc)


def choice(value: str, choices: t.Sequence[str], option: str) -> str:
    """``value`` as one of ``choices`` (case-insensitive); BadInput naming ``option`` if not."""
    for allowed in choices:
        if value.lower() == allowed.lower():
            return allowed
    raise BadInput(f"{option}: {value!r} is not one of {', '.join(choices)}")


def send(env: WorkerEnv, mtype: str, **fields: t.Any) -> dict[str, t.Any]:
    """Mail the mayor one report of type ``mtype`` (idempotent: see the module docstring),
    signed with the worker's key; returns the stored document."""
    root = env.mail_root
    key_file = env.key_file or root / ".keys" / f"{env.worker}.key"
    try:
        key = load_key(key_file)
    except FileNotFoundError:
        if env.key_file is not None:
            raise
        from agentmail.errors import UnknownAgent

        raise UnknownAgent(env.worker, root) from None
    doc = wire.envelope_doc(
        sender=env.worker,
        to=(env.mayor,),
        mtype=mtype,
        fields=wire.fields_doc(mtype, bead_id=env.task, **fields),
        thread_id=env.task,
        run_id=env.run,
    )

    sent = send_sequenced(
        root,
        doc,
        key,
        f"{env.run}/{env.task}/{env.attempt}/{mtype}",
        new_id=ulid.UlidGenerator().new,
        redeliver=lambda previous: ledger.redeliver(root, previous),
        digest_skip=("body_md",),  # rendered from the fields, with a clock (BEAD_ACCEPTED)
    )
    return sent.doc


def accepted(env: WorkerEnv, *, title: str = "") -> Sent:
    """BEAD_ACCEPTED: the worker took the task."""
    return Sent(send(env, "BEAD_ACCEPTED", title=title))


def progress(
    env: WorkerEnv,
    text: str,
    *,
    step: str = "",
    context_usage: int = 0,
    files: t.Sequence[str] = (),
) -> Sent:
    """PROGRESS."""
    doc = send(
        env,
        "PROGRESS",
        step=step,
        status=text,
        context_usage=int(context_usage),
        files_touched=tuple(files),
    )
    return Sent(doc)


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
    doc = send(
        env,
        "HELP_REQUEST",
        issue_type=choice(issue_type, ISSUE_TYPES, "--issue-type"),
        problem=text,
        what_tried=tried,
        question=question or text,
        files_touched=tuple(files),
    )
    return Sent(doc)


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
    if not finding:
        raise BadInput("--finding: say what needs changing (it is empty)")
    severity = choice(severity, SEVERITIES, "--severity")
    record = {  # protocol.results.ScopeEscape, as its model_dump(mode="json")
        "worker": env.worker,
        "finding": finding,
        "suggested_files": list(paths),
        "timestamp": wire.created_now(),
        "task_id": env.task,
        "run_id": env.run,
        "intent": intent,
        "severity": severity,
    }
    path = append_escape(env.home, record)
    doc = send(env, "SCOPE_ESCAPE", finding=finding, files=paths, intent=intent, severity=severity)
    return Sent(doc, {"escapes": str(path)})


def _passed(value: str | None) -> bool:
    return (value or "").upper() == "PASS"


def _result(env: WorkerEnv, kind: str, detail_text: str, artifacts: t.Sequence[str] | None) -> str:
    """Write ``results/<task>.json`` (``protocol.results.WorkerResult``: a ``completion`` with
    its artifacts, or ``blocked``); return its path."""
    doc: dict[str, t.Any] = {
        "schema_version": 1,
        "type": kind,
        "issue_id": env.task,
        "status": "done" if kind == "completion" else "blocked",
        "detail": detail_text,
    }
    if artifacts is not None:  # first-seen order, each once, no blanks (the schema's rules)
        doc["artifacts"] = list(dict.fromkeys(a for a in artifacts if a.strip()))
    if env.worktree and str(env.worktree):
        doc["worktree_path"] = str(env.worktree)
    return str(write_result(env.home, doc))


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
    sha = resolve_commit(cwd, commit) if commit else head(cwd)
    paths = tuple(files) if files is not None else changed_files(env, cwd)
    path = _result(env, "completion", detail(summary, "done"), paths)
    doc = send(
        env,
        "DONE" if done else "OFFERING_READY",
        status="DONE",
        commit_sha=sha,
        files=paths,
        tests_pass=_passed(tests),
        lint_pass=_passed(lint),
        build_pass=_passed(build),
        summary=summary,
    )
    return Sent(doc, {"result": path})


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
    path = _result(env, "blocked", detail(f"{kind}: {reason}", "failed"), None)
    doc = send(
        env,
        "FAILED",
        failure_type=kind,
        reason=reason,
        internal_attempts=int(attempts),
        partial_commit_sha=commit,
        files=tuple(files),
    )
    return Sent(doc, {"result": path})


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
    doc = send(
        env,
        "CHECKPOINT",
        checkpoint_reason=choice(reason, CHECKPOINT_REASONS, "--reason"),
        partial_commit_sha=commit,
        progress=progress_text,
        context_usage=int(context_usage),
        next_steps=next_steps,
    )
    return Sent(doc)


def head(cwd: pathlib.Path) -> str:
    from runner import proc  # subprocess: only the reports that ask git pay for it

    return proc.run("git", "rev-parse", "HEAD", cwd=cwd).stdout.strip()


def resolve_commit(cwd: pathlib.Path, name: str) -> str:
    """The full sha ``name`` (``HEAD``, a branch, a short sha) names in ``cwd``: the mayor
    checks a clone's offer against its branch by sha. A name git cannot resolve there is
    passed on as given (the arbiter refuses it with the reason)."""
    from runner import proc

    out = proc.run(
        "git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{name}^{{commit}}",
        cwd=cwd, check=False,
    )  # fmt: skip
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else name


def assign_base(env: WorkerEnv) -> str:
    """The base commit of this task's latest ASSIGN in the worker's inbox, if any."""
    from agentmail.store import MailStore  # reading verifies with the models
    from protocol.messages import AssignFields, MessageType

    store = MailStore(env.mail_root)
    if not store.is_registered(env.worker):
        return ""
    try:
        page = store.list(env.worker, type=MessageType.ASSIGN, thread=env.task)
    except (AgentMailError, OSError):
        return ""  # no base: the offer names no files, as before an ASSIGN
    for stored in reversed(page.messages):
        fields = stored.envelope.fields
        if isinstance(fields, AssignFields) and fields.base_sha:
            return fields.base_sha
    return ""


def changed_files(env: WorkerEnv, cwd: pathlib.Path) -> tuple[str, ...]:
    """Files changed in ``cwd`` between the ASSIGN's base and HEAD (none without a base). In a
    sandbox the base is ``$SWARM_BASE`` (the same commit): its inbox holds no key to verify
    the mayor's mail with (docs/isolation.md)."""
    sandboxed = os.environ.get("SWARM_SANDBOX") == "1"
    base = os.environ.get("SWARM_BASE", "") if sandboxed else assign_base(env)
    if not base:
        return ()
    from runner import proc
    from runner.errors import CommandError

    try:
        out = proc.run("git", "diff", "--name-only", base, "HEAD", cwd=cwd).stdout
    except CommandError:
        return ()  # the base is not in this clone: no files rather than a failed offer
    return tuple(line for line in out.splitlines() if line)


def detail(text: str, fallback: str) -> str:
    """One line of at most :data:`DETAIL_MAX` characters (``fallback`` when empty)."""
    text = " ".join(text.split()) or fallback
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"
