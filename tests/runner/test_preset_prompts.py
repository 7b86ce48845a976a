"""Prompts arrive byte-for-byte: each agent preset's argv, built by ``build_argv``, started through
both real backends (a private tmux server and plain processes), reaches a fake agent of that
name unchanged, and so does the brief file it points at, however hostile their text."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import sys
import time
import typing as t

import pytest

from runner import sessions as s
from runner.agents.presets import PROMPT, AgentPreset, build_argv, command_preset, preset

WAIT: t.Final = 15.0
HOSTILE: t.Final = (
    "it's \"quoted\" 'twice' $(touch pwned-dollar) `touch pwned-tick` ${HOME} $HOME "
    "\\back\\slash ; | & > < * ? ~ # ! % {brief} {{}} \t tab ünïcødé 🐝 中文 العربية"
)
"""Everything a shell, tmux or a format string could act on."""
COMMAND_TEMPLATE: t.Final = (
    "my-agent --task {task} --note 'a $(b) \"c\" `d`' --brief={brief} {prompt}"
)


def brief_text() -> bytes:
    """Quotes, $(), backticks, unicode, CRLF and trailing blanks, padded past 10 KB."""
    head = f"# Task\n\n{HOSTILE}\r\nline with trailing blanks   \n\n"
    body = "".join(f"{i:05d} lorem ipsum \"dolor\" 'sit' $(amet) `x` ü 🐝\n" for i in range(250))
    text = (head + body).encode()
    assert len(text) > 10 * 1024
    return text


FAKE: t.Final = """\
import base64, json, os, sys
prefix, suffix = {prompt_parts!r}
files = {{}}
for arg in sys.argv[1:]:
    path = arg.partition("=")[2] if arg.startswith("--brief=") else arg
    if path.startswith(prefix) and path.endswith(suffix):
        path = path[len(prefix) : len(path) - len(suffix)]
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            files[path] = base64.b64encode(fh.read()).decode()
record = {{
    "argv": [base64.b64encode(os.fsencode(a)).decode() for a in sys.argv],
    "files": files,
    "cwd": os.getcwd(),
}}
with open(os.environ["RECORD"], "w") as fh:
    json.dump(record, fh)
"""


def install_fake(bin_dir: pathlib.Path, name: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(
        f"#!{sys.executable}\n"
        + FAKE.format(prompt_parts=tuple(PROMPT.replace("{swarm}", "swarm").split("{brief}")))
    )
    path.chmod(0o755)


class Recorded(t.NamedTuple):
    argv: list[bytes]
    files: dict[str, bytes]
    cwd: str


def run_agent(
    backend: s.TmuxBackend | s.ProcessBackend,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    agent: AgentPreset,
    *,
    task: str = "T01",
    resume: bool = False,
) -> tuple[tuple[str, ...], bytes, pathlib.Path, Recorded]:
    bin_dir = tmp_path / "bin"
    install_fake(bin_dir, agent.argv[0])
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    # tmux gives a new pane the PATH of the client that asks for it (the runner's own), over
    # the session's -e PATH: the fake must be on the runner's PATH, as a real agent would be
    monkeypatch.setenv("PATH", path)
    # the brief's own path is hostile too: it is substituted into the prompt
    run_dir = tmp_path / "runs 'q' \"dq\" $(x) `y` ü"
    run_dir.mkdir()
    brief = run_dir / "brief.md"
    text = brief_text()
    brief.write_bytes(text)
    worktree = tmp_path / "work tree ü"
    worktree.mkdir()
    argv = build_argv(agent, brief=brief, task=task, worktree=worktree, resume=resume)
    record = tmp_path / "record.json"
    name = f"swarm-r1-{agent.name}"
    backend.start(
        s.SessionSpec(
            name=name,
            argv=argv,
            cwd=worktree,
            env={
                "RECORD": str(record),
                "SWARM_BRIEF": str(brief),
                "PATH": path,
            },
            log_path=tmp_path / "pane.log",
        )
    )
    deadline = time.monotonic() + WAIT
    while (status := backend.status(name)).alive or not record.exists():
        # the fake writes its record before it exits: dead without one is a failure at once
        if time.monotonic() > deadline or (status.exists and not status.alive):
            log = (tmp_path / "pane.log").read_text(errors="replace")
            raise AssertionError(f"the fake {agent.name} did not finish: {status}\n{log}")
        time.sleep(0.02)
    assert status.exit_status == 0, (tmp_path / "pane.log").read_text(errors="replace")
    raw = json.loads(record.read_text())
    recorded = Recorded(
        argv=[base64.b64decode(a) for a in raw["argv"]],
        files={path: base64.b64decode(data) for path, data in raw["files"].items()},
        cwd=raw["cwd"],
    )
    return argv, text, brief, recorded


def assert_arrived(
    argv: tuple[str, ...], recorded: Recorded, brief: pathlib.Path, text: bytes
) -> None:
    # the kernel puts the script's path in argv[0] when it runs a #! script: compare its name
    assert pathlib.Path(os.fsdecode(recorded.argv[0])).name == argv[0]
    assert recorded.argv[1:] == [arg.encode() for arg in argv[1:]]
    assert recorded.files == {str(brief): text}


class Case(t.NamedTuple):
    test_id: str
    preset: str
    resume: bool


CASES: t.Final = tuple(
    Case(f"{name}{'-resume' if resume else ''}", name, resume)
    # aider starts through its reporting wrapper (tests/runner/test_agent_adapters.py)
    for name in ("claude", "codex", "gemini", "command")
    for resume in (False, True)
)


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_prompt_and_brief_arrive_byte_for_byte(
    backend: s.TmuxBackend | s.ProcessBackend,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
    case: Case,
) -> None:
    agent = preset(case.preset, COMMAND_TEMPLATE)
    argv, text, brief, recorded = run_agent(
        backend, tmp_path, monkeypatch, agent, resume=case.resume
    )
    assert argv[0] == ("my-agent" if case.preset == "command" else case.preset)
    if case.resume and agent.resume_argv:
        assert argv[:2] != agent.argv[:2] or len(argv) != len(agent.argv)
    assert_arrived(argv, recorded, brief, text)
    assert recorded.cwd == str(tmp_path / "work tree ü")


def test_agent_cmd_with_hostile_task_text(
    backend: s.TmuxBackend | s.ProcessBackend,
    tmp_path: pathlib.Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = command_preset(COMMAND_TEMPLATE)
    argv, text, brief, recorded = run_agent(backend, tmp_path, monkeypatch, agent, task=HOSTILE)
    assert argv[1:3] == ("--task", HOSTILE)  # one argument, unchanged
    assert argv[3:5] == ("--note", 'a $(b) "c" `d`')
    assert_arrived(argv, recorded, brief, text)
    assert not list(tmp_path.rglob("pwned*"))  # nothing was run by a shell
