"""The one way the runner starts a short-lived process (pre-commit ``cmd_output_b`` style)."""

from __future__ import annotations

import os
import subprocess
import typing as t

from runner.errors import CommandError


class Result(t.NamedTuple):
    returncode: int
    stdout: str
    stderr: str


def clean_env(extra: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """The current environment without inherited ``GIT_*`` variables that would redirect git
    (workers run inside worktrees and hooks), plus ``extra``."""
    keep = {
        "GIT_CONFIG_GLOBAL",
        "GIT_CONFIG_NOSYSTEM",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_DATE",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in keep}
    if extra:
        env.update(extra)
    return env


def run(
    *cmd: str,
    cwd: str | os.PathLike[str] | None = None,
    env: t.Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float | None = None,
    input: str | None = None,
) -> Result:
    """Run ``cmd`` and capture its output as text; raise :class:`CommandError` if ``check`` and
    it exits non-zero (or times out, reported as exit -1)."""
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            env=clean_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise CommandError(cmd, -1, "", f"timed out after {timeout}s") from exc
    except FileNotFoundError as exc:
        raise CommandError(cmd, 127, "", f"{cmd[0]}: command not found") from exc
    result = Result(proc.returncode, proc.stdout, proc.stderr)
    if check and proc.returncode != 0:
        raise CommandError(cmd, proc.returncode, proc.stdout, proc.stderr)
    return result
