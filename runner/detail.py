"""What the interactive ``swarm watch`` shows of the selected task, and what its keys do.

:func:`task_detail` gathers the detail of one task: where its branch stands against the
integration branch (commits ahead and behind, the diff stat, uncommitted files in its worktree),
why it was last refused (:mod:`runner.why`) and a preview of its pane (``capture-pane`` of its
tmux session, else the end of ``pane.log``). The steering functions act on a run from outside
it, as a human: :func:`nudge` and :func:`answer` mail the worker (NUDGE, HELP_RESPONSE in the
task's thread) and type the text into its pane, where the agent reads it; :func:`restart` ends
the worker's session, which the mayor records as a crash and starts the next attempt (within the
plan's attempt budget). None of them prints.
"""

from __future__ import annotations

import logging
import pathlib
import re
import typing as t

from protocol.messages import Envelope, MessageType, TextFields
from protocol.state import RunState, TaskRecord
from runner import git, gitguard, why
from runner.actions import HUMAN, worker_name
from runner.errors import RunFailed, RunnerError
from runner.paths import SwarmPaths
from runner.sessions.base import SessionBackend

logger = logging.getLogger(__name__)

PREVIEW_LINES: t.Final = 12
_ANSI: t.Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-_]")


class Detail(t.NamedTuple):
    task_id: str
    ahead: int | None
    """Commits on the task's branch not in the integration branch (None: no branch yet)."""
    behind: int | None
    diffstat: str
    uncommitted: int | None
    """Files with uncommitted changes in its worktree (None: no worktree)."""
    why: why.Why | None
    preview: str
    preview_from: str
    """``pane`` (a live capture), ``pane.log`` or "" (nothing to show yet)."""


def _branch_position(
    repo: pathlib.Path, state: RunState, record: TaskRecord
) -> tuple[int | None, int | None, str]:
    branch = record.branch
    base = state.integration_head
    if not branch or not base or git.resolve(repo, f"refs/heads/{branch}") is None:
        return None, None, ""
    try:
        ahead = git.rev_list_count(repo, base, branch)
        behind = git.rev_list_count(repo, branch, base)
        return ahead, behind, git.diff_shortstat(repo, base, branch)
    except RunnerError as exc:
        logger.info("could not compare %s: %s", branch, exc, extra={"branch": branch})
        return None, None, ""


def _uncommitted(record: TaskRecord) -> int | None:
    if not record.worktree or not pathlib.Path(record.worktree).is_dir():
        return None
    try:
        # no index lock: the worker may be committing right now
        return len(gitguard.status(pathlib.Path(record.worktree), observe=True).dirty)
    except RunnerError:
        return None


def _log_tail(path: pathlib.Path, lines: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    clean = _ANSI.sub("", text).replace("\r", "")
    return "\n".join(line for line in clean.splitlines()[-lines:])


def task_detail(
    repo: pathlib.Path,
    state: RunState,
    task_id: str,
    *,
    capture: t.Callable[[str, int], str] | None = None,
    lines: int = PREVIEW_LINES,
) -> Detail:
    """The detail of ``task_id``; ``capture(session, lines)`` reads a live pane (the tmux
    backend's ``capture``), else the end of its ``pane.log`` is shown."""
    record = state.tasks[task_id]
    run = SwarmPaths.for_repo(repo).run(state.run_id)
    ahead, behind, stat = _branch_position(repo, state, record)
    preview, source = "", ""
    if capture is not None and record.session and record.state == "running":
        try:
            preview = capture(record.session, lines).rstrip()
        except RunnerError as exc:
            logger.info("could not capture %s: %s", record.session, exc)
        source = "pane" if preview else ""
    if not preview:
        preview = _log_tail(run.pane_log(task_id), lines).rstrip()
        source = "pane.log" if preview else ""
    return Detail(
        task_id,
        ahead,
        behind,
        stat,
        _uncommitted(record),
        why.of_task(run, record, always=True),
        preview,
        source,
    )


def position_text(detail: Detail, integration: str) -> str:
    """``2 ahead, 0 behind swarm/r1/integration; 2 files changed, ...; 1 uncommitted``."""
    if detail.ahead is None:
        text = "no branch yet"
    else:
        text = f"{detail.ahead} ahead, {detail.behind} behind {integration or 'integration'}"
        text += f"; {detail.diffstat}" if detail.diffstat else "; no changes"
    if detail.uncommitted:
        text += f"; {detail.uncommitted} uncommitted file(s) in its worktree"
    return text


# -- steering ----------------------------------------------------------------------------------


def _live_session(state: RunState, task_id: str) -> str:
    record = state.tasks.get(task_id)
    if record is None:
        raise RunFailed(f"no task {task_id!r} in run {state.run_id}")
    if record.state != "running" or not record.session:
        raise RunFailed(f"task {task_id} is {record.state}, not running: nothing to steer")
    return record.session


def _mail_worker(
    repo: pathlib.Path, state: RunState, task_id: str, mtype: MessageType, text: str
) -> None:
    from agentmail.store import MailStore

    store = MailStore(SwarmPaths.for_repo(repo).mail)
    store.register(HUMAN)
    store.send(
        Envelope.model_validate(
            {
                "from": HUMAN,
                "to": [worker_name(task_id)],
                "type": mtype,
                "run_id": state.run_id,
                "thread_id": task_id,
                "subject": f"[{task_id}] {mtype.value}",
                "body_md": text,
                "fields": TextFields(text=text),
            }
        )
    )


def nudge(
    repo: pathlib.Path, state: RunState, task_id: str, text: str, backend: SessionBackend
) -> bool:
    """Mail the worker a NUDGE and type ``text`` into its pane; True when the pane took it."""
    session = _live_session(state, task_id)
    _mail_worker(repo, state, task_id, MessageType.NUDGE, text)
    return backend.send_text(session, text)


def answer(
    repo: pathlib.Path, state: RunState, task_id: str, text: str, backend: SessionBackend
) -> bool:
    """Answer the task's help request: HELP_RESPONSE mail in its thread, and the answer typed
    into its pane (an agent waiting at its prompt reads it there); True when the pane took it."""
    session = _live_session(state, task_id)
    _mail_worker(repo, state, task_id, MessageType.HELP_RESPONSE, text)
    return backend.send_text(session, f"Answer from a human to your help request: {text}")


def restart(state: RunState, task_id: str, backend: SessionBackend) -> None:
    """End the worker's session: the mayor records the crash and starts the next attempt."""
    backend.kill(_live_session(state, task_id))
