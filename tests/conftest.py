"""Shared fixtures: a private tmux server per test (libtmux's pytest plugin), isolated HOME and
SHELL, and fast temporary git repositories copied from a session-scoped template."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import typing as t

import pytest
from hypothesis import settings

# No per-example deadline: on a shared 2-core machine one slow example is load, not a bug (the
# default 200 ms deadline made property tests fail at random under a full suite).
settings.register_profile("swarm", deadline=None)
settings.load_profile("swarm")

GIT_ENV: t.Final = {
    "GIT_AUTHOR_NAME": "Swarm Test",
    "GIT_AUTHOR_EMAIL": "swarm-test@example.invalid",
    "GIT_COMMITTER_NAME": "Swarm Test",
    "GIT_COMMITTER_EMAIL": "swarm-test@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def _isolated_env(
    monkeypatch: pytest.MonkeyPatch, user_path: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """HOME in the plugin's user dir, a plain shell, no outer tmux, no git config, no
    inherited swarm identity, and XDG state under the test's tmp dir."""
    monkeypatch.setenv("HOME", str(user_path))
    monkeypatch.setenv("SHELL", "/bin/sh")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    for name in ("TMUX", "TMUX_PANE"):
        monkeypatch.delenv(name, raising=False)
    for name in list(os.environ):
        if name.startswith(("SWARM_", "GIT_")):
            monkeypatch.delenv(name, raising=False)
    for name, value in GIT_ENV.items():
        monkeypatch.setenv(name, value)


def git(repo: pathlib.Path, *args: str) -> str:
    """Run git in ``repo`` for test set-up and assertions; return stripped stdout."""
    out = subprocess.run(
        ["git", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def _git_template(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    repo = tmp_path_factory.mktemp("template") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# sample\n")
    (repo / "src").mkdir()
    (repo / "src" / "__init__.py").write_text("")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


@pytest.fixture
def git_repo(_git_template: pathlib.Path, tmp_path: pathlib.Path) -> pathlib.Path:
    """A fresh git repository on branch ``main`` with one commit (README.md, src/)."""
    repo = tmp_path / "repo"
    shutil.copytree(_git_template, repo, symlinks=True)
    return repo


@pytest.fixture(autouse=True)
def _events_obey_the_lifecycle(tmp_path: pathlib.Path) -> t.Iterator[None]:
    """Every ``events.jsonl`` a test leaves behind replays through the lifecycle table (a run
    log that only our own recorder wrote must never hold a transition the table refuses)."""
    yield
    from protocol.state import LifecycleError
    from runner.errors import UsageError
    from runner.state import read_events, rebuild

    for path in tmp_path.rglob("events.jsonl"):
        try:
            events = read_events(path)
        except UsageError:  # a test that wrote garbage on purpose
            continue
        if events and events[0].kind == "run_created":
            try:
                rebuild(events)
            except LifecycleError as exc:
                pytest.fail(f"{path}: {exc}")
