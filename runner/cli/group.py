"""The ``swarm`` click group: a group that loads each command's module on first use (see
:mod:`runner.cli.main`, which says where each command lives)."""

from __future__ import annotations

import collections.abc as cabc
import importlib
import logging
import typing as t

import click

from runner.cli.main import (
    COMMAND_MODULES,
    DEFAULT_COMMAND,
    GROUP_OPTIONS,
    MODULES,
    SUBCOMMAND_MODULES,
)


class LazyGroup(click.Group):
    """A group that imports ``runner.cli.<module>`` when one of its commands is needed; a
    command line that names no command runs :data:`DEFAULT_COMMAND` with its arguments."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = list(args)
        i = 0
        while i < len(rest) and rest[i] in GROUP_OPTIONS:
            i += 1
        if i < len(rest) and rest[i] not in ("-h", "--help", "--version"):
            word = rest[i]
            if word.startswith("-") or self.get_command(ctx, word) is None:
                rest.insert(i, DEFAULT_COMMAND)
        return super().parse_args(ctx, rest)

    def __init__(
        self,
        *args: t.Any,
        modules: t.Sequence[str] = (),
        command_modules: t.Mapping[str, str] | None = None,
        **kwargs: t.Any,
    ) -> None:
        self._modules = tuple(modules)
        self._command_modules = dict(command_modules or {})
        self._imported: set[str] = set()
        self._loaded: dict[str, click.Command] = {}
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> cabc.MutableMapping[str, click.Command]:
        """Every command, all modules loaded (for code that walks the tree)."""
        self._load_all()
        return self._loaded

    @commands.setter
    def commands(self, value: cabc.MutableMapping[str, click.Command]) -> None:
        self._loaded = dict(value)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = self._command_modules.get(cmd_name)
        if module is not None:
            self._load(module)
        if cmd_name not in self._loaded:
            self._load_all()
        return self._loaded.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_all()
        return sorted(self._loaded)

    def _load_all(self) -> None:
        for module in self._modules:
            self._load(module)

    def _load(self, name: str) -> None:
        if name in self._imported:
            return
        self._imported.add(name)
        module = importlib.import_module(f"runner.cli.{name}")
        found: list[click.Command] = list(getattr(module, "commands", ()))
        if isinstance(getattr(module, "command", None), click.Command):
            found.append(module.command)
        for command in found:
            for sub_name in SUBCOMMAND_MODULES.get(command.name or "", ()):
                sub = importlib.import_module(f"runner.cli.{sub_name}").command
                if isinstance(command, click.Group) and sub.name not in command.commands:
                    command.add_command(sub)
            self._loaded.setdefault(command.name or name, command)


@click.group(
    cls=LazyGroup,
    modules=MODULES,
    command_modules=COMMAND_MODULES,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="swarm-runner", prog_name="swarm")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Run many AI coding agents in parallel on one repository.

    \b
    With no command, the arguments are those of `swarm run` (agentops' spelling).

    \b
    Examples:
      swarm --mode=distributed --max-workers 3
      swarm plan.yaml --mode=distributed --wait --timeout 30m
      swarm plan validate plan.yaml
      swarm status
    """
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if quiet else levels[min(verbose, 2)]
    logging.basicConfig(level=level, format="swarm: %(levelname)s %(name)s: %(message)s")
