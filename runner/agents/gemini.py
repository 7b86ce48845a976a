"""Gemini CLI (npm ``@google/gemini-cli``), tested 0.61.0.

Trust is per folder path in ``~/.gemini/trustedFolders.json`` (``TRUST_FOLDER``, or
``TRUST_PARENT`` for the folder's parent); granting it in the dialog restarts the CLI (the task
starts over), so with consent swarm passes ``--skip-trust`` (this session, this worktree only,
nothing recorded). Its shell tool runs git with ``GIT_CONFIG_GLOBAL=/dev/null``, so the
repository's identity is exported as ``GIT_AUTHOR_*``/``GIT_COMMITTER_*``.
"""

from __future__ import annotations

import dataclasses
import pathlib
import typing as t

from runner.agents import _files
from runner.agents.adapter import Adapter, WorkerContext, fp, shell_words

TESTED_VERSION: t.Final = "0.61.0"


def _trusted_folders(home: pathlib.Path) -> dict[str, t.Any]:
    return _files.read_json(home / ".gemini" / "trustedFolders.json")


def folder_trust_enabled(home: pathlib.Path) -> bool:
    settings = _files.read_json(home / ".gemini" / "settings.json")
    security = settings.get("security") or {}
    folder = security.get("folderTrust") if isinstance(security, dict) else None
    return not (isinstance(folder, dict) and folder.get("enabled") is False)


@dataclasses.dataclass(frozen=True)
class GeminiAdapter(Adapter):
    def argv(self, ctx: WorkerContext) -> tuple[str, ...]:
        resume = ("--resume", "latest") if ctx.resume else ()
        trust = ("--skip-trust",) if ctx.trust_worktrees else ()
        if ctx.permissions == "full":
            mode: tuple[str, ...] = ("--yolo",)
        else:
            allowed = [f"{ctx.swarm} worker", "git add", "git commit", "git status", "git diff"]
            allowed += [" ".join(shell_words(c)[:2]) for c in ctx.validation_commands()]
            mode = ("--approval-mode", "auto_edit")
            for command in dict.fromkeys(a for a in allowed if a):
                mode += ("--allowed-tools", f"run_shell_command({command})")
        return (self.program, *resume, *trust, *mode, "--prompt-interactive", ctx.prompt)

    def trusted(self, ctx: WorkerContext) -> bool | None:
        if not folder_trust_enabled(ctx.home):
            return None
        for path, level in _trusted_folders(ctx.home).items():
            folder = pathlib.Path(path)
            if level == "TRUST_FOLDER" and _files.within(ctx.worktree, folder):
                return True
            if level == "TRUST_PARENT" and _files.within(ctx.worktree, folder.parent):
                return True
        return False

    def prepare(self, ctx: WorkerContext) -> dict[str, str]:
        return {}  # the identity is exported for every CLI (runner.agents.worker)

    def trust_fix(self, ctx: WorkerContext) -> str:
        return (
            "trust the folder swarm puts worktrees in (--worktree-root) as TRUST_FOLDER in "
            "~/.gemini/trustedFolders.json, or set `trust_worktrees = true` in .swarm.toml "
            "to start each worker with --skip-trust (this session and worktree only)"
        )

    def flags_for_help(self) -> tuple[str, ...]:
        return ("--skip-trust", "--approval-mode", "--allowed-tools", "--prompt-interactive")


ADAPTER: t.Final = GeminiAdapter(
    name="gemini",
    program="gemini",
    tested_version=TESTED_VERSION,
    package="npm @google/gemini-cli",
    fingerprints=(
        fp("dialog", r"Do you trust the files in this folder|Trust folder \(", "trust"),
        fp("dialog", r"How would you like to authenticate|Get started", "the login screen"),
        fp(
            "permission",
            r"Apply this change\?|Allow execution|Allow once|Do you want to proceed",
            "a permission prompt",
        ),
        fp("working", r"esc to cancel", "working"),
        fp("idle", r"Type your message", "idle at its prompt"),
    ),
)
