"""swarm-runner: runner layer (see docs/architecture.md)."""

from __future__ import annotations

import logging

logging.getLogger(__name__).addHandler(logging.NullHandler())
