"""runner.agents.presets: argv templates substituted per token, never through a shell."""

from __future__ import annotations

import pathlib
import sys
import typing as t

import pytest

from runner.agents import presets as p
from runner.errors import UsageError

BRIEF = pathlib.Path("/runs/r1/tasks/t1/brief.md")
WORKTREE = pathlib.Path("/wt/r1/t1")
PROMPT = (
    "Read the task brief in /runs/r1/tasks/t1/brief.md and do it; "
    "report with the `swarm worker` commands it lists (use that absolute path)."
)
CLAUDE_FLAGS = (
    "--permission-mode",
    "acceptEdits",
    "--allowedTools",
    "Bash(swarm worker:*)",
    "Bash(git add:*)",
    "Bash(git commit:*)",
    "Bash(git status:*)",
    "Bash(git diff:*)",
    "Bash(git log:*)",
)
CODEX_FLAGS = ("--no-daemon", "--approve-for-me", "-c", "allow_login_shell=false")
GEMINI_FLAGS = (
    "--approval-mode",
    "auto_edit",
    *(
        token
        for cmd in ("swarm worker", "git add", "git commit", "git status", "git diff")
        for token in ("--allowed-tools", f"run_shell_command({cmd})")
    ),
)
AIDER = ("/py/bin/python", "-m", "runner.agents.aider_wrapper", "--swarm", "swarm", "--", "aider")
AIDER_FLAGS = p.AIDER_FLAGS


def build(preset: p.AgentPreset, **kwargs: t.Any) -> tuple[str, ...]:
    return p.build_argv(preset, brief=BRIEF, task="t1", worktree=WORKTREE, **kwargs)


class PresetCase(t.NamedTuple):
    test_id: str
    name: str
    argv: tuple[str, ...]
    resume: tuple[str, ...]
    skip: tuple[str, ...]


PRESET_CASES = [
    PresetCase(
        "claude",
        "claude",
        ("claude", *CLAUDE_FLAGS, "--", PROMPT),
        ("claude", "--continue", *CLAUDE_FLAGS, "--", PROMPT),
        ("claude", "--dangerously-skip-permissions", *CLAUDE_FLAGS, "--", PROMPT),
    ),
    PresetCase(
        "codex",
        "codex",
        ("codex", *CODEX_FLAGS, PROMPT),
        ("codex", "resume", "--last", *CODEX_FLAGS, PROMPT),
        ("codex", "--dangerously-bypass-approvals-and-sandbox", *CODEX_FLAGS, PROMPT),
    ),
    PresetCase(
        "gemini",
        "gemini",
        ("gemini", *GEMINI_FLAGS, "--prompt-interactive", PROMPT),
        ("gemini", "--resume", "latest", *GEMINI_FLAGS, "--prompt-interactive", PROMPT),
        ("gemini", "--yolo", *GEMINI_FLAGS, "--prompt-interactive", PROMPT),
    ),
    PresetCase(
        "aider",
        "aider",
        (*AIDER, *AIDER_FLAGS, "--message-file", str(BRIEF)),
        (*AIDER, *AIDER_FLAGS, "--restore-chat-history", "--message-file", str(BRIEF)),
        (*AIDER, *AIDER_FLAGS, "--message-file", str(BRIEF)),
    ),
    PresetCase(
        "scripted",
        "scripted",
        ("/py/bin/python", "-m", "runner.agents.scripted"),
        ("/py/bin/python", "-m", "runner.agents.scripted"),
        ("/py/bin/python", "-m", "runner.agents.scripted"),
    ),
]


@pytest.mark.parametrize("case", PRESET_CASES, ids=[c.test_id for c in PRESET_CASES])
def test_presets(case: PresetCase) -> None:
    preset = p.preset(case.name)
    assert preset.name == case.name
    assert build(preset, python="/py/bin/python") == case.argv
    assert build(preset, python="/py/bin/python", resume=True) == case.resume
    assert build(preset, python="/py/bin/python", skip_permissions=True) == case.skip


def test_permission_flags_off_by_default() -> None:
    for name in ("claude", "codex", "gemini", "aider"):
        argv = build(p.preset(name))  # aider has none: its wrapper runs it with --yes-always
        assert not set(argv) & set(p.preset(name).skip_permissions), name


def test_skip_flags_after_subcommand_on_resume() -> None:
    argv = build(p.preset("codex"), resume=True, skip_permissions=True)
    assert argv == (
        "codex",
        "resume",
        "--dangerously-bypass-approvals-and-sandbox",
        "--last",
        *CODEX_FLAGS,
        PROMPT,
    )


def test_scripted_defaults_to_this_python() -> None:
    assert build(p.preset("scripted"))[0] == sys.executable


def test_unknown_preset_lists_known() -> None:
    with pytest.raises(UsageError, match="claude, codex, gemini, aider, scripted, command"):
        p.preset("clod")


def test_command_preset_needs_template() -> None:
    with pytest.raises(UsageError, match="--agent-cmd"):
        p.preset("command")
    assert p.preset("command", "my-agent {task}") == p.command_preset("my-agent {task}")


class CommandCase(t.NamedTuple):
    test_id: str
    template: str
    argv: tuple[str, ...]


COMMAND_CASES = [
    CommandCase("plain", "my-agent --go", ("my-agent", "--go")),
    CommandCase(
        "placeholders",
        "my-agent --task {task} --brief={brief} -C {worktree} {prompt}",
        ("my-agent", "--task", "t1", f"--brief={BRIEF}", "-C", str(WORKTREE), PROMPT),
    ),
    CommandCase(
        "quoted",
        "sh -c 'echo \"$SWARM_TASK\" {task}; exit 0'",
        ("sh", "-c", 'echo "$SWARM_TASK" t1; exit 0'),
    ),
    CommandCase("literal-braces", "jq '{{a: 1}}' {task}", ("jq", "{a: 1}", "t1")),
    CommandCase("python", "{python} -m my_agent", (sys.executable, "-m", "my_agent")),
]


@pytest.mark.parametrize("case", COMMAND_CASES, ids=[c.test_id for c in COMMAND_CASES])
def test_command_preset(case: CommandCase) -> None:
    preset = p.command_preset(case.template)
    assert preset.name == "command"
    assert build(preset) == case.argv


def test_substituted_values_are_never_reinterpreted() -> None:
    """A task id or a path with shell or brace syntax stays one literal token."""
    nasty = pathlib.Path("/tmp/it's $(rm -rf ~) {task}/brief.md")
    argv = p.build_argv(
        p.command_preset("agent {brief} {prompt}"), brief=nasty, task="t1", worktree=WORKTREE
    )
    assert argv[1] == str(nasty)
    assert str(nasty) in argv[2]
    assert len(argv) == 3


class BadCommandCase(t.NamedTuple):
    test_id: str
    template: str
    match: str


BAD_COMMANDS = [
    BadCommandCase("empty", "   ", "empty --agent-cmd"),
    BadCommandCase("unbalanced-quote", "agent 'oops", "check its quotes"),
    BadCommandCase("unknown-placeholder", "agent {breif}", r"unknown placeholder \{breif\}"),
]


@pytest.mark.parametrize("case", BAD_COMMANDS, ids=[c.test_id for c in BAD_COMMANDS])
def test_bad_command_template(case: BadCommandCase) -> None:
    with pytest.raises(UsageError, match=case.match):
        p.command_preset(case.template)


def test_extra_args_are_literal() -> None:
    argv = build(p.preset("claude"), extra_args=("--model", "{opus}"))
    assert argv == ("claude", "--model", "{opus}", *CLAUDE_FLAGS, "--", PROMPT)


def test_from_spec() -> None:
    assert p.from_spec("aider") == p.preset("aider")
    assert p.from_spec("my-agent {prompt}").argv == ("my-agent", "{prompt}")
    assert p.is_preset("scripted")
    assert not p.is_preset("my-agent")
