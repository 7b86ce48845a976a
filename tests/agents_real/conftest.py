"""Fixtures for the conformance suite: the real agent CLIs (installed by
``scripts/agents-install``), a fake model for them, and a HOME seeded as a user who has used
each CLI before (onboarding done, API key approved, pointed at the fake model).

A CLI that is not installed is skipped with the command that installs it; ``scripts/test`` runs
the installer first, so in CI every CLI is there and every test runs.
"""

from __future__ import annotations

import json
import os
import pathlib
import typing as t

import libtmux
import pytest

from tests.agents_real.fakemodel import FakeModel

PINNED: t.Final = {"claude": "2.1.332", "codex": "0.171.0", "gemini": "0.61.0", "aider": "0.86.2"}
PROGRAM: t.Final = {"claude": "claude", "codex": "codex", "gemini": "gemini", "aider": "aider"}
# read before any fixture moves HOME: the cache is the real user's
CACHE: t.Final = (
    pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache")
    / "swarm-runner"
    / "agents"
)
API_KEY: t.Final = "sk-swarm-fake-0123456789abcdefghij"


def bin_dir(name: str) -> pathlib.Path | None:
    """The folder holding the CLI ``name``: ``$SWARM_AGENTS_BIN_<NAME>``, else the pinned (or
    with ``SWARM_AGENTS_LATEST=1`` the newest installed) version in the cache."""
    override = os.environ.get(f"SWARM_AGENTS_BIN_{name.upper()}")
    if override:
        return pathlib.Path(override)
    if os.environ.get("SWARM_AGENTS_LATEST"):
        found = sorted(
            (p for p in CACHE.glob(f"{name}-*") if (p / ".installed").is_file()),
            key=lambda p: p.stat().st_mtime,
        )
        return found[-1] / "bin" if found else None
    folder = CACHE / f"{name}-{PINNED[name]}"
    return folder / "bin" if (folder / ".installed").is_file() else None


def require(name: str) -> pathlib.Path:
    found = bin_dir(name)
    if found is None or not (found / PROGRAM[name]).exists():
        pytest.skip(f"{name} is not installed: run scripts/agents-install {name}")
    return found


class Agent(t.NamedTuple):
    name: str
    bin: pathlib.Path
    home: pathlib.Path
    env: dict[str, str]


def seed_home(name: str, home: pathlib.Path, url: str) -> dict[str, str]:
    """Write what a user who has used CLI ``name`` before would have in HOME (not trust: that
    is what swarm prepares or refuses); return the environment pointing it at ``url``."""
    if name == "claude":
        (home / ".claude.json").write_text(
            json.dumps(
                {
                    "hasCompletedOnboarding": True,
                    "lastOnboardingVersion": PINNED["claude"],
                    "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
                }
            )
        )
        return {
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": API_KEY,
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
    if name == "codex":
        (home / ".codex").mkdir(exist_ok=True)
        (home / ".codex" / "config.toml").write_text(
            'model = "fake-model"\nmodel_provider = "fake"\ncheck_for_update_on_startup = false\n'
            "\n[model_providers.fake]\n"
            f'name = "fake"\nbase_url = "{url}/v1"\nenv_key = "FAKE_API_KEY"\n'
            'wire_api = "responses"\n'
        )
        return {"FAKE_API_KEY": API_KEY}
    if name == "gemini":
        (home / ".gemini").mkdir(exist_ok=True)
        (home / ".gemini" / "settings.json").write_text(
            json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}})
        )
        return {"GEMINI_API_KEY": API_KEY, "GOOGLE_GEMINI_BASE_URL": url}
    return {
        "OPENAI_API_BASE": f"{url}/v1",
        "OPENAI_API_KEY": API_KEY,
        "AIDER_MODEL": "openai/fake-model",
    }


@pytest.fixture
def fake_model(tmp_path: pathlib.Path) -> t.Iterator[FakeModel]:
    with FakeModel(tmp_path / "model-requests.jsonl") as model:
        yield model


def make_agent(
    name: str,
    *,
    server: libtmux.Server,
    model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> Agent:
    """CLI ``name`` ready to run in ``server``'s sessions: HOME seeded, its folder first on
    PATH, its model variables in this process and in the tmux server's global environment
    (panes take the server's environment, not the client's)."""
    folder = require(name)
    home = pathlib.Path(os.environ["HOME"])
    env = seed_home(name, home, model.url)
    env["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"
    env["HOME"] = str(home)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HOME", "PATH", "SHELL", *(k for k in os.environ if k.startswith("GIT_")), *env):
        server.cmd("set-environment", "-g", key, os.environ[key])
    return Agent(name, folder, home, env)
