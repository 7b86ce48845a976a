"""Repository configuration: ``.swarm.toml``, else ``[tool.swarm]`` in ``pyproject.toml``.

Every key is optional; a key that is not set leaves the built-in default (or the plan's value)
in place, and a command-line flag overrides the file (:func:`merge_options`). Unknown keys are
errors that name the file and the key (see ``docs/config.md``).
"""

from __future__ import annotations

import logging
import pathlib
import tomllib
import typing as t

from pydantic import BeforeValidator, Field, ValidationError, field_validator

from protocol.base import Model, check_id
from protocol.hosts import HostSpec
from protocol.plan import Budgets, Gate, Isolation, check_notify, parse_duration
from runner.agents.presets import COMMAND, AgentPreset, build_argv
from runner.errors import UsageError

logger = logging.getLogger(__name__)

SWARM_TOML: t.Final = ".swarm.toml"
PYPROJECT: t.Final = "pyproject.toml"

AutoSpawn = t.Literal["off", "safe", "all"]


def _duration(value: t.Any) -> t.Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str | int | float):
        return parse_duration(value)
    return value


Duration = t.Annotated[float, BeforeValidator(_duration)]


class PresetConfig(Model):
    """A custom agent preset: argv templates with ``{brief}``, ``{task}``, ``{worktree}``,
    ``{prompt}`` and ``{python}`` placeholders, substituted per token (never a shell string)."""

    argv: tuple[str, ...] = Field(min_length=1)
    resume_argv: tuple[str, ...] | None = Field(default=None, min_length=1)
    home: tuple[str, ...] = ()
    """Files and folders of the user's home the agent needs in a sandbox (``.mycli``)."""

    @field_validator("home")
    @classmethod
    def _home_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            parts = pathlib.PurePosixPath(name).parts
            if not parts or name.startswith("/") or ".." in parts or name.startswith("~"):
                raise ValueError(f"{name!r}: name a path inside the home, e.g. '.mycli'")
        return value

    @field_validator("argv", "resume_argv")
    @classmethod
    def _program(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value[0].strip():
            raise ValueError("the first word must name the program, e.g. ['my-agent', '{prompt}']")
        return value


class SwarmConfig(Model):
    """The ``[tool.swarm]`` table (or ``.swarm.toml``); ``None`` means "not set"."""

    max_workers: int | None = Field(default=None, ge=1)
    agent: str | None = None
    agent_cmd: str | None = None
    worktree_root: pathlib.Path | None = None
    """Relative paths are relative to the repository (the directory of the config file)."""
    tmux_socket: str | None = None
    auto_spawn: AutoSpawn | None = None
    stall_after: Duration | None = None
    """Seconds (``90s``, ``30m``, ``2h`` or a number in the file)."""
    keep_sessions: bool | None = None
    isolation: Isolation | None = None
    """Each worker's checkout: ``worktree`` (default), ``clone`` or ``sandbox``."""
    network: bool | None = None
    """Sandboxed workers reach the network (default); ``false``: no network at all."""
    agent_permissions: t.Literal["worktree", "full"] | None = None
    """What a built-in agent may do without asking (docs/agents.md): ``worktree`` (default)
    or ``full`` (the CLI's own skip-every-prompt mode)."""
    trust_worktrees: bool | None = None
    """Consent to record the CLI's folder trust for this run's worktree paths only."""
    presets: dict[str, PresetConfig] = Field(default_factory=dict)
    gates: tuple[Gate, ...] = ()
    setup: tuple[str, ...] = ()
    """Commands run in each new worktree before its agent starts (the plan's ``setup`` wins)."""
    budgets: Budgets | None = None
    notify: str | None = None
    """The notification hook (docs/config.md), unless the plan has one."""
    hosts: tuple[HostSpec, ...] = ()
    """Hosts workers may run on (``[[tool.swarm.hosts]]``; docs/hosts.md)."""

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[HostSpec, ...]) -> tuple[HostSpec, ...]:
        names = [host.check().name for host in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"host {twice[0]!r} is listed twice: give each host one entry")
        return value

    @field_validator("notify")
    @classmethod
    def _notify(cls, value: str | None) -> str | None:
        return check_notify(value)

    @field_validator("presets")
    @classmethod
    def _preset_names(cls, value: dict[str, PresetConfig]) -> dict[str, PresetConfig]:
        for name in value:
            check_id(name)
            if name == COMMAND:
                raise ValueError(f"{COMMAND!r} is reserved for --agent-cmd; name the preset else")
        return value


def check_presets(config: SwarmConfig) -> None:
    """Substitute every custom preset once, so a typo such as ``{promt}`` fails at load time.
    Raises :class:`UsageError` naming ``presets.<name>.<argv|resume_argv>``."""
    for name, spec in config.presets.items():
        for field, argv in (("argv", spec.argv), ("resume_argv", spec.resume_argv)):
            if argv is None:
                continue
            try:
                build_argv(
                    AgentPreset(name, argv),
                    brief=pathlib.Path("brief.md"),
                    task="T",
                    worktree=pathlib.Path(),
                )
            except UsageError as exc:
                raise UsageError(f"presets.{name}.{field}: {exc}") from None


class ConfigSource(t.NamedTuple):
    path: pathlib.Path
    prefix: tuple[str, ...]
    """Where the swarm table is inside the file: ``("tool", "swarm")`` or ``()``."""


def find_config(repo: pathlib.Path) -> ConfigSource | None:
    """The file ``load_config`` reads: ``.swarm.toml`` wins over ``pyproject.toml``."""
    dotfile = repo / SWARM_TOML
    if dotfile.is_file():
        return ConfigSource(dotfile, ())
    pyproject = repo / PYPROJECT
    if pyproject.is_file():
        return ConfigSource(pyproject, ("tool", "swarm"))
    return None


def _key_path(prefix: tuple[str, ...], loc: t.Sequence[int | str]) -> str:
    out = ".".join(prefix)
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "(top level)"


def _message(err: t.Mapping[str, t.Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    msg = str(err["msg"])
    for noise in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(noise)
    return msg


def load_config(repo: pathlib.Path) -> SwarmConfig:
    """The repository's configuration (defaults when it has none).

    Reads ``<repo>/.swarm.toml`` (keys at the top level, or under ``[tool.swarm]``), else the
    ``[tool.swarm]`` table of ``<repo>/pyproject.toml``. Raises :class:`UsageError` naming the
    file and the key, e.g. ``.swarm.toml: max_wrokers: unknown key``."""
    source = find_config(repo)
    if source is None:
        return SwarmConfig()
    path, prefix = source
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}; fix the syntax") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if not prefix and set(document) == {"tool"} and isinstance(document["tool"], dict):
        prefix = ("tool", "swarm")  # a .swarm.toml written like pyproject.toml
    table: t.Any = document
    for depth, key in enumerate(prefix):
        table = table.get(key, {}) if isinstance(table, dict) else None
        if not isinstance(table, dict):
            where = ".".join(prefix[: depth + 1])
            raise UsageError(f"{path}: {where}: must be a table")
    try:
        config = SwarmConfig.model_validate(table)
        check_presets(config)
    except ValidationError as exc:
        # a misspelt key also shows up as "field required": name the misspelling first
        errors = sorted(exc.errors(), key=lambda err: err["type"] != "extra_forbidden")
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UsageError(
            f"{path}: {_key_path(prefix, first['loc'])}: {_message(first)}{more}"
        ) from None
    except UsageError as exc:
        where = ".".join(prefix)
        raise UsageError(f"{path}: {where + '.' if where else ''}{exc}") from None
    root = config.worktree_root
    if root is not None:
        root = root.expanduser()
        config = config.model_copy(
            update={"worktree_root": root if root.is_absolute() else repo / root}
        )
    logger.debug("loaded config", extra={"path": str(path)})
    return config


def merge_options(config: SwarmConfig, **cli_values: t.Any) -> dict[str, t.Any]:
    """Every config key with its value, overridden by the CLI values that are not None.

    Keys the config does not know (``mode``, ``run_id`` ...) are passed through when not None.
    Flags must default to None (not False) to let the file decide when they are not given."""
    merged: dict[str, t.Any] = {name: getattr(config, name) for name in SwarmConfig.model_fields}
    merged.update({key: value for key, value in cli_values.items() if value is not None})
    return merged


def preset_from_config(config: SwarmConfig, name: str) -> AgentPreset | None:
    """The custom preset ``name`` of the config (it may shadow a built-in one), else None."""
    spec = config.presets.get(name)
    if spec is None:
        return None
    return AgentPreset(name, spec.argv, spec.resume_argv, home=spec.home)
