"""``swarm doctor``'s agent checks: is the CLI there, at a tested version, do the preset's
flags still parse, is this repository trusted, and would the chosen level refuse root.

Pure library code: each check returns :class:`AgentCheck` records and never prints; the doctor
command turns them into its own rows (``ok``/``warn``/``fail`` with the fix).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import typing as t

from protocol.plan import Task
from runner import proc
from runner.agents.adapter import (
    DEFAULT_PERMISSIONS,
    Adapter,
    Permissions,
    WorkerContext,
)
from runner.agents.registry import ADAPTERS
from runner.errors import CommandError

Level = t.Literal["ok", "warn", "fail"]
VERSION_RE: t.Final = re.compile(r"(\d+\.\d+\.\d+)")
INSTALL: t.Final = {
    "claude": "npm install -g @anthropic-ai/claude-code@{v}",
    "codex": "npm install -g @openai/codex@{v}",
    "gemini": "npm install -g @google/gemini-cli@{v}",
    "aider": "pipx install aider-chat=={v}",
}


class AgentCheck(t.NamedTuple):
    agent: str
    check: t.Literal["installed", "version", "flags", "trust", "root"]
    level: Level
    detail: str
    fix: str = ""


def _run(argv: t.Sequence[str], timeout: float) -> str | None:
    try:
        result = proc.run(*argv, check=False, timeout=timeout)
    except CommandError:
        return None
    return result.stdout + result.stderr


def check_agent(
    name: str,
    *,
    repo: pathlib.Path,
    permissions: Permissions = DEFAULT_PERMISSIONS,
    trust_worktrees: bool = False,
    home: pathlib.Path | None = None,
    timeout: float = 30.0,
    is_root: bool | None = None,
) -> list[AgentCheck]:
    """Every check for the built-in agent ``name`` (empty for scripted/command/custom)."""
    adapter = ADAPTERS.get(name)
    if adapter is None:
        return []
    found = shutil.which(adapter.program)
    install = INSTALL[name].format(v=adapter.tested_version)
    if found is None:
        return [
            AgentCheck(
                name,
                "installed",
                "fail",
                f"{adapter.program!r} is not on PATH",
                f"{install} (or scripts/agents-install {name} for a cached copy)",
            )
        ]
    checks = [AgentCheck(name, "installed", "ok", found)]
    checks.append(_version(adapter, timeout, install))
    checks.append(_flags(adapter, timeout))
    checks.append(_trust(adapter, repo, home or pathlib.Path.home(), trust_worktrees))
    root = is_root if is_root is not None else hasattr(os, "geteuid") and os.geteuid() == 0
    if root and permissions in adapter.root_refused:
        checks.append(
            AgentCheck(
                name,
                "root",
                "fail",
                f"agent_permissions = {permissions!r} makes {name} refuse to run as root",
                "use agent_permissions = 'worktree', or run swarm as another user",
            )
        )
    elif root and adapter.root_refused:
        checks.append(
            AgentCheck(name, "root", "ok", "running as root: level 'full' would be refused")
        )
    return checks


def _version(adapter: Adapter, timeout: float, install: str) -> AgentCheck:
    out = _run(adapter.version_args(), timeout)
    match = VERSION_RE.search(out or "")
    if match is None:
        return AgentCheck(
            adapter.name, "version", "warn", f"`{adapter.program} --version` said {out!r}"
        )
    version = match.group(1)
    if version == adapter.tested_version:
        return AgentCheck(adapter.name, "version", "ok", f"{version} (tested)")
    return AgentCheck(
        adapter.name,
        "version",
        "warn",
        f"{version}; swarm was tested with {adapter.tested_version}",
        f"{install} for the tested version, or run the suite with scripts/agents-install --latest",
    )


def _flags(adapter: Adapter, timeout: float) -> AgentCheck:
    out = _run(adapter.help_args(), timeout) or ""
    missing = [flag for flag in adapter.flags_for_help() if flag not in out]
    if missing:
        return AgentCheck(
            adapter.name,
            "flags",
            "fail",
            f"`{adapter.program} --help` does not list {', '.join(missing)}",
            "install the tested version (docs/agents.md), or define your own preset",
        )
    return AgentCheck(adapter.name, "flags", "ok", "the preset's flags are known")


def _trust(adapter: Adapter, repo: pathlib.Path, home: pathlib.Path, consent: bool) -> AgentCheck:
    ctx = WorkerContext(
        task=Task(id="doctor", subject="doctor"),
        repo=repo,
        worktree=repo,
        brief=repo / "brief.md",
        swarm=pathlib.Path("swarm"),
        swarm_home=repo,
        home=home,
        git_common_dir=repo / ".git",
        trust_worktrees=consent,
    )
    trusted = adapter.trusted(ctx)
    if trusted is None:
        return AgentCheck(adapter.name, "trust", "ok", "no folder trust to give")
    if trusted:
        return AgentCheck(adapter.name, "trust", "ok", f"{repo} is trusted")
    if consent:
        return AgentCheck(
            adapter.name, "trust", "ok", "not trusted; trust_worktrees lets swarm record it"
        )
    return AgentCheck(
        adapter.name,
        "trust",
        "warn",
        f"{repo} is not trusted: workers would stop at the trust dialog (refused up front)",
        adapter.trust_fix(ctx),
    )
