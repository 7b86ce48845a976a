"""Agent presets: how to start Claude Code, Codex, Aider, Gemini, any command, or the built-in
scripted agent in a worker's pane (see ``docs/agents.md``).

A preset is an argv *template*: placeholders are substituted inside each token separately, so
the prompt, the brief path or a task id never pass through a shell string. The brief itself
(task, manifest, validation, the ``swarm worker`` commands to report with) is a file; agents that
take a prompt argument get a short fixed sentence pointing at it.
"""

from __future__ import annotations

import difflib
import pathlib
import re
import shlex
import sys
import typing as t

from runner.errors import UsageError

PLACEHOLDERS: t.Final = ("brief", "task", "worktree", "prompt", "python", "swarm")
PROMPT: t.Final = (
    "Read the task brief in {brief} and do it; report with the `{swarm} worker` "
    "commands it lists (use that absolute path)."
)
"""The same sentence as :func:`runner.agents.adapter.prompt_for`."""
_TOKEN_RE: t.Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AgentPreset(t.NamedTuple):
    name: str
    argv: tuple[str, ...]
    """Template tokens with ``{brief}``, ``{task}``, ``{worktree}``, ``{prompt}``, ``{python}``,
    ``{swarm}`` (the absolute path of the ``swarm`` the agent reports with)."""
    resume_argv: tuple[str, ...] | None = None
    """Continues the agent's previous conversation in the worktree (None: start afresh)."""
    skip_permissions: tuple[str, ...] = ()
    """The agent's own flags that skip its permission prompts; only added on request."""
    home: tuple[str, ...] = ()
    """What the CLI needs of the user's home (its config and credentials), relative to it:
    all a sandboxed worker's private home holds (``--isolation sandbox``, docs/isolation.md)."""


# The argv each built-in adapter (runner/agents/<name>.py) runs at the default permission level
# for a task without validation commands; the adapters add the task's checks, trust flags,
# hooks (Claude Code's --settings) and the level's flags (tests/runner/test_adapters.py keeps
# the two in step).
_CLAUDE_TOOLS: t.Final = (
    "Bash({swarm} worker:*)",
    "Bash(git add:*)",
    "Bash(git commit:*)",
    "Bash(git status:*)",
    "Bash(git diff:*)",
    "Bash(git log:*)",
)
_GEMINI_TOOLS: t.Final = tuple(
    token
    for command in ("{swarm} worker", "git add", "git commit", "git status", "git diff")
    for token in ("--allowed-tools", f"run_shell_command({command})")
)
AIDER_FLAGS: t.Final = (
    "--yes-always",
    "--no-gitignore",
    "--no-check-update",
    "--no-show-release-notes",
    "--analytics-disable",
    "--no-suggest-shell-commands",
    "--no-show-model-warnings",
    "--no-pretty",
)
_AIDER: t.Final = ("{python}", "-m", "runner.agents.aider_wrapper", "--swarm", "{swarm}", "--")
_PRESETS: t.Final[tuple[AgentPreset, ...]] = (
    AgentPreset(
        "claude",
        ("claude", "--permission-mode", "acceptEdits", "--allowedTools", *_CLAUDE_TOOLS, "--",
         "{prompt}"),
        resume_argv=("claude", "--continue", "--permission-mode", "acceptEdits",
                     "--allowedTools", *_CLAUDE_TOOLS, "--", "{prompt}"),
        skip_permissions=("--dangerously-skip-permissions",),
        home=(".claude.json", ".claude"),
    ),
    AgentPreset(
        "codex",
        ("codex", "--no-daemon", "--approve-for-me", "-c", "allow_login_shell=false", "{prompt}"),
        resume_argv=("codex", "resume", "--last", "--no-daemon", "--approve-for-me", "-c",
                     "allow_login_shell=false", "{prompt}"),
        skip_permissions=("--dangerously-bypass-approvals-and-sandbox",),
        home=(".codex",),
    ),
    AgentPreset(
        "gemini",
        ("gemini", "--approval-mode", "auto_edit", *_GEMINI_TOOLS, "--prompt-interactive",
         "{prompt}"),
        resume_argv=("gemini", "--resume", "latest", "--approval-mode", "auto_edit",
                     *_GEMINI_TOOLS, "--prompt-interactive", "{prompt}"),
        skip_permissions=("--yolo",),
        home=(".gemini",),
    ),
    AgentPreset(
        "aider",
        (*_AIDER, "aider", *AIDER_FLAGS, "--message-file", "{brief}"),
        resume_argv=(*_AIDER, "aider", *AIDER_FLAGS, "--restore-chat-history",
                     "--message-file", "{brief}"),
        home=(".aider.conf.yml", ".aider"),
    ),
    AgentPreset("scripted", ("{python}", "-m", "runner.agents.scripted")),
)  # fmt: skip
COMMAND: t.Final = "command"


def preset_names() -> tuple[str, ...]:
    """Every preset name ``--agent`` accepts (``command`` needs ``--agent-cmd``)."""
    return (*(p.name for p in _PRESETS), COMMAND)


def preset(name: str, template: str | None = None) -> AgentPreset:
    """The preset called ``name``; ``command`` is built from ``template`` (``--agent-cmd``)."""
    if name == COMMAND:
        if not template:
            raise UsageError(
                "agent 'command' needs a command template: pass --agent-cmd 'my-agent {prompt}'"
            )
        return command_preset(template)
    for known in _PRESETS:
        if known.name == name:
            return known
    raise UsageError(f"unknown agent preset {name!r}: use one of {', '.join(preset_names())}")


def is_preset(name: str) -> bool:
    return name in preset_names()


def from_spec(spec: str) -> AgentPreset:
    """A plan's ``agent`` value: a preset name, or else a command template."""
    return preset(spec) if is_preset(spec) and spec != COMMAND else command_preset(spec)


def command_preset(template: str) -> AgentPreset:
    """A preset from an ``--agent-cmd`` template, split like a POSIX shell would (``shlex``);
    the placeholders are then substituted per token, never re-joined into a shell string."""
    try:
        tokens = tuple(shlex.split(template))
    except ValueError as exc:
        raise UsageError(f"bad --agent-cmd {template!r}: {exc}; check its quotes") from exc
    if not tokens:
        raise UsageError("empty --agent-cmd: give the agent command, e.g. 'my-agent {prompt}'")
    for token in tokens:
        _substitute(token, dict.fromkeys(PLACEHOLDERS, ""), where=f"--agent-cmd {template!r}")
    return AgentPreset(COMMAND, tokens)


def _substitute(token: str, values: t.Mapping[str, str], *, where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("{{", "}}"):
            return text[0]
        key = match.group(1)
        if key not in values:
            near = difflib.get_close_matches(key, PLACEHOLDERS, n=1, cutoff=0.6)
            raise UsageError(
                f"unknown placeholder {{{key}}} in {where}: "
                + (f"did you mean {{{near[0]}}}? " if near else "")
                + "use "
                + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                + " (write {{ and }} for literal braces)"
            )
        return values[key]

    return _TOKEN_RE.sub(replace, token)


def _with_flags(argv: tuple[str, ...], flags: tuple[str, ...]) -> tuple[str, ...]:
    """Insert ``flags`` after the program and its subcommands (the leading plain words)."""
    at = 1
    while at < len(argv) and not argv[at].startswith("-") and "{" not in argv[at]:
        at += 1
    return (*argv[:at], *flags, *argv[at:])


def build_argv(
    preset: AgentPreset,
    *,
    brief: pathlib.Path,
    task: str,
    worktree: pathlib.Path,
    python: str = sys.executable,
    resume: bool = False,
    skip_permissions: bool = False,
    extra_args: t.Sequence[str] = (),
    swarm: str = "swarm",
) -> tuple[str, ...]:
    """The concrete argv of ``preset`` for one task. ``resume`` picks the preset's
    ``resume_argv`` when it has one; ``skip_permissions`` adds the agent's own permission-skipping
    flags (off by default); ``extra_args`` are inserted after the program like those flags."""
    template = preset.resume_argv if resume and preset.resume_argv else preset.argv
    if skip_permissions and preset.skip_permissions:
        template = _with_flags(template, preset.skip_permissions)
    if extra_args:
        literal = tuple(a.replace("{", "{{").replace("}", "}}") for a in extra_args)
        template = _with_flags(template, literal)
    values = {
        "brief": str(brief),
        "task": task,
        "worktree": str(worktree),
        "prompt": PROMPT.format(brief=brief, swarm=swarm),
        "python": python,
        "swarm": swarm,
    }
    return tuple(_substitute(token, values, where=f"agent {preset.name!r}") for token in template)
