"""`swarm mail` commands."""

from __future__ import annotations

import click


@click.group(name="mail")
def command() -> None:
    """mail commands (not yet implemented)."""
