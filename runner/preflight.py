"""Refuse early, with the fix: what ``swarm run`` checks before a run is created (nothing is
written when a check fails) and what it warns about.

- every agent the plan needs resolves to a preset and its program is on PATH
  (:func:`check_agents`; an ``--agent-cmd`` with a placeholder typo or unbalanced quotes is
  refused here too, with the near match);
- no live run of the same plan in the same repository (:func:`live_twin`), unless the user
  allows it;
- which uncommitted changes of the checkout the run leaves out (:func:`left_out`): a run
  starts from a commit, not from the work tree.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import typing as t

from protocol.plan import Plan
from runner import gitguard
from runner.agents.presets import AgentPreset, command_preset, preset
from runner.errors import RunnerError, UsageError

logger = logging.getLogger(__name__)

SHOWN_PATHS: t.Final = 5


def _preset(name: str, presets: t.Callable[[str], AgentPreset | None]) -> AgentPreset:
    return presets(name) or preset(name)


def agent_presets(
    plan: Plan,
    *,
    agent: str | None,
    agent_cmd: str | None,
    presets: t.Callable[[str], AgentPreset | None] = lambda _name: None,
) -> dict[str, tuple[AgentPreset, list[str]]]:
    """Each agent the plan's tasks will run (as the launcher resolves them: ``--agent-cmd``,
    else ``--agent``, else a task's own ``agent``), with the tasks that use it. ``presets``
    looks up the config's custom presets. UsageError (naming the fix) for an unknown preset
    or a bad command template."""
    default_label = f"--agent-cmd {agent_cmd!r}" if agent_cmd else f"--agent {agent or 'scripted'}"
    default = command_preset(agent_cmd) if agent_cmd else _preset(agent or "scripted", presets)
    found: dict[str, tuple[AgentPreset, list[str]]] = {}
    for task in plan.tasks:
        if task.status == "done":
            continue
        if task.agent is None:
            label, chosen = default_label, default
        elif " " in task.agent:
            label, chosen = f"task {task.id}: agent {task.agent!r}", command_preset(task.agent)
        else:
            label, chosen = f"agent {task.agent}", _preset(task.agent, presets)
        found.setdefault(label, (chosen, []))[1].append(task.id)
    return found


def program(agent: AgentPreset) -> str | None:
    """The program an agent's argv runs, when it can be checked before a worktree exists:
    None for the runner's own Python (the scripted agent), a template, or a path relative to
    the worktree. Our aider wrapper runs the program after its ``--``."""
    argv = agent.argv
    if argv and argv[0] == "{python}":
        argv = argv[argv.index("--") + 1 :] if "--" in argv else ()
    if not argv or "{" in argv[0]:
        return None
    first = argv[0]
    if "/" in first and not pathlib.Path(first).is_absolute():
        return None
    return first


def _found(name: str) -> bool:
    path = pathlib.Path(name)
    if path.is_absolute():
        return path.is_file() and os.access(path, os.X_OK)
    return shutil.which(name) is not None


def check_agents(
    plan: Plan,
    *,
    agent: str | None,
    agent_cmd: str | None,
    presets: t.Callable[[str], AgentPreset | None] = lambda _name: None,
) -> None:
    """UsageError for the first agent the plan needs whose program is not installed, naming
    the tasks that need it and the fix."""
    for label, (chosen, tasks) in agent_presets(
        plan, agent=agent, agent_cmd=agent_cmd, presets=presets
    ).items():
        name = program(chosen)
        if name is None or _found(name):
            continue
        shown = ", ".join(tasks[:SHOWN_PATHS]) + (
            f" and {len(tasks) - SHOWN_PATHS} more" if len(tasks) > SHOWN_PATHS else ""
        )
        raise UsageError(
            f"{label} runs {name!r}, which is not on PATH (tasks {shown}): install it or add "
            "its folder to PATH, or choose another agent (--agent scripted, --agent-cmd "
            "'my-agent {prompt}'); `swarm doctor` checks the agents"
        )


def live_twin(repo: pathlib.Path, digest: str) -> str | None:
    """The newest run of ``repo`` with the same plan (digest) whose mayor is alive, if any."""
    from runner import launch

    for run_id in reversed(launch.list_runs(repo)):
        if not launch.mayor_running(repo, run_id):
            continue
        try:
            state = launch.read_state(repo, run_id)
        except (RunnerError, OSError, ValueError):
            continue
        if state.status == "running" and state.plan_digest == digest:
            return run_id
    return None


def left_out(repo: pathlib.Path, plan_file: pathlib.Path | None = None) -> str | None:
    """One line naming the uncommitted changes of ``repo`` a run from its HEAD leaves out
    (the swarm home and the plan file, which is read from disk, excluded); None when there
    are none."""
    try:
        dirty = gitguard.status(repo).dirty
    except RunnerError as exc:  # a warning only: never stop a run over it
        logger.warning("could not read git status: %s", exc)
        return None
    skip = _relative(repo, plan_file)
    paths = [p for p in dirty if not p.startswith(".agents/") and p != skip]
    if not paths:
        return None
    shown = ", ".join(paths[:SHOWN_PATHS]) + (
        f" and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else ""
    )
    return (
        f"the run starts from the last commit: {len(paths)} uncommitted change(s) in {repo} "
        f"are left out ({shown}); commit them first if the workers need them"
    )


def _relative(repo: pathlib.Path, path: pathlib.Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.resolve().relative_to(repo.resolve()).as_posix()
    except ValueError:
        return None
