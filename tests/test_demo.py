"""``scripts/demo``: a real distributed run that leaves no tmux server and no temporary
directory behind, and ends by saying how to look around and that ``swarm clean`` tidies up."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from runner import sandbox
from runner.errors import UsageError
from runner.paths import tmux_socket_name
from tests.runner.runs import wait_for

DEMO = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


def _demo(tmp_path: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run(
        [sys.executable, str(DEMO), *args], capture_output=True, text=True, env=env, timeout=300
    )


def _server_alive(socket: str) -> bool:
    return (
        subprocess.run(["tmux", "-L", socket, "list-sessions"], capture_output=True).returncode == 0
    )


def test_the_demo_leaves_nothing_behind(tmp_path: pathlib.Path) -> None:
    (tmp_path / "tmp").mkdir()
    where = pathlib.Path(os.environ["XDG_STATE_HOME"]) / "swarm" / "demo"
    socket = tmux_socket_name(where / "calc")
    try:
        for _ in range(2):  # the second demo replaces the first
            result = _demo(tmp_path)
            assert result.returncode == 0, result.stdout + result.stderr
            assert not _server_alive(socket), "the demo left its tmux server running"
            assert list((tmp_path / "tmp").iterdir()) == []
        out = result.stdout
        assert f"cd {where / 'calc'}" in out
        assert "==> look around:" in out and "report --html" in out
        tidy = out[out.index("==> tidy up:") :]
        assert "swarm clean" in tidy and f"rm -rf {where}" in tidy
        report = where / "calc" / ".agents" / "swarm" / "runs" / "demo" / "report.html"
        wait_for(report.is_file)  # written by the run's last notification, just after the end
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def test_the_demo_never_replaces_a_directory_it_did_not_make(tmp_path: pathlib.Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious.txt").write_text("keep me\n")
    result = _demo(tmp_path, "--dir", str(mine))
    assert result.returncode == 1
    assert "is not a demo directory; use --dir" in result.stderr
    assert (mine / "precious.txt").read_text() == "keep me\n"


@pytest.mark.parametrize("isolation", ["clone", "sandbox"])
def test_the_demo_passes_in_clone_and_sandbox_modes(tmp_path: pathlib.Path, isolation: str) -> None:
    """``scripts/demo --isolation clone|sandbox``: every task merges, the sample's tests pass
    on the integration branch, and no tmux server is left."""
    if isolation == "sandbox":
        try:
            sandbox.require_bwrap()
        except UsageError as exc:
            pytest.skip(str(exc))
    (tmp_path / "tmp").mkdir()
    where = tmp_path / "demo"
    socket = tmux_socket_name(where / "calc")
    try:
        result = _demo(tmp_path, "--dir", str(where), "--isolation", isolation)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"--isolation={isolation}" in result.stdout
        assert "Ran 7 tests" in result.stdout + result.stderr
        assert result.stdout.count("swarm(T0") == 8  # the eight merge commits
        assert not _server_alive(socket), "the demo left its tmux server running"
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
