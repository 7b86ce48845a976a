"""What swarm knows about one agent CLI, in one object: the adapter.

An adapter gives, per permission level, the argv that runs the CLI unattended in a worker's
worktree; prepares the files the CLI reads before it starts (trust for the worktree path, only
with the user's consent); says whether the repository is trusted already; and classifies the
CLI's screen (working, idle at its prompt, waiting for permission, at a dialog) from per-CLI
fingerprints of the pane's *content*. The built-in adapters are in ``claude``, ``codex``,
``gemini`` and ``aider`` beside this module; :func:`runner.agents.registry.adapter_for` finds one.

Permission levels (``agent_permissions`` in the config, see ``docs/agents.md``):

``worktree`` (default)
    edit files in the worktree, run commands there (the CLI's sandbox where it has one), and
    without asking only ``git add``, ``git commit``, ``swarm worker ...`` and the task's own
    validation commands. Nothing outside the worktree, no other command without a prompt.
``full``
    the CLI's own "skip every permission prompt" mode. Only in a sandbox or disposable machine.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shlex
import typing as t

from protocol.plan import Task
from runner.errors import RunnerError

Permissions = t.Literal["worktree", "full"]
PERMISSION_LEVELS: t.Final[tuple[Permissions, ...]] = ("worktree", "full")
DEFAULT_PERMISSIONS: t.Final[Permissions] = "worktree"

PaneState = t.Literal["working", "idle", "permission", "dialog", "unknown"]
"""What a live pane shows. ``permission``: the CLI asks to allow one action; ``dialog``: a
screen the agent cannot pass by itself (trust, onboarding, login)."""

BRIEF_NAME: t.Final = ".swarm/brief.md"
HOOK_NAME: t.Final = ".swarm/hook.json"
"""Where a CLI's own hooks leave the last hook event's JSON (the CLI writes it; swarm reads it
as a hint of what the pane shows, never as a report)."""
"""Where the brief lies in the worktree (excluded from git by ``info/exclude``)."""
EXCLUDES: t.Final = ("/.swarm/",)


class AgentSetupError(RunnerError):
    """The agent cannot start unattended here; the message says exactly what to do once.
    Never retried: the same start would stop at the same screen."""


class WorkerContext(t.NamedTuple):
    """Everything an adapter needs to know about one worker it prepares."""

    task: Task
    repo: pathlib.Path
    """The main repository (the user's checkout)."""
    worktree: pathlib.Path
    brief: pathlib.Path
    """The brief inside the worktree (absolute)."""
    swarm: pathlib.Path
    """Absolute path of the ``swarm`` shim the agent reports with."""
    swarm_home: pathlib.Path
    home: pathlib.Path
    """The HOME the agent will see (where it keeps its settings and trust)."""
    git_common_dir: pathlib.Path
    permissions: Permissions = DEFAULT_PERMISSIONS
    trust_worktrees: bool = False
    """The user consented to record trust for this run's worktree paths."""
    resume: bool = False

    @property
    def prompt(self) -> str:
        return prompt_for(self.brief, self.swarm)

    def validation_commands(self) -> tuple[str, ...]:
        """The task's own checks, which the agent may run without asking."""
        validation = self.task.validation
        found = [c for c in (validation.lint, validation.tests, validation.command) if c]
        found += [check.command for check in validation.custom]
        return tuple(found)


def prompt_for(brief: pathlib.Path, swarm: pathlib.Path | str) -> str:
    """The one sentence a CLI is started with; the brief says the rest."""
    return (
        f"Read the task brief in {brief} and do it; report with the `{swarm} worker` "
        "commands it lists (use that absolute path)."
    )


class Fingerprint(t.NamedTuple):
    state: PaneState
    pattern: re.Pattern[str]
    what: str
    """A few words for the report: 'the folder-trust dialog', 'a permission prompt'."""


def fp(state: PaneState, pattern: str, what: str) -> Fingerprint:
    return Fingerprint(state, re.compile(pattern, re.M), what)


class Verdict(t.NamedTuple):
    state: PaneState
    what: str = ""


class Hint(t.NamedTuple):
    """What the CLI's own hooks last said (a verdict) and when (epoch seconds)."""

    verdict: Verdict
    at: float


@dataclasses.dataclass(frozen=True)
class Adapter:
    """The base adapter: subclasses fill in the per-CLI parts."""

    name: str
    program: str
    tested_version: str
    package: str
    """Where it comes from, e.g. ``npm @anthropic-ai/claude-code``."""
    fingerprints: tuple[Fingerprint, ...] = ()
    """Checked in order over the screen's last lines; the first match decides."""
    interactive: bool = True
    """A TUI that waits at its prompt when done (so a nudge can be typed into it)."""
    root_refused: tuple[Permissions, ...] = ()
    """Levels whose flags the CLI refuses to run as root."""

    # -- per CLI -------------------------------------------------------------------------

    def argv(self, ctx: WorkerContext) -> tuple[str, ...]:
        raise NotImplementedError

    def prepare(self, ctx: WorkerContext) -> dict[str, str]:
        """Write what the CLI reads before it starts; return environment additions."""
        return {}

    def trusted(self, ctx: WorkerContext) -> bool | None:
        """Whether the CLI will start in ``ctx.worktree`` without a trust dialog (None: this
        CLI has no trust to give)."""
        return None

    def trust_fix(self, ctx: WorkerContext) -> str:
        return (
            f"run `{self.program}` once in {ctx.repo} and trust it, or set "
            "`trust_worktrees = true` in .swarm.toml to let swarm record trust for this "
            "run's worktrees only"
        )

    def version_args(self) -> tuple[str, ...]:
        return (self.program, "--version")

    def help_args(self) -> tuple[str, ...]:
        return (self.program, "--help")

    def flags_for_help(self) -> tuple[str, ...]:
        """The long options the presets use, which ``--help`` must list (doctor)."""
        return ()

    # -- shared --------------------------------------------------------------------------

    def check_startable(self, ctx: WorkerContext, *, is_root: bool) -> None:
        """Refuse, before any session exists, a start that could only stop at a screen."""
        if is_root and ctx.permissions in self.root_refused:
            raise AgentSetupError(
                f"{self.name}: permission level {ctx.permissions!r} refuses to run as root; "
                "use agent_permissions = 'worktree' or run swarm as another user"
            )
        if self.trusted(ctx) is False and not ctx.trust_worktrees:
            raise AgentSetupError(
                f"{self.name} would stop at its folder-trust dialog in {ctx.worktree}: "
                + self.trust_fix(ctx)
            )

    def forget_trust(self, home: pathlib.Path, worktrees: t.Collection[pathlib.Path]) -> int:
        """Remove the trust :meth:`prepare` recorded for these worktree paths (the run ended);
        returns how many entries went."""
        return 0

    def hook_hint(self, worktree: pathlib.Path) -> Hint | None:
        """What the CLI's hooks last said about its state (None: no hooks, or nothing yet)."""
        return None

    def classify(self, screen: str) -> Verdict:
        """The state a pane's text shows (content only: a redrawn title is no progress)."""
        tail = "\n".join(_visible(screen)[-40:])
        for print_ in self.fingerprints:
            if print_.pattern.search(tail):
                return Verdict(print_.state, print_.what)
        return Verdict("unknown")

    def nudge_text(self, ctx_swarm: str) -> str:
        return (
            "You have not reported to swarm yet. If the task is done and committed, run "
            f'`{ctx_swarm} worker offer "summary"`; if it cannot be done, run '
            f'`{ctx_swarm} worker fail "why"`; if you are stuck, `{ctx_swarm} worker help '
            '"what blocks you"`.'
        )


def _visible(screen: str) -> list[str]:
    rows = [row.rstrip() for row in screen.splitlines()]
    while rows and not rows[-1]:
        rows.pop()
    return rows


def shell_words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:
        return command.split()
