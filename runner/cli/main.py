"""``swarm``: the entry point, and where each command lives.

``swarm worker ...`` runs inside every worker pane, several times per task, each time a fresh
process: it must not pay for click, pydantic, the mayor, libtmux, rich or watchdog (nor should
``swarm status``, which people type). So :func:`main` hands a well-formed ``swarm worker
<verb>``, ``swarm mail send``, ``swarm mail inbox`` or ``swarm status`` to
:mod:`runner.cli.fast` (no click), and everything else, including any command line that path
does not fully understand (``--help``, a bad option, an error), to the click group
(:mod:`runner.cli.group`), which imports ``runner.cli.<module>`` only when that command runs;
``--help``, completion and code that reads ``cli.commands`` load them all. ``cli`` and
``LazyGroup`` are still importable from here (loaded on first use).
"""

from __future__ import annotations

import sys
import typing as t

if t.TYPE_CHECKING:
    from runner.cli.group import LazyGroup, cli

__all__ = ("COMMAND_MODULES", "MODULES", "LazyGroup", "cli", "main")

MODULES: t.Final = (
    "plan",
    "mail",
    "worker",
    "run",
    "status",
    "sessions",
    "stop",
    "land",
    "clean",
    "watch",
    "doctor",
    "runs",
    "host",
)
"""Every module with top-level commands (each exports ``command`` and/or ``commands``)."""
COMMAND_MODULES: t.Final = {
    "attach": "sessions",
    "clean": "clean",
    "doctor": "doctor",
    "host": "host",
    "land": "land",
    "logs": "sessions",
    "mail": "mail",
    "mayor": "run",
    "plan": "plan",
    "report": "status",
    "resume": "run",
    "retry": "run",
    "run": "run",
    "runs": "runs",
    "status": "status",
    "stop": "stop",
    "unpause": "stop",
    "watch": "watch",
    "worker": "worker",
}
"""Where each command lives: the fast path. A name missing here is still found (all load)."""
SUBCOMMAND_MODULES: t.Final = {"plan": ("plan_import",)}
"""Modules whose ``command`` joins a group of another module (``swarm plan import``)."""


GROUP_OPTIONS: t.Final = frozenset({"-v", "-vv", "-vvv", "--verbose", "-q", "--quiet"})
DEFAULT_COMMAND: t.Final = "run"
"""`swarm --mode=distributed ...` (agentops' spelling) and `swarm PLAN ...` mean `swarm run`."""


def __getattr__(name: str) -> t.Any:
    if name in ("cli", "LazyGroup"):
        from runner.cli import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["worker"], ["status"]) or args[:2] in (["mail", "send"], ["mail", "inbox"]):
        from runner.cli import fast

        try:
            code = fast.run(args)
        except BrokenPipeError:
            fast.broken_pipe()
        if code is not None:
            sys.exit(code)
    from runner.cli.group import cli

    cli(prog_name="swarm")
