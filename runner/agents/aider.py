"""aider (PyPI ``aider-chat``), tested 0.86.2.

aider cannot report by itself unattended (with ``--yes-always`` it never runs shell commands),
so swarm wraps it (:mod:`runner.agents.aider_wrapper`): ``swarm worker accepted``, then aider
with the brief as its message and the manifest's files in the chat, then ``offer`` when it
exited 0 and committed, else ``fail`` with its exit status and last lines. aider commits its
own edits. Its chat history files (``.aider*``) are excluded from git.
"""

from __future__ import annotations

import dataclasses
import sys
import typing as t

from runner.agents.adapter import Adapter, WorkerContext, fp
from runner.agents.presets import AIDER_FLAGS as FLAGS

TESTED_VERSION: t.Final = "0.86.2"
EXCLUDES: t.Final = ("/.aider*",)


@dataclasses.dataclass(frozen=True)
class AiderAdapter(Adapter):
    python: str = sys.executable

    def argv(self, ctx: WorkerContext) -> tuple[str, ...]:
        files = [
            f for f in ctx.task.files if not f.endswith("/") and not any(ch in f for ch in "*?[")
        ]
        resume = ("--restore-chat-history",) if ctx.resume else ()
        return (
            self.python,
            "-m",
            "runner.agents.aider_wrapper",
            "--swarm",
            str(ctx.swarm),
            "--",
            self.program,
            *FLAGS,
            *resume,
            "--message-file",
            str(ctx.brief),
            *files,
        )

    def flags_for_help(self) -> tuple[str, ...]:
        return ("--yes-always", "--message-file", "--no-suggest-shell-commands")


ADAPTER: t.Final = AiderAdapter(
    name="aider",
    program="aider",
    tested_version=TESTED_VERSION,
    package="PyPI aider-chat",
    interactive=False,
    fingerprints=(fp("permission", r"\(Y\)es/\(N\)o", "a yes/no question"),),
)
