"""The ``swarm`` click group. Each command group lives in its own module and is added here."""

from __future__ import annotations

import logging

import click

from runner.cli import clean, doctor, land, mail, plan, plan_import, run, watch, worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="swarm-runner", prog_name="swarm")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
def cli(verbose: int, quiet: bool) -> None:
    """Run many AI coding agents in parallel on one repository.

    \b
    Examples:
      swarm plan validate plan.yaml
      swarm run plan.yaml --mode=distributed
      swarm status
    """
    levels = (logging.WARNING, logging.INFO, logging.DEBUG)
    level = logging.ERROR if quiet else levels[min(verbose, 2)]
    logging.basicConfig(level=level, format="swarm: %(levelname)s %(name)s: %(message)s")


plan.command.add_command(plan_import.command)
for _module in (plan, mail, worker):
    cli.add_command(_module.command)
for _command in (*run.commands, land.command, clean.command, watch.command, doctor.command):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="swarm")
