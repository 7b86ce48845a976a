"""The runner's exceptions. The CLI maps them to exit codes (docs/exit-codes.md).

RunnerError
 ├── UsageError (also ValueError)      exit 2: bad plan, bad option, bad input file
 ├── CommandError                      a subprocess failed (git, tmux, an agent)
 └── RunFailed                         exit 1: the run or command failed as such
"""

from __future__ import annotations

import typing as t


class RunnerError(Exception):
    """Base of every error raised by the runner."""

    exit_code: t.ClassVar[int] = 1


class UsageError(RunnerError, ValueError):
    """Bad input from the user: the message names the file, task or field and the fix."""

    exit_code = 2


class RunFailed(RunnerError):
    """The run or command failed; the message is the one line shown to the user."""


class CommandError(RunnerError):
    """A subprocess exited non-zero; the message shows the command and its stderr."""

    def __init__(self, cmd: t.Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        self.cmd = tuple(cmd)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        detail = (stderr or stdout).strip()
        super().__init__(
            f"command failed (exit {returncode}): {' '.join(self.cmd)}"
            + (f"\n{detail}" if detail else "")
        )


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an expected error (docs/exit-codes.md): its ``exit_code``,
    else 2 for bad input (``ValueError``, pydantic's ``ValidationError`` among them), else 1."""
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int):
        return code
    if isinstance(exc, ValueError):
        return 2
    return 1
