"""runner.cli.main: the lazy group's map says where each command lives, and loading one command
loads its module only."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import click
import pytest

from runner.cli.main import COMMAND_MODULES, MODULES, cli


def exported(module_name: str) -> dict[str, click.Command]:
    module = importlib.import_module(f"runner.cli.{module_name}")
    found = list(getattr(module, "commands", ()))
    if isinstance(getattr(module, "command", None), click.Command):
        found.append(module.command)
    return {command.name or "": command for command in found}


@pytest.mark.parametrize(("name", "module"), sorted(COMMAND_MODULES.items()))
def test_each_command_lives_where_the_map_says(name: str, module: str) -> None:
    assert module in MODULES
    assert name in exported(module), f"runner.cli.{module} does not export `swarm {name}`"


def test_every_command_is_in_the_map() -> None:
    assert sorted(cli.commands) == sorted(COMMAND_MODULES)


def test_one_command_loads_one_module() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from runner.cli.main import cli\n"
        "assert CliRunner().invoke(cli, ['stop', '--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('runner.cli.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "['runner.cli.common', 'runner.cli.group', 'runner.cli.main', 'runner.cli.stop']"
    )
