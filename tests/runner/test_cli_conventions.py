"""CLI conventions for every command of ``swarm``: help with examples, ``--version``, shell
completion, ``-v/-q``, ``--json`` on reading commands."""

from __future__ import annotations

import os
import subprocess
import sys
import typing as t

import click
import pytest
from click.testing import CliRunner

from runner.cli import doctor, watch
from runner.cli.main import cli

READING: t.Final = frozenset(
    {
        "status",
        "report",
        "watch",
        "doctor",
        "plan validate",
        "plan simulate",
        "plan graph",
    }
)
"""Commands that read and report: each must offer --json (when it is registered)."""
MISSING_JSON: t.Final[frozenset[str]] = frozenset()


def walk(
    command: click.Command, path: tuple[str, ...] = ()
) -> t.Iterator[tuple[str, click.Command]]:
    yield " ".join(path), command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from walk(sub, (*path, name))


COMMANDS: t.Final = tuple(walk(cli))
NAMES: t.Final = [name or "swarm" for name, _ in COMMANDS]


def has_option(command: click.Command, flag: str) -> bool:
    return any(isinstance(p, click.Option) and flag in p.opts for p in command.params)


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=NAMES)
def test_help_has_examples(name: str, command: click.Command) -> None:
    result = CliRunner().invoke(cli, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples" in (command.help or ""), f"`swarm {name}` --help has no Examples section"
    assert "Examples:" in result.output


@pytest.mark.parametrize(("name", "command"), COMMANDS, ids=NAMES)
def test_reading_commands_offer_json(name: str, command: click.Command) -> None:
    if name in READING and name not in MISSING_JSON:
        assert has_option(command, "--json"), f"`swarm {name}` has no --json"


@pytest.mark.parametrize("module", [watch, doctor], ids=["watch", "doctor"])
def test_new_commands_follow_the_conventions(module: t.Any) -> None:
    """Also before runner/cli/main.py registers them."""
    command = module.command
    assert "Examples:" in (command.help or "")
    assert has_option(command, "--json") and has_option(command, "--repo")


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("swarm, version ")


def test_verbose_and_quiet() -> None:
    assert has_option(cli, "-v") and has_option(cli, "--verbose")
    assert has_option(cli, "-q") and has_option(cli, "--quiet")
    for flags in (["-v"], ["-vv"], ["-q"]):
        result = CliRunner().invoke(cli, [*flags, "plan", "--help"])
        assert result.exit_code == 0, result.output


def swarm(env: t.Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """The real entry point (``python -m runner`` is ``swarm``), as a shell would run it."""
    return subprocess.run(
        [sys.executable, "-m", "runner"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_script(shell: str) -> None:
    result = swarm({"_SWARM_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr
    assert "_SWARM_COMPLETE" in result.stdout
    assert f"{shell}_complete" in result.stdout


def test_completion_of_command_names() -> None:
    result = swarm(
        {"_SWARM_COMPLETE": "bash_complete", "COMP_WORDS": "swarm sta", "COMP_CWORD": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "plain,status" in result.stdout.splitlines()
