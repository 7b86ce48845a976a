"""Claude Code (npm ``@anthropic-ai/claude-code``), tested 2.1.332.

Trust lives in ``~/.claude.json`` under ``projects[<path>].hasTrustDialogAccepted``; a folder
trusted there covers everything below it, and a worktree of a trusted main repository is
trusted too (a trusted parent folder is not enough). With consent swarm records trust for each
worktree's own path and nothing else. The brief is in the worktree, so no
``--add-dir`` (which asks for trust of its own) is needed.

Claude Code's own hooks (``--settings``) tell swarm what its screen would: ``Notification``
(``permission_prompt``, ``idle_prompt``, ``elicitation_dialog``), ``Stop`` (it finished its turn:
idle at its prompt), ``UserPromptSubmit`` and ``PreToolUse`` (working). Each hook only copies its
JSON to ``.swarm/hook.json`` in the worktree (``sh``, ``cat`` and ``mv``: no Python start-up per
tool call); the mayor reads it as a hint beside the pane's content.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shlex
import typing as t

from runner.agents import _files
from runner.agents.adapter import HOOK_NAME, Adapter, Hint, Verdict, WorkerContext, fp

TESTED_VERSION: t.Final = "2.1.332"
GIT_TOOLS: t.Final = ("git add", "git commit", "git status", "git diff", "git log")
HOOK_EVENTS: t.Final = ("Notification", "Stop", "UserPromptSubmit", "PreToolUse")
NOTIFICATIONS: t.Final[dict[str, Verdict]] = {
    "permission_prompt": Verdict("permission", "a permission prompt"),
    "idle_prompt": Verdict("idle", "idle at its prompt"),
    "elicitation_dialog": Verdict("dialog", "a question dialog"),
}
HOOK_LIMIT: t.Final = 64 * 1024


def hook_settings(worktree: pathlib.Path) -> str:
    """The ``--settings`` JSON whose hooks copy each event's JSON to ``.swarm/hook.json``."""
    target = shlex.quote(str(worktree / HOOK_NAME))
    command = {"type": "command", "command": f"cat > {target}.$$ && mv -f {target}.$$ {target}"}
    hooks = {event: [{"matcher": "*", "hooks": [command]}] for event in HOOK_EVENTS}
    return json.dumps({"hooks": hooks}, separators=(",", ":"))


def hook_verdict(doc: t.Any) -> Verdict | None:
    """What one hook event says about the pane (None: nothing it can say)."""
    if not isinstance(doc, dict):
        return None
    event = doc.get("hook_event_name")
    if event == "Notification":
        kind = str(doc.get("notification_type") or "")
        message = str(doc.get("message") or "")[:200]
        if kind not in NOTIFICATIONS and "permission" in message:
            kind = "permission_prompt"
        verdict = NOTIFICATIONS.get(kind)
        return verdict._replace(what=message or verdict.what) if verdict else None
    if event == "Stop":
        return Verdict("idle", "idle at its prompt (its turn ended)")
    if event in ("UserPromptSubmit", "PreToolUse"):
        return Verdict("working", "working")
    return None


def config_path(home: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(os.environ.get("CLAUDE_CONFIG_DIR") or home) / ".claude.json"


@dataclasses.dataclass(frozen=True)
class ClaudeAdapter(Adapter):
    def argv(self, ctx: WorkerContext) -> tuple[str, ...]:
        head: tuple[str, ...] = ("--continue",) if ctx.resume else ()
        head += ("--settings", hook_settings(ctx.worktree))  # hooks say what the pane shows
        if ctx.permissions == "full":
            return (self.program, *head, "--dangerously-skip-permissions", "--", ctx.prompt)
        allowed = [f"Bash({ctx.swarm} worker:*)", *(f"Bash({g}:*)" for g in GIT_TOOLS)]
        allowed += [f"Bash({command})" for command in ctx.validation_commands()]
        return (
            self.program,
            *head,
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

    def forget_trust(self, home: pathlib.Path, worktrees: t.Collection[pathlib.Path]) -> int:
        path = config_path(home)
        doc = _files.read_json(path)
        projects = doc.get("projects")
        if not isinstance(projects, dict):
            return 0
        gone = [key for key in projects if pathlib.Path(key) in worktrees]
        for key in gone:
            del projects[key]
        if gone:
            _files.write_json(path, doc)
        return len(gone)

    def hook_hint(self, worktree: pathlib.Path) -> Hint | None:
        path = worktree / HOOK_NAME
        try:
            at = path.stat().st_mtime
            with path.open("rb") as f:
                doc = json.loads(f.read(HOOK_LIMIT))
        except (OSError, ValueError):
            return None  # none yet, or garbage a worker wrote: only a hint, so no harm
        verdict = hook_verdict(doc)
        return Hint(verdict, at) if verdict else None

    def flags_for_help(self) -> tuple[str, ...]:
        return ("--settings", "--permission-mode", "--allowedTools", "--continue")


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
