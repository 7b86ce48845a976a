"""`swarm plan` commands."""

from __future__ import annotations

import click


@click.group(name="plan")
def command() -> None:
    """plan commands (not yet implemented)."""
