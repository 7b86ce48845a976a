"""runner.config: ``.swarm.toml`` / ``[tool.swarm]`` loading, errors naming file and key, CLI
precedence and custom presets."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from protocol.plan import Budgets, Gate
from runner.agents.presets import build_argv
from runner.config import SwarmConfig, load_config, merge_options, preset_from_config
from runner.errors import UsageError

FULL: t.Final = """
max_workers = 3
agent = "mine"
agent_cmd = "my-agent {prompt}"
worktree_root = "../wt"
tmux_socket = "swarm-test"
auto_spawn = "off"
stall_after = "30m"
keep_sessions = true

[presets.mine]
argv = ["mine", "--task", "{task}", "{prompt}"]
resume_argv = ["mine", "--continue", "{prompt}"]

[[gates]]
name = "tests"
command = "pytest -q"
timeout = "10m"

[budgets]
spawns = 4
max_attempts = 2
"""


def test_defaults_without_a_config_file(tmp_path: pathlib.Path) -> None:
    assert load_config(tmp_path) == SwarmConfig()


def test_pyproject_without_a_swarm_table_is_defaults(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert load_config(tmp_path) == SwarmConfig()


def test_every_key_of_swarm_toml(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text(FULL)
    config = load_config(tmp_path)
    assert config.max_workers == 3
    assert (config.agent, config.agent_cmd) == ("mine", "my-agent {prompt}")
    assert config.worktree_root == tmp_path / "../wt"  # relative to the repository
    assert config.tmux_socket == "swarm-test"
    assert config.auto_spawn == "off"
    assert config.stall_after == 1800.0
    assert config.keep_sessions is True
    assert config.gates == (Gate(name="tests", command="pytest -q", timeout=600),)
    assert config.budgets == Budgets(spawns=4, max_attempts=2)
    assert config.presets["mine"].resume_argv == ("mine", "--continue", "{prompt}")


def test_pyproject_tool_swarm_table(tmp_path: pathlib.Path) -> None:
    text = FULL.replace("[presets.", "[tool.swarm.presets.").replace(
        "[[gates]]", "[[tool.swarm.gates]]"
    )
    text = "[tool.swarm]\n" + text.replace("[budgets]", "[tool.swarm.budgets]")
    (tmp_path / "pyproject.toml").write_text(text)
    assert load_config(tmp_path).max_workers == 3
    assert load_config(tmp_path) == _swarm_toml_config(tmp_path / "other")


def _swarm_toml_config(where: pathlib.Path) -> SwarmConfig:
    where.mkdir()
    (where / ".swarm.toml").write_text(FULL)
    config = load_config(where)
    # worktree_root is relative to each file's own directory
    return config.model_copy(update={"worktree_root": where.parent / "../wt"})


def test_swarm_toml_wins_over_pyproject(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.swarm]\nmax_workers = 7\n")
    (tmp_path / ".swarm.toml").write_text("max_workers = 2\n")
    assert load_config(tmp_path).max_workers == 2


def test_swarm_toml_may_use_a_tool_swarm_table(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text("[tool.swarm]\nmax_workers = 2\n")
    assert load_config(tmp_path).max_workers == 2


def test_absolute_and_home_worktree_roots(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text(f'worktree_root = "{tmp_path / "abs"}"\n')
    assert load_config(tmp_path).worktree_root == tmp_path / "abs"
    (tmp_path / ".swarm.toml").write_text('worktree_root = "~/wt"\n')
    assert load_config(tmp_path).worktree_root == pathlib.Path.home() / "wt"


class Bad(t.NamedTuple):
    test_id: str
    file: str
    text: str
    match: str


BAD: t.Final = (
    Bad(
        "unknown-key-pyproject",
        "pyproject.toml",
        "[tool.swarm]\nmax_wrokers = 3\n",
        r"pyproject\.toml: tool\.swarm\.max_wrokers: unknown key",
    ),
    Bad(
        "unknown-key-swarm-toml",
        ".swarm.toml",
        "max_wrokers = 3\n",
        r"\.swarm\.toml: max_wrokers: unknown key",
    ),
    Bad(
        "unknown-key-swarm-toml-tool-table",
        ".swarm.toml",
        "[tool.swarm]\nmax_wrokers = 3\n",
        r"\.swarm\.toml: tool\.swarm\.max_wrokers: unknown key",
    ),
    Bad(
        "misspelt-gate-key-named-first",
        ".swarm.toml",
        '[[gates]]\nname = "t"\ncomand = "x"\n',
        r"\.swarm\.toml: gates\[0\]\.comand: unknown key \(and 1 more\)",
    ),
    Bad(
        "bad-auto-spawn",
        ".swarm.toml",
        'auto_spawn = "sometimes"\n',
        r"auto_spawn: Input should be 'off', 'safe' or 'all'",
    ),
    Bad(
        "bad-duration",
        ".swarm.toml",
        'stall_after = "soon"\n',
        r"stall_after: bad duration 'soon'",
    ),
    Bad("zero-workers", ".swarm.toml", "max_workers = 0\n", r"max_workers: Input should be"),
    Bad(
        "unknown-placeholder",
        ".swarm.toml",
        '[presets.mine]\nargv = ["mine", "{promt}"]\n',
        r"presets\.mine\.argv: unknown placeholder \{promt\}",
    ),
    Bad(
        "unknown-placeholder-resume",
        ".swarm.toml",
        '[presets.mine]\nargv = ["mine"]\nresume_argv = ["mine", "{breif}"]\n',
        r"presets\.mine\.resume_argv: unknown placeholder \{breif\}",
    ),
    Bad(
        "empty-argv",
        ".swarm.toml",
        "[presets.mine]\nargv = []\n",
        r"presets\.mine\.argv: Tuple should have at least 1 item",
    ),
    Bad(
        "reserved-preset-name",
        ".swarm.toml",
        '[presets.command]\nargv = ["x"]\n',
        r"presets: 'command' is reserved",
    ),
    Bad(
        "unsafe-preset-name",
        ".swarm.toml",
        '[presets."a b"]\nargv = ["x"]\n',
        r"presets: invalid id 'a b'",
    ),
    Bad("bad-toml", ".swarm.toml", "max_workers = = 3\n", r"\.swarm\.toml: invalid TOML"),
    Bad(
        "tool-swarm-not-a-table",
        "pyproject.toml",
        '[tool]\nswarm = "yes"\n',
        r"pyproject\.toml: tool\.swarm: must be a table",
    ),
)


@pytest.mark.parametrize("case", BAD, ids=[c.test_id for c in BAD])
def test_errors_name_the_file_and_the_key(tmp_path: pathlib.Path, case: Bad) -> None:
    (tmp_path / case.file).write_text(case.text)
    with pytest.raises(UsageError, match=case.match) as info:
        load_config(tmp_path)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


def test_cli_values_that_are_not_none_override(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text(
        "max_workers = 3\nagent = 'claude'\nkeep_sessions = true\n"
    )
    config = load_config(tmp_path)
    merged = merge_options(
        config, max_workers=8, agent=None, keep_sessions=False, mode="local", run_id=None
    )
    assert merged["max_workers"] == 8  # the flag wins
    assert merged["agent"] == "claude"  # not given on the command line: the file's value
    assert merged["keep_sessions"] is False  # an explicit False is a value
    assert merged["mode"] == "local"  # keys the config does not know pass through
    assert "run_id" not in merged
    assert merged["auto_spawn"] is None  # unset everywhere: the caller's default applies
    assert set(SwarmConfig.model_fields) <= set(merged)


def test_preset_from_config(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text(FULL)
    config = load_config(tmp_path)
    assert preset_from_config(config, "claude") is None
    mine = preset_from_config(config, "mine")
    assert mine is not None
    brief = tmp_path / "brief.md"
    argv = build_argv(mine, brief=brief, task="T1", worktree=tmp_path)
    assert argv[:3] == ("mine", "--task", "T1")
    assert str(brief) in argv[3]
    resumed = build_argv(mine, brief=brief, task="T1", worktree=tmp_path, resume=True)
    assert resumed[:2] == ("mine", "--continue")


def test_a_custom_preset_may_shadow_a_built_in_one(tmp_path: pathlib.Path) -> None:
    (tmp_path / ".swarm.toml").write_text(
        '[presets.claude]\nargv = ["claude", "--model", "opus", "{prompt}"]\n'
    )
    shadow = preset_from_config(load_config(tmp_path), "claude")
    assert shadow is not None
    assert shadow.argv[:3] == ("claude", "--model", "opus")
