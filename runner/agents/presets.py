"""Agent presets: how to start Claude Code, Codex, Aider, Gemini, any command, or the built-in
scripted agent in a worker's pane (see ``docs/agents.md``).

A preset is an argv *template*: placeholders are substituted inside each token separately, so
the prompt, the brief path or a task id never pass through a shell string. The brief itself
(task, manifest, validation, the ``swarm worker`` commands to report with) is a file; agents that
take a prompt argument get a short fixed sentence pointing at it.
"""

from __future__ import annotations

import pathlib
import re
import shlex
import sys
import typing as t

from runner.errors import UsageError

PLACEHOLDERS: t.Final = ("brief", "task", "worktree", "prompt", "python")
PROMPT: t.Final = (
    "Read the task brief in {brief} and do it; report with the swarm worker commands it lists."
)
_TOKEN_RE: t.Final = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AgentPreset(t.NamedTuple):
    name: str
    argv: tuple[str, ...]
    """Template tokens with ``{brief}``, ``{task}``, ``{worktree}``, ``{prompt}``, ``{python}``."""
    resume_argv: tuple[str, ...] | None = None
    """Continues the agent's previous conversation in the worktree (None: start afresh)."""
    skip_permissions: tuple[str, ...] = ()
    """The agent's own flags that skip its permission prompts; only added on request."""


_PRESETS: t.Final[tuple[AgentPreset, ...]] = (
    AgentPreset(
        "claude",
        ("claude", "{prompt}"),
        resume_argv=("claude", "--continue", "{prompt}"),
        skip_permissions=("--dangerously-skip-permissions",),
    ),
    AgentPreset(
        "codex",
        ("codex", "{prompt}"),
        resume_argv=("codex", "resume", "--last", "{prompt}"),
        skip_permissions=("--dangerously-bypass-approvals-and-sandbox",),
    ),
    AgentPreset(
        "gemini",
        ("gemini", "--prompt-interactive", "{prompt}"),
        resume_argv=("gemini", "--resume", "latest", "--prompt-interactive", "{prompt}"),
        skip_permissions=("--yolo",),
    ),
    AgentPreset(
        "aider",
        ("aider", "--message-file", "{brief}"),
        resume_argv=("aider", "--restore-chat-history", "--message-file", "{brief}"),
        skip_permissions=("--yes-always",),
    ),
    AgentPreset("scripted", ("{python}", "-m", "runner.agents.scripted")),
)
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
            raise UsageError(
                f"unknown placeholder {{{key}}} in {where}: use "
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
        "prompt": PROMPT.format(brief=brief),
        "python": python,
    }
    return tuple(_substitute(token, values, where=f"agent {preset.name!r}") for token in template)
