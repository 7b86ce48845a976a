"""Task validation (agentops order and retry limits) and plan gates, run as real commands."""

from __future__ import annotations

import logging
import pathlib
import re
import typing as t

from protocol.plan import Gate, Task
from runner.errors import CommandError
from runner.proc import run

logger = logging.getLogger(__name__)

RETRY_LIMITS: t.Final = {"files_exist": 2, "content_check": 2, "lint": 2, "tests": 3, "command": 3}
"""agentops per-check retry limits; ``custom`` uses the plan's attempt budget."""

DEFAULT_CHECK_TIMEOUT: t.Final = 600.0


class CheckFailure(t.NamedTuple):
    check: str
    """``files_exist``, ``content_check``, ``lint``, ``tests``, ``command``, ``custom:<name>``,
    or ``gate:<name>``."""
    reason: str
    output: str = ""

    @property
    def retry_limit(self) -> int | None:
        return RETRY_LIMITS.get(self.check)


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


Wrap = t.Callable[[t.Sequence[str]], t.Sequence[str]]
"""Turns a command's argv into the argv that runs it somewhere else (a worker's sandbox)."""


def _shell(
    command: str,
    cwd: pathlib.Path,
    timeout: float | None,
    env: t.Mapping[str, str] | None,
    wrap: Wrap | None = None,
) -> tuple[int, str]:
    argv: t.Sequence[str] = ("sh", "-c", command)
    argv = wrap(argv) if wrap else argv
    try:
        result = run(*argv, cwd=cwd, env=env, check=False, timeout=timeout)
    except CommandError as exc:
        return exc.returncode, exc.stderr
    return result.returncode, result.stdout + result.stderr


def validate(
    task: Task,
    worktree: pathlib.Path,
    *,
    timeout: float | None = None,
    env: t.Mapping[str, str] | None = None,
    wrap: Wrap | None = None,
) -> CheckFailure | None:
    """Run the task's checks in its worktree in agentops order; the first failure, or None.
    ``env``: what the commands get on top of the environment (the worker's PATH and git
    identity: :func:`runner.agents.worker.check_environ`); ``wrap``: where the commands run
    (a sandboxed worker's checks run in its sandbox, never with more than it had)."""
    checks = task.validation
    limit = timeout or DEFAULT_CHECK_TIMEOUT
    for rel in checks.files_exist:
        if not (worktree / rel).exists():
            return CheckFailure("files_exist", f"{rel} does not exist")
    for content in checks.content_check:
        path = worktree / content.file
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return CheckFailure("content_check", f"{content.file} cannot be read")
        if not re.search(content.pattern, text, re.MULTILINE):
            return CheckFailure(
                "content_check", f"{content.file} does not match {content.pattern!r}"
            )
    commands = [
        ("lint", checks.lint),
        ("tests", checks.tests),
        ("command", checks.command),
        *((f"custom:{c.name}", c.command) for c in checks.custom),
    ]
    for name, command in commands:
        if not command:
            continue
        code, output = _shell(command, worktree, limit, env, wrap)
        if code != 0:
            return CheckFailure(name, f"`{command}` exited {code}", tail(output))
    return None


def run_gates(
    gates: t.Sequence[Gate],
    worktree: pathlib.Path,
    *,
    fast_only: bool,
    env: t.Mapping[str, str] | None = None,
    wrap: Wrap | None = None,
) -> CheckFailure | None:
    """Run the plan's gates on the integration worktree; the first failure, or None.
    ``wrap``: where they run (a sandboxed run's gates: in a sandbox of their own)."""
    for gate in gates:
        if fast_only and not gate.fast:
            continue
        timeout = gate.timeout or DEFAULT_CHECK_TIMEOUT
        code, output = _shell(gate.command, worktree, timeout, env, wrap)
        if code != 0:
            return CheckFailure(
                f"gate:{gate.name}", f"gate {gate.name} exited {code}", tail(output)
            )
        if gate.threshold is not None:
            failure = _threshold(gate, output)
            if failure is not None:
                return failure
    return None


def _threshold(gate: Gate, output: str) -> CheckFailure | None:
    assert gate.threshold is not None
    match = re.search(gate.threshold.pattern, output, re.MULTILINE)
    name = f"gate:{gate.name}"
    if not match:
        return CheckFailure(
            name,
            f"gate {gate.name} printed no number matching {gate.threshold.pattern!r}",
            tail(output),
        )
    try:
        value = float(match.group(1) if match.groups() else match.group(0))
    except ValueError:
        return CheckFailure(name, f"gate {gate.name}: {match.group(0)!r} is not a number")
    low, high = gate.threshold.min, gate.threshold.max
    if low is not None and value < low:
        return CheckFailure(name, f"gate {gate.name}: {value:g} is below the minimum {low:g}")
    if high is not None and value > high:
        return CheckFailure(name, f"gate {gate.name}: {value:g} is above the maximum {high:g}")
    return None
