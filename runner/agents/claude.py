"""Claude Code (npm ``@anthropic-ai/claude-code``), tested 2.1.332.

Trust lives in ``~/.claude.json`` under ``projects[<path>].hasTrustDialogAccepted``; a folder
trusted there covers everything below it, and a worktree of a trusted main repository is
trusted too (a trusted parent folder is not enough). With consent swarm records trust for each
worktree's own path and nothing else. The brief is in the worktree, so no
``--add-dir`` (which asks for trust of its own) is needed.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import typing as t

from runner.agents import _files
from runner.agents.adapter import Adapter, WorkerContext, fp

TESTED_VERSION: t.Final = "2.1.332"
GIT_TOOLS: t.Final = ("git add", "git commit", "git status", "git diff", "git log")


def config_path(home: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(os.environ.get("CLAUDE_CONFIG_DIR") or home) / ".claude.json"


@dataclasses.dataclass(frozen=True)
class ClaudeAdapter(Adapter):
    def argv(self, ctx: WorkerContext) -> tuple[str, ...]:
        resume = ("--continue",) if ctx.resume else ()
        if ctx.permissions == "full":
            return (self.program, *resume, "--dangerously-skip-permissions", "--", ctx.prompt)
        allowed = [f"Bash({ctx.swarm} worker:*)", *(f"Bash({g}:*)" for g in GIT_TOOLS)]
        allowed += [f"Bash({command})" for command in ctx.validation_commands()]
        return (
            self.program,
            *resume,
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            *allowed,
            "--",
            ctx.prompt,
        )

    def trusted(self, ctx: WorkerContext) -> bool | None:
        projects = _files.read_json(config_path(ctx.home)).get("projects") or {}
        for path, entry in projects.items():
            if not isinstance(entry, dict) or not entry.get("hasTrustDialogAccepted"):
                continue
            if pathlib.Path(path) in (ctx.worktree, ctx.repo):
                return True
        return False

    def prepare(self, ctx: WorkerContext) -> dict[str, str]:
        if ctx.trust_worktrees and not self.trusted(ctx):
            path = config_path(ctx.home)
            doc = _files.read_json(path)
            projects = doc.setdefault("projects", {})
            entry = projects.setdefault(str(ctx.worktree), {})
            entry["hasTrustDialogAccepted"] = True
            _files.write_json(path, doc)
        return {}

    def flags_for_help(self) -> tuple[str, ...]:
        return ("--permission-mode", "--allowedTools", "--continue")


ADAPTER: t.Final = ClaudeAdapter(
    name="claude",
    program="claude",
    tested_version=TESTED_VERSION,
    package="npm @anthropic-ai/claude-code",
    root_refused=("full",),
    fingerprints=(
        fp("dialog", r"Quick safety check|Yes, I trust this folder|trust the files", "trust"),
        fp("dialog", r"Adding a new directory|Yes, add it", "the add-directory trust dialog"),
        fp("dialog", r"custom API key|use this API key", "the API-key dialog"),
        fp("dialog", r"Select login method|Choose the text style|Unable to connect", "onboarding"),
        fp("dialog", r"Bypass Permissions mode", "the bypass-permissions warning"),
        fp(
            "permission",
            r"Do you want to (proceed|make this edit|create|allow)|Allow this (read|write)"
            r"|^\s*❯ 1\. Yes",
            "a permission prompt",
        ),
        fp("working", r"esc to interrupt", "working"),
        fp("idle", r"^❯\s*$|^> \s*$", "idle at its prompt"),
    ),
)
