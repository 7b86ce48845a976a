"""``python -m runner`` is ``swarm``."""

from __future__ import annotations

from runner.cli.main import main

main()
