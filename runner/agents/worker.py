"""Prepare one worker for its agent: the launcher's single call into the agent layer.

:func:`prepare_worker` puts everything the agent needs inside its worktree or names it by
absolute path: the brief copied into the worktree (``.swarm/brief.md``, excluded from git, never
merged), a shim folder holding only ``swarm`` for PATH (not swarm's whole virtual environment,
whose ``python`` and ``pytest`` would shadow the project's), the git identity of the repository
exported for CLIs that isolate git config, the adapter's own files (trust with consent, rules),
and the argv of the chosen permission level. It refuses up front (:class:`AgentSetupError`) a
start that could only stop at a dialog, with the exact fix.

:func:`exit_reason` words a crash, with the agent's last lines, and says when an agent that
exits within seconds the same way twice must not be started again.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import typing as t

from protocol.plan import Task
from runner import git, proc
from runner.agents import _files
from runner.agents.adapter import (
    BRIEF_NAME,
    DEFAULT_PERMISSIONS,
    EXCLUDES,
    PERMISSION_LEVELS,
    Permissions,
    WorkerContext,
)
from runner.agents.presets import COMMAND, AgentPreset, build_argv
from runner.agents.presets import preset as builtin_preset
from runner.agents.registry import ADAPTERS, adapter_for
from runner.agents.registry import EXCLUDES as ADAPTER_EXCLUDES
from runner.errors import CommandError, UsageError

SCRIPTED: t.Final = "scripted"
QUICK_EXIT: t.Final = 10.0
"""An agent that exits within this many seconds of its start 'exited at once'."""
IDENTITY_KEYS: t.Final = (
    ("GIT_AUTHOR_NAME", "user.name"),
    ("GIT_AUTHOR_EMAIL", "user.email"),
    ("GIT_COMMITTER_NAME", "user.name"),
    ("GIT_COMMITTER_EMAIL", "user.email"),
)


class AgentOptions(t.NamedTuple):
    """The user's choices for agents (``.swarm.toml``: ``agent_permissions``,
    ``trust_worktrees``)."""

    permissions: Permissions = DEFAULT_PERMISSIONS
    trust_worktrees: bool = False


class PreparedWorker(t.NamedTuple):
    argv: tuple[str, ...]
    env: dict[str, str]
    """Additions to the worker environment (``SWARM_BRIEF``, ``PATH``, git identity, ...)."""
    brief: pathlib.Path
    """The brief in the worktree."""


def options_from(*sources: t.Any) -> AgentOptions:
    """:class:`AgentOptions` from the first of ``sources`` that sets each key (the run's
    settings, then a :class:`runner.config.SwarmConfig`; unset everywhere: the defaults)."""

    def first(key: str) -> t.Any:
        return next((v for s in sources if (v := getattr(s, key, None)) is not None), None)

    level = first("agent_permissions") or DEFAULT_PERMISSIONS
    if level not in PERMISSION_LEVELS:
        raise UsageError(f"agent_permissions {level!r}: use one of {', '.join(PERMISSION_LEVELS)}")
    return AgentOptions(t.cast(Permissions, level), bool(first("trust_worktrees")))


def forget_trust(
    worktrees: t.Iterable[str | pathlib.Path | None], home: pathlib.Path | None = None
) -> int:
    """Remove the folder trust swarm recorded (``trust_worktrees``) for these worktree paths
    from every built-in CLI's config in ``home``: once a run has ended, no agent starts there
    again unless it resumes, and resuming records it again. Returns how many entries went."""
    paths = {pathlib.Path(p) for p in worktrees if p}
    if not paths:
        return 0
    home = home or pathlib.Path.home()
    return sum(adapter.forget_trust(home, paths) for adapter in ADAPTERS.values())


def shim_dir(swarm_home: pathlib.Path) -> pathlib.Path:
    return swarm_home / "bin"


def swarm_shim(swarm_home: pathlib.Path, python: str) -> pathlib.Path:
    """``<swarm_home>/bin/swarm``: runs this swarm with its own Python; the folder holds
    nothing else, so it can go first on the agent's PATH without shadowing the project's
    tools. Rewritten only when its content changes (workers may be running it)."""
    path = shim_dir(swarm_home) / "swarm"
    text = f'#!/bin/sh\nexec {shlex.quote(python)} -m runner "$@"\n'
    try:
        if path.read_text(encoding="utf-8") == text:
            return path
    except OSError:
        pass
    _files.write_atomic(path, text, mode=0o755)
    return path


def git_identity(worktree: pathlib.Path) -> dict[str, str]:
    """``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` from the repository's config (else from the
    environment), so a CLI that runs git with ``GIT_CONFIG_GLOBAL=/dev/null`` still commits."""
    found: dict[str, str] = {}
    cache: dict[str, str] = {}
    for env_key, config_key in IDENTITY_KEYS:
        if config_key not in cache:
            try:
                out = proc.run("git", "config", "--get", config_key, cwd=worktree, check=False)
                cache[config_key] = out.stdout.strip()
            except CommandError:
                cache[config_key] = ""
        value = os.environ.get(env_key) or cache[config_key]
        if value:
            found[env_key] = value
    return found


def place_brief(source: pathlib.Path, worktree: pathlib.Path) -> pathlib.Path:
    """Copy the brief into the worktree, where every CLI may read it without asking (it is
    excluded from git by :func:`exclude_agent_files`, so it is never committed or merged)."""
    target = worktree / BRIEF_NAME
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def exclude_agent_files(repo: pathlib.Path) -> None:
    """Add the in-worktree brief and the CLIs' prepared files to the repository's
    ``info/exclude`` (shared by every worktree): once per run is enough."""
    for pattern in EXCLUDES:
        git.add_exclude(repo, pattern)


def agent_path(swarm_home: pathlib.Path, python: str, inherited: str | None = None) -> str:
    """The agent's PATH: the shim folder first, then the inherited PATH without the folder of
    swarm's own Python (its virtual environment's python/pip/pytest would shadow the
    project's)."""
    parts = (inherited if inherited is not None else os.environ.get("PATH", os.defpath)).split(
        os.pathsep
    )
    own = {str(pathlib.Path(python).parent), os.environ.get("VIRTUAL_ENV", "") + "/bin"}
    keep = [p for p in parts if p and p.rstrip("/") not in own]
    return os.pathsep.join(dict.fromkeys([str(shim_dir(swarm_home)), *keep]))


def check_environ(
    swarm_home: pathlib.Path, python: str, identity: t.Mapping[str, str]
) -> dict[str, str]:
    """What a task's checks and the run's gates get on top of the environment: the worker's
    PATH (the ``swarm`` shim, not swarm's own virtual environment, whose ``python`` and
    ``pytest`` would test against the wrong packages) and its git identity; never a mail key."""
    return {"PATH": agent_path(swarm_home, python), **identity}


def prepare_worker(
    *,
    preset: AgentPreset,
    task: Task,
    repo: pathlib.Path,
    worktree: pathlib.Path,
    brief: pathlib.Path,
    swarm_home: pathlib.Path,
    python: str,
    options: AgentOptions = AgentOptions(),  # noqa: B008 - an immutable NamedTuple
    resume: bool = False,
    home: pathlib.Path | None = None,
    identity: t.Mapping[str, str] | None = None,
    as_root: bool | None = None,
) -> PreparedWorker:
    """Everything one worker's agent needs, prepared; see the module docstring.

    ``brief`` is the rendered brief (``runs/<run>/tasks/<task>/brief.md``); it is copied into
    the worktree and the copy is what the agent is pointed at. Raises
    :class:`AgentSetupError` when the agent could only stop at a screen. ``identity``: the git
    identity to pass on when the caller already read it (:func:`git_identity`) and added the
    excludes (:func:`exclude_agent_files`); without it, both are done here. ``as_root``:
    whether the agent runs as root (None: as this process; a sandbox maps root to a plain
    user, :func:`runner.sandbox.sandbox_uid`)."""
    swarm = swarm_shim(swarm_home, python)
    if identity is None:  # a caller on its own: do what the launcher does once per run
        exclude_agent_files(repo)
        identity = git_identity(worktree)
    in_tree = place_brief(brief, worktree)
    env = {
        "SWARM_BRIEF": str(in_tree),
        "SWARM_BIN": str(swarm),
        "PATH": agent_path(swarm_home, python),
        **identity,
    }
    adapter = adapter_for(preset.name) if preset.name != "command" else None
    if adapter is None or _customised(preset):
        argv = build_argv(
            preset,
            brief=in_tree,
            task=task.id,
            worktree=worktree,
            python=python,
            resume=resume,
            swarm=str(swarm),
        )
        return PreparedWorker(argv, env, in_tree)
    if adapter.name == "aider":
        adapter = type(adapter)(**{**_fields(adapter), "python": python})
    ctx = WorkerContext(
        task=task,
        repo=repo,
        worktree=worktree,
        brief=in_tree,
        swarm=swarm,
        swarm_home=swarm_home,
        home=home or pathlib.Path.home(),
        git_common_dir=git.common_dir(worktree),
        permissions=options.permissions,
        trust_worktrees=options.trust_worktrees,
        resume=resume,
    )
    adapter.check_startable(ctx, is_root=_is_root() if as_root is None else as_root)
    for pattern in ADAPTER_EXCLUDES.get(adapter.name, ()):
        git.add_exclude(repo, pattern)
    env.update(adapter.prepare(ctx))
    return PreparedWorker(adapter.argv(ctx), env, in_tree)


def _customised(preset: AgentPreset) -> bool:
    """A preset of a built-in name from the config file, not the built-in one itself."""
    try:
        return preset != builtin_preset(preset.name)
    except UsageError:
        return True


def _fields(obj: t.Any) -> dict[str, t.Any]:
    import dataclasses

    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


# --- agents that exit at once ------------------------------------------------------------------


_ANSI: t.Final = re.compile(
    r"\x1b\[[0-9;?<>=]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles
    r"|\x1b[()][A-Za-z0-9]|\x1b[=>78cDEHM]"
)
_DEAD: t.Final = re.compile(r"^Pane is dead")


def log_tail(path: pathlib.Path, lines: int = 10, *, size: int = 32 * 1024) -> str:
    """The last non-blank lines an agent wrote to its pane log, escape codes removed (a dead
    pane's screen is mostly blank rows and tmux's own 'Pane is dead' line)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - size))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    text = _ANSI.sub("", data)
    rows = [row.rsplit("\r", 1)[-1].rstrip() for row in text.replace("\r\n", "\n").split("\n")]
    kept = [row for row in rows if row.strip() and not _DEAD.match(row)]
    return "\n".join(kept[-lines:])


class ExitVerdict(t.NamedTuple):
    reason: str
    fatal: bool
    """Do not start it again: it exited at once the same way as last time."""
    signature: str
    """What to compare the next quick exit with."""


def exit_reason(
    *,
    status: int | None,
    elapsed: float | None,
    tail: str,
    previous: str | None,
    preset: str = COMMAND,
) -> ExitVerdict:
    """The recorded reason of an agent that exited without reporting, with its last lines.
    Two quick exits (within :data:`QUICK_EXIT` seconds) with the same status and last line in
    a row are fatal: starting it a third time would only do the same. Not for the scripted
    agent, whose crashes are scripted on purpose (to test the retry budgets)."""
    lines = [ln for ln in tail.splitlines() if ln.strip() and not _DEAD.match(ln)][-10:]
    last = "\n".join(lines)
    quick = elapsed is not None and elapsed < QUICK_EXIT
    last_line = re.sub(r"[0-9]+", "N", lines[-1].strip()) if lines else ""
    signature = f"{status}|{last_line}" if quick else ""
    reason = f"the agent exited (status {status}) without reporting completion"
    if quick:
        reason += f" {elapsed:.0f}s after it started"
    if last:
        reason += f"; its last lines:\n{last}"
    fatal = bool(signature) and signature == previous and preset != SCRIPTED
    if fatal:
        reason = "not restarted: it exited at once the same way twice; " + reason
    return ExitVerdict(reason, fatal, signature)
