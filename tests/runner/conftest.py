"""Fixtures shared by the runner tests: both session backends, for contract tests."""

from __future__ import annotations

import pathlib
import shutil
import typing as t

import libtmux
import pytest

from runner import sessions as s

Backend = s.TmuxBackend | s.ProcessBackend


@pytest.fixture
def tmux(server: libtmux.Server, tmp_path: pathlib.Path) -> t.Iterator[s.TmuxBackend]:
    """A tmux backend on the test's private tmux server."""
    assert server.socket_name
    backend = s.TmuxBackend(server.socket_name, notify_dir=tmp_path / "notify")
    yield backend
    backend.close()


@pytest.fixture
def local() -> t.Iterator[s.ProcessBackend]:
    """A plain-process backend; every child it started is killed at the end."""
    backend = s.ProcessBackend(grace=2.0)
    yield backend
    for name in backend.list_sessions(""):
        backend.kill(name)
    backend.close()


@pytest.fixture(params=["tmux", "process"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Both backends: the contract tests run against each."""
    return t.cast(Backend, request.getfixturevalue("tmux" if request.param == "tmux" else "local"))


@pytest.fixture
def without_bwrap(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    """PATH set to a folder holding only git, tmux and sh: no bubblewrap."""
    folder = tmp_path / "bin-without-bwrap"
    folder.mkdir()
    for tool in ("git", "tmux", "sh"):
        program = shutil.which(tool)
        assert program
        (folder / tool).symlink_to(program)
    monkeypatch.setenv("PATH", str(folder))
    return folder
