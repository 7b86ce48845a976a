from __future__ import annotations

import os
import pathlib

from libtmux.server import Server

from tests.conftest import git


def test_env_is_isolated(user_path: pathlib.Path) -> None:
    assert os.environ["HOME"] == str(user_path)
    assert os.environ["SHELL"] == "/bin/sh"
    assert "TMUX" not in os.environ


def test_private_tmux_server(server: Server) -> None:
    session = server.new_session("fixture-check")
    assert server.socket_name is not None
    assert server.socket_name.startswith("libtmux_test")
    assert [s.name for s in server.sessions] == [session.name]


def test_git_repo_is_fresh_copy(git_repo: pathlib.Path) -> None:
    assert git(git_repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert git(git_repo, "status", "--porcelain") == ""
    assert git(git_repo, "log", "--format=%an") == "Swarm Test"
