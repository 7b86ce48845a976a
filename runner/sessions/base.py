"""What every session backend shares: the protocol, the spec and status of a session, names."""

from __future__ import annotations

import logging
import os
import pathlib
import re
import shutil
import typing as t

from runner.errors import CommandError, RunnerError, UsageError

logger = logging.getLogger(__name__)

SESSION_NAME_RE: t.Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+-]{0,199}")
PANE_OPTION: t.Final = "@swarm_pane"
"""Session user option holding the agent's pane id (a user may split the window when attached)."""
PLACEHOLDER: t.Final = ("sleep", "2147483647")
EXIT_OPTION: t.Final = "@swarm_exit"
"""Pane user option where the wrapper records the agent's exit status (see :func:`_wrapper`)."""
# Location variables that would point git in the worktree at another repository; the tmux server
# may have inherited them from whoever started it.
GIT_LOCATION_VARS: t.Final = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
)
ExitCallback = t.Callable[[str], None]


class AgentNotFound(CommandError):
    """The agent command's executable is not on PATH (or not executable)."""

    def __init__(self, argv: t.Sequence[str], path: str | None = None) -> None:
        self.cmd = tuple(argv)
        self.returncode = 127
        self.stdout = ""
        self.stderr = f"{argv[0]}: command not found"
        RunnerError.__init__(
            self,
            f"agent command not found: {argv[0]!r} (exit 127); install it, fix PATH"
            + (f" ({path})" if path else "")
            + " or choose another --agent / --agent-cmd",
        )


class SessionExists(RunnerError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"session {name} is already running; attach to it (swarm attach) or stop it first"
        )


class SessionSpec(t.NamedTuple):
    name: str
    """e.g. ``swarm-<run-id>-<task-id>`` (see :func:`session_name`); targeted by exact name."""
    argv: tuple[str, ...]
    """The agent command; never joined into a shell string."""
    cwd: pathlib.Path
    env: t.Mapping[str, str]
    """The worker environment, added to the inherited one."""
    log_path: pathlib.Path
    """Pane output is appended here from the first byte."""


class SessionStatus(t.NamedTuple):
    exists: bool
    alive: bool
    exit_status: int | None
    """When dead: the exit status; None if unknown or killed by a signal."""
    pid: int | None


MISSING: t.Final = SessionStatus(exists=False, alive=False, exit_status=None, pid=None)


class SessionBackend(t.Protocol):
    def start(self, spec: SessionSpec) -> None: ...

    def status(self, name: str) -> SessionStatus: ...

    def statuses(self, prefix: str) -> dict[str, SessionStatus]:
        """The status of every existing session whose name starts with ``prefix``, in one
        query (a missing session is absent: read it as :data:`MISSING`)."""

    def list_sessions(self, prefix: str) -> list[str]: ...

    def kill(self, name: str) -> None:
        """Stop the session and its process; idempotent."""

    def capture(self, name: str, lines: int = 50) -> str:
        """The last ``lines`` lines of the session's output."""

    def screen(self, name: str) -> str:
        """What the agent's pane shows now (its visible rows; '' when there is no screen)."""

    def send_text(self, name: str, text: str) -> bool:
        """Type ``text`` into the agent's pane and press Enter; False when this backend has
        no pane to type into or the Enter did not take."""

    def set_exit_callback(self, callback: ExitCallback) -> None:
        """Call ``callback(name)`` (from any thread) soon after a session's process exits; the
        callee then asks :meth:`status`. Spurious calls are allowed."""

    def close(self) -> None:
        """Stop helper threads and observers (sessions keep running)."""


def session_name(run_id: str, task_id: str) -> str:
    """The tmux session of a task: ``swarm-<run-id>-<task-id>``; ``.`` (valid in ids, but turned
    into ``_`` by tmux) becomes ``+`` so the name survives tmux unchanged and stays unique."""
    return f"swarm-{run_id}-{task_id}".replace(".", "+")


def check_session_name(name: str) -> str:
    if not SESSION_NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid session name {name!r}: use letters, digits, '_', '+' or '-' "
            "(tmux rewrites '.' and ':'), starting with a letter or digit"
        )
    return name


def find_executable(argv: t.Sequence[str], cwd: pathlib.Path, env: t.Mapping[str, str]) -> str:
    """The executable ``argv[0]`` resolves to; :class:`AgentNotFound` if none."""
    if not argv:
        raise UsageError("empty agent command: give --agent PRESET or --agent-cmd TEMPLATE")
    program = argv[0]
    search = env.get("PATH", os.environ.get("PATH", os.defpath))
    if "/" in program:
        candidate = pathlib.Path(program)
        if not candidate.is_absolute():
            candidate = cwd / candidate
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise AgentNotFound(argv)
    found = shutil.which(program, path=search)
    if found is None:
        raise AgentNotFound(argv, f"PATH={search}")
    return found


def _tail(text: str, lines: int) -> str:
    rows = text.splitlines()
    while rows and not rows[-1].strip():
        rows.pop()
    return "\n".join(rows[-lines:]) if lines > 0 else ""


def _notify(callback: ExitCallback | None, name: str) -> None:
    """Tell the backend's user that session ``name`` exited; its errors never kill our thread."""
    if callback is None:
        return
    try:
        callback(name)
    except Exception:
        logger.exception("exit callback failed", extra={"session": name})
