"""The checks of ``swarm doctor``: the machine and the repository before a run, a fix per problem.

:func:`diagnose` runs every check and returns them as :class:`Check` records (name, ok, detail,
fix); it prints nothing, so the CLI (``runner.cli.doctor``) renders them as text or JSON.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import shutil
import sys
import typing as t

from agentmail.fs import lock_held
from protocol.state import RunState
from runner import git, launch, proc, sandbox
from runner.agents.presets import AgentPreset, from_spec, preset
from runner.config import SwarmConfig, load_config, preset_from_config
from runner.errors import CommandError, RunnerError, UsageError
from runner.events import read_events
from runner.paths import SwarmPaths, default_worktree_root, tmux_socket_name
from runner.plan.load import load_plan
from runner.state import load_state, rebuild

GIT_MIN: t.Final = (2, 38)
"""``git merge-tree --write-tree`` (the arbiter's conflict pre-check) needs 2.38."""
TMUX_MIN: t.Final = (3, 0)
PYTHON_MIN: t.Final = (3, 11)
INOTIFY_DIR: t.Final = pathlib.Path("/proc/sys/fs/inotify")
INOTIFY_MIN: t.Final = {"max_user_watches": 8192, "max_user_instances": 128}
KNOWN_AGENTS: t.Final = ("claude", "codex", "aider", "gemini")
TIMEOUT: t.Final = 15.0
_VERSION_RE: t.Final = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


class Check(t.NamedTuple):
    """The outcome of one check."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    """One line telling how to fix it (empty when ``ok``)."""


def parse_version(text: str) -> tuple[int, ...] | None:
    """``git version 2.39.5`` -> (2, 39, 5); ``tmux 3.3a`` -> (3, 3); None when there is none."""
    match = _VERSION_RE.search(text)
    if match is None:
        return None
    return tuple(int(part) for part in match.groups() if part is not None)


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def check_version(
    name: str, argv: t.Sequence[str], minimum: tuple[int, ...], why: str, install: str
) -> Check:
    try:
        out = proc.run(*argv, timeout=TIMEOUT).stdout.strip()
    except RunnerError as exc:
        detail = str(exc).splitlines()[-1]
        return Check(name, False, detail, f"install {name} {_dotted(minimum)} or newer{install}")
    version = parse_version(out)
    if version is None:  # e.g. "tmux master": a build from source, assume it is new
        return Check(name, True, f"{out} (version not numeric; assumed recent)")
    if version[: len(minimum)] < minimum:
        return Check(
            name,
            False,
            f"{out}: {_dotted(minimum)} or newer is needed ({why})",
            f"upgrade {name} to {_dotted(minimum)} or newer{install}",
        )
    return Check(name, True, out)


def check_python() -> Check:
    version = sys.version_info[:3]
    detail = f"{_dotted(version)} ({sys.executable})"
    if version[:2] < PYTHON_MIN:
        return Check("python", False, detail, f"use Python {_dotted(PYTHON_MIN)} or newer")
    return Check("python", True, detail)


def check_inotify(directory: pathlib.Path = INOTIFY_DIR) -> Check:
    """Watchdog's inotify observer needs an instance per watcher and a watch per directory."""
    if not directory.is_dir():
        return Check("inotify", True, "not available: the watchers fall back to polling")
    values: dict[str, int] = {}
    for key in INOTIFY_MIN:
        try:
            values[key] = int((directory / key).read_text().strip())
        except (OSError, ValueError):
            continue
    low = {key: value for key, value in values.items() if value < INOTIFY_MIN[key]}
    detail = ", ".join(f"{key}={value}" for key, value in values.items()) or "limits unreadable"
    if low:
        return Check(
            "inotify",
            False,
            f"{detail}: too low for the mail and run watchers",
            "raise it: "
            + "; ".join(f"sudo sysctl fs.inotify.{key}={INOTIFY_MIN[key] * 4}" for key in low),
        )
    return Check("inotify", True, detail)


def check_config(repo: pathlib.Path) -> tuple[Check, SwarmConfig]:
    from runner.config import find_config

    source = find_config(repo)
    try:
        config = load_config(repo)
    except RunnerError as exc:
        return (
            Check("config", False, str(exc), "fix or remove the key named above (docs/config.md)"),
            SwarmConfig(),
        )
    if source is None:
        return Check("config", True, "none (.swarm.toml or [tool.swarm]): defaults"), config
    if config == SwarmConfig():
        return Check("config", True, f"{source.path}: no swarm settings, defaults"), config
    return Check("config", True, str(source.path)), config


def find_repository(start: pathlib.Path) -> tuple[Check, pathlib.Path | None]:
    try:
        top = git.toplevel(start)
    except RunnerError:
        return (
            Check(
                "repository",
                False,
                f"not a git repository: {start}",
                "run inside a repository, pass --repo DIR, or create one with `git init`",
            ),
            None,
        )
    if git.resolve(top, "HEAD") is None:
        return (
            Check(
                "repository",
                False,
                f"{top} has no commits: a run needs a base commit",
                'make a first commit: git commit --allow-empty -m "initial"',
            ),
            top,
        )
    return Check("repository", True, str(top)), top


def _inside(path: pathlib.Path, root: pathlib.Path) -> bool:
    return path == root or root in path.parents


def worktree_root(repo: pathlib.Path, config: SwarmConfig) -> pathlib.Path:
    return (config.worktree_root or default_worktree_root(repo)).resolve()


def check_worktree_root(repo: pathlib.Path, config: SwarmConfig) -> Check:
    root = worktree_root(repo, config)
    where = "config worktree_root" if config.worktree_root else "default"
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        return Check(
            "worktree root",
            False,
            f"{root} ({where}): {existing} is not a writable directory",
            f"make {existing} writable, or set worktree_root (docs/config.md) / --worktree-root",
        )
    if _inside(root, repo.resolve()):
        return Check(
            "worktree root",
            False,
            f"{root} ({where}) is inside the repository: its test runners and linters see it",
            "set worktree_root to a directory outside the repository",
        )
    return Check("worktree root", True, f"{root} ({where})")


def _configured_agent(config: SwarmConfig) -> AgentPreset:
    if config.agent_cmd:
        return preset("command", config.agent_cmd)
    name = config.agent or "scripted"
    return preset_from_config(config, name) or from_spec(name)


def _program(argv: t.Sequence[str]) -> str | None:
    """The executable of an argv template; None when it is the runner's own Python."""
    return None if not argv or argv[0] == "{python}" else argv[0]


def check_agents(config: SwarmConfig, repo: pathlib.Path | None = None) -> list[Check]:
    """The configured agent must work unattended: a built-in CLI is checked by its adapter
    (installed, version against the tested one, the preset's flags in its ``--help``, trust for
    this repository, root); any other agent's binary must be on PATH. The others are listed."""
    try:
        configured = _configured_agent(config)
    except RunnerError as exc:
        return [Check("agent", False, str(exc), "fix agent / agent_cmd (docs/config.md)")]
    checks: list[Check] = []
    program = _program(configured.argv)
    label = f"agent {configured.name}"
    health = health_checks(configured.name, config, repo) if repo is not None else []
    if health:
        checks += health
    elif program is None:
        checks.append(Check(label, True, "the runner's own Python (configured)"))
    elif (found := shutil.which(program)) is None:
        checks.append(
            Check(
                label,
                False,
                f"{program!r} is not on PATH (configured)",
                f"install {program} or put it on PATH, or configure another agent",
            )
        )
    else:
        checks.append(Check(label, True, f"{found} (configured)"))
    others = [preset(name) for name in KNOWN_AGENTS]
    others += [p for name in config.presets if (p := preset_from_config(config, name))]
    for other in others:
        if other.name == configured.name:
            continue
        program = _program(other.argv)
        if program is None:
            continue
        found = shutil.which(program)
        detail = found or f"{program!r} not on PATH (needed only with --agent {other.name})"
        checks.append(Check(f"agent {other.name}", True, detail))
    return checks


def health_checks(name: str, config: SwarmConfig, repo: pathlib.Path) -> list[Check]:
    """A built-in agent CLI's own checks (:func:`runner.agents.health.check_agent`)."""
    from runner.agents.health import check_agent

    options: dict[str, t.Any] = {"repo": repo, "trust_worktrees": bool(config.trust_worktrees)}
    if config.agent_permissions is not None:
        options["permissions"] = config.agent_permissions
    return [
        Check(f"agent {c.agent} {c.check}", c.level != "fail", c.detail, c.fix)
        for c in check_agent(name, **options)
    ]


class _Run(t.NamedTuple):
    run_id: str
    status: str
    """running, done, failed, stopped, or "unknown" when its state cannot be read."""
    has_mayor: bool


def _runs(repo: pathlib.Path) -> dict[str, _Run]:
    swarm = SwarmPaths.for_repo(repo)
    runs: dict[str, _Run] = {}
    for rid in launch.list_runs(repo):
        paths = swarm.run(rid)
        state: RunState | None
        try:
            state = load_state(paths.state)
        except (RunnerError, ValueError):
            try:
                state = rebuild(read_events(paths.events))
            except (RunnerError, ValueError):
                state = None
        runs[rid] = _Run(rid, state.status if state else "unknown", lock_held(paths.lock))
    return runs


def _owner(name: str, runs: t.Mapping[str, _Run]) -> _Run | None:
    """The run a session or worktree directory name belongs to (the longest matching id)."""
    best: _Run | None = None
    for rid, run in runs.items():
        if (name == rid or name.startswith(f"{rid}-")) and (
            best is None or len(rid) > len(best.run_id)
        ):
            best = run
    return best


def check_runs(runs: t.Mapping[str, _Run]) -> Check:
    orphans = [r.run_id for r in runs.values() if r.status == "running" and not r.has_mayor]
    if orphans:
        return Check(
            "runs",
            False,
            f"marked running but no mayor drives them: {', '.join(orphans)}",
            "; ".join(f"swarm resume {rid} (or swarm stop {rid})" for rid in orphans),
        )
    live = sum(1 for r in runs.values() if r.has_mayor)
    return Check("runs", True, f"{len(runs)} run(s), {live} with a live mayor")


def check_sessions(repo: pathlib.Path, config: SwarmConfig, runs: t.Mapping[str, _Run]) -> Check:
    socket = config.tmux_socket or tmux_socket_name(repo)
    if shutil.which("tmux") is None:
        return Check("sessions", True, "tmux is not installed: no sessions to check")
    result = proc.run(
        "tmux", "-L", socket, "list-sessions", "-F", "#{session_name}", check=False, timeout=TIMEOUT
    )
    if result.returncode != 0:
        return Check("sessions", True, f"no tmux server on socket {socket}")
    stale: dict[str, list[str]] = {}
    names = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    for name in names:
        if not name.startswith("swarm-"):
            continue  # not ours: a user may have started a session on this socket
        run = _owner(name.removeprefix("swarm-"), runs)
        if run is None or run.status != "running":
            stale.setdefault(run.run_id if run else "", []).append(name)
    if not stale:
        return Check("sessions", True, f"{len(names)} session(s) on {socket}, none stale")
    fixes = [f"swarm clean {rid} --force" for rid in stale if rid]
    fixes += [
        f"tmux -L {shlex.quote(socket)} kill-session -t ={shlex.quote(name)}"
        for name in stale.get("", [])
    ]
    listed = ", ".join(name for names_ in stale.values() for name in names_)
    return Check(
        "sessions",
        False,
        f"sessions of ended or unknown runs on {socket}: {listed}",
        "; ".join(fixes),
    )


def check_worktrees(repo: pathlib.Path, config: SwarmConfig, runs: t.Mapping[str, _Run]) -> Check:
    root = worktree_root(repo, config)
    try:
        entries = git.worktree_list(repo)
    except RunnerError as exc:
        return Check("worktrees", False, str(exc).splitlines()[0], "check the repository with git")
    stale: dict[str, list[str]] = {}
    prunable: list[str] = []
    ours = 0
    for entry in entries:
        path = entry.path.resolve() if entry.path.exists() else entry.path
        if not _inside(path, root) or path == root:
            continue
        ours += 1
        if entry.prunable:
            prunable.append(str(entry.path))
            continue
        rid = path.relative_to(root).parts[0]
        run = runs.get(rid)
        if run is None or run.status != "running":
            stale.setdefault(rid if run else "", []).append(str(entry.path))
    if not stale and not prunable:
        return Check("worktrees", True, f"{ours} worktree(s) under {root}, none stale")
    fixes = [f"swarm clean {rid} --force" for rid in stale if rid]
    fixes += [f"git worktree remove --force {shlex.quote(p)}" for p in stale.get("", [])]
    if prunable:
        fixes.append("git worktree prune")
    listed = [p for paths in stale.values() for p in paths] + [f"{p} (missing)" for p in prunable]
    return Check(
        "worktrees",
        False,
        f"worktrees of ended or unknown runs: {', '.join(listed)}",
        "; ".join(fixes),
    )


_EDITABLE_PROBE: t.Final = """
import importlib.metadata as m, json, sys
for dist in m.distributions():
    text = dist.read_text("direct_url.json")
    if text:
        info = json.loads(text)
        if info.get("dir_info", {}).get("editable"):
            print(dist.metadata["Name"], info.get("url", ""), sep="\t")
"""


def check_editable_install(repo: pathlib.Path, python: str = "python3") -> Check:
    """The editable-install trap: a package installed in development mode from this checkout
    is what tests run in a worktree import (the checkout's code, not the worktree's)."""
    try:
        result = proc.run(python, "-c", _EDITABLE_PROBE, check=False, timeout=30)
    except CommandError as exc:
        return Check("editable install", True, f"not checked: {str(exc).splitlines()[0]}")
    root = repo.resolve()
    found = []
    for line in result.stdout.splitlines():
        name, _, url = line.partition("\t")
        path = pathlib.Path(url.removeprefix("file://")) if url.startswith("file://") else None
        if path is not None and (path.resolve() == root or root in path.resolve().parents):
            found.append(name)
    if not found:
        return Check("editable install", True, f"none from this checkout ({python})")
    return Check(
        "editable install",
        True,  # a warning: runs work, but a worktree's tests may import the checkout's code
        f"warning: {', '.join(found)} installed in development mode from {root} ({python}): "
        "tests run in a worktree would import the checkout's code",
        'add `setup: ["pip install -e ."]` with a virtual environment per worktree, or run '
        "tests with PYTHONPATH=. (docs/plan-format.md, setup)",
    )


def check_sandbox(wanted: str) -> Check:
    """bubblewrap, for ``--isolation sandbox``: a problem when ``wanted`` (the config or plan
    that asks for it), else information only."""
    try:
        path = sandbox.require_bwrap()
    except UsageError as exc:
        if not wanted:
            return Check("bwrap", True, "not usable here: needed only with --isolation sandbox")
        problem, _, fix = str(exc).partition(": ")
        return Check("bwrap", False, f"{wanted} asks for --isolation sandbox: {problem}", fix)
    try:
        version = proc.run(path, "--version", timeout=TIMEOUT).stdout.strip()
    except RunnerError:
        version = path
    return Check("bwrap", True, f"{version} ({path}): --isolation sandbox works here")


def _sandbox_wanted(config: SwarmConfig, plan: pathlib.Path | None) -> str:
    """Who asks for ``--isolation sandbox`` (the plan, the config file), or ""."""
    if plan is not None:
        try:
            if load_plan(plan).isolation == "sandbox":
                return f"the plan {plan}"
        except (RunnerError, OSError, ValueError):
            pass  # the plan's own problems are `swarm plan validate`'s to report
    return "the config (isolation)" if config.isolation == "sandbox" else ""


def diagnose(start: pathlib.Path, plan: pathlib.Path | None = None) -> list[Check]:
    """Every check, in order; repository checks are skipped outside a repository. ``plan``:
    the plan about to run (its ``isolation`` makes bubblewrap required)."""
    checks = [
        check_python(),
        check_version(
            "git",
            ("git", "--version"),
            GIT_MIN,
            "merge-tree --write-tree pre-checks merges",
            "",
        ),
        check_version(
            "tmux",
            ("tmux", "-V"),
            TMUX_MIN,
            "private servers, pane hooks",
            " (or use --mode=local)",
        ),
        check_inotify(),
    ]
    repo_check, repo = find_repository(start)
    config_check, config = check_config(repo or start)
    checks += [repo_check, config_check]
    if repo is not None:
        checks.append(check_worktree_root(repo, config))
        checks.append(check_editable_install(repo))
    checks += check_agents(config, repo)
    checks.append(check_sandbox(_sandbox_wanted(config, plan)))
    if repo is not None:
        runs = _runs(repo)
        checks += [
            check_runs(runs),
            check_sessions(repo, config, runs),
            check_worktrees(repo, config, runs),
        ]
    return checks
