"""The built-in agent adapters, by preset name."""

from __future__ import annotations

import typing as t

from runner.agents import aider, claude, codex, gemini
from runner.agents.adapter import Adapter

ADAPTERS: t.Final[dict[str, Adapter]] = {
    a.name: a for a in (claude.ADAPTER, codex.ADAPTER, gemini.ADAPTER, aider.ADAPTER)
}
EXCLUDES: t.Final[dict[str, tuple[str, ...]]] = {
    "codex": codex.EXCLUDES,
    "aider": aider.EXCLUDES,
}


def adapter_for(name: str) -> Adapter | None:
    """The adapter of a built-in preset (None for scripted, command and custom presets)."""
    return ADAPTERS.get(name)
