"""`swarm worker` commands."""

from __future__ import annotations

import click


@click.group(name="worker")
def command() -> None:
    """worker commands (not yet implemented)."""
