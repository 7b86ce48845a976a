"""``swarm doctor``: real git repositories, a real private tmux server, real runs on disk and
fake executables; exit 0 when all is fine, 1 with a fix line per problem."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import stat
import typing as t

import libtmux
import pytest
from click.testing import CliRunner, Result

from agentmail.fs import exclusive_lock
from runner.cli.doctor import command as doctor_command
from runner.doctor import (
    GIT_MIN,
    check_editable_install,
    check_inotify,
    check_version,
    parse_version,
)
from runner.paths import SwarmPaths
from runner.state import RunLog
from tests.conftest import git


def doctor(repo: pathlib.Path, *args: str) -> Result:
    return CliRunner().invoke(doctor_command, ["--repo", str(repo), *args])


def checks(repo: pathlib.Path) -> dict[str, dict[str, t.Any]]:
    result = doctor(repo, "--json")
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "doctor" and doc["ok"] == (result.exit_code == 0)
    return {c["name"]: c for c in doc["checks"]}


def problems(repo: pathlib.Path) -> dict[str, dict[str, t.Any]]:
    return {name: c for name, c in checks(repo).items() if not c["ok"]}


def make_run(repo: pathlib.Path, run_id: str, status: str | None) -> RunLog:
    """A run on disk; ``status`` None leaves it running."""
    paths = SwarmPaths.for_repo(repo).run(run_id)
    paths.dir.mkdir(parents=True)
    log = RunLog(paths.events, paths.state)
    log.record("run_created", run_id=run_id, tasks=["T01"])
    if status is not None:
        log.record("run_finished", status=status, reason="test")
    return log


def fake_program(directory: pathlib.Path, name: str, output: str = "") -> pathlib.Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_a_fresh_repository_is_fine(git_repo: pathlib.Path) -> None:
    result = doctor(git_repo)
    assert result.exit_code == 0, result.output
    for name in ("git", "tmux", "python", "inotify", "repository", "worktree root", "sessions"):
        assert f"ok  {name}" in result.output
    assert "FAIL" not in result.output and "fix:" not in result.output


def test_json_lists_every_check(git_repo: pathlib.Path) -> None:
    found = checks(git_repo)
    assert {"git", "tmux", "python", "inotify", "repository", "config", "agent scripted"} <= set(
        found
    )
    assert {"runs", "sessions", "worktrees", "worktree root"} <= set(found)
    assert set(found["git"]) == {"name", "ok", "detail", "fix"}


def test_not_a_repository(tmp_path: pathlib.Path) -> None:
    (tmp_path / "plain").mkdir()
    result = doctor(tmp_path / "plain")
    assert result.exit_code == 1, result.output
    assert "FAIL  repository" in result.output
    assert "fix: run inside a repository" in result.output
    assert "1 problem(s)" in result.output


def test_a_repository_without_commits(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q")
    found = problems(repo)
    assert list(found) == ["repository"]
    assert "no commits" in found["repository"]["detail"]
    assert "git commit --allow-empty" in found["repository"]["fix"]


def test_config_errors_name_the_key(git_repo: pathlib.Path) -> None:
    (git_repo / ".swarm.toml").write_text("max_wrokers = 3\n")
    result = doctor(git_repo)
    assert result.exit_code == 1, result.output
    assert "max_wrokers: unknown key" in result.output
    assert "fix: fix or remove the key" in result.output


def test_only_the_configured_agent_must_be_on_path(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    fake_program(bin_dir, "claude")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    (git_repo / ".swarm.toml").write_text(
        'agent = "mine"\n[presets.mine]\nargv = ["swarm-test-no-such-agent", "{prompt}"]\n'
    )
    found = checks(git_repo)
    assert not found["agent mine"]["ok"]
    assert "'swarm-test-no-such-agent' is not on PATH (configured)" in found["agent mine"]["detail"]
    assert "install swarm-test-no-such-agent" in found["agent mine"]["fix"]
    assert found["agent claude"]["ok"] and found["agent claude"]["detail"] == str(
        bin_dir / "claude"
    )
    if shutil.which("gemini") is None:  # not configured: information only
        assert found["agent gemini"]["ok"]
        assert "needed only with --agent gemini" in found["agent gemini"]["detail"]

    (git_repo / ".swarm.toml").write_text('agent = "claude"\n')
    configured = checks(git_repo)  # a built-in CLI: its adapter's checks, by name
    names = {name for name in configured if name.startswith("agent claude ")}
    assert {"agent claude version", "agent claude flags"} <= names, configured
    assert "claude --version" in configured["agent claude version"]["detail"]


def test_agent_cmd_names_the_configured_program(git_repo: pathlib.Path) -> None:
    (git_repo / ".swarm.toml").write_text("agent_cmd = 'swarm-test-missing --task {task}'\n")
    assert list(problems(git_repo)) == ["agent command"]


class Root(t.NamedTuple):
    test_id: str
    root: str
    detail: str


ROOTS: t.Final = (
    Root("inside-the-repository", "{repo}/wt", "inside the repository"),
    Root("below-a-file", "{tmp}/a-file/wt", "is not a writable directory"),
)


@pytest.mark.parametrize("case", ROOTS, ids=[c.test_id for c in ROOTS])
def test_worktree_root_problems(git_repo: pathlib.Path, tmp_path: pathlib.Path, case: Root) -> None:
    (tmp_path / "a-file").write_text("")
    root = case.root.format(repo=git_repo, tmp=tmp_path)
    (git_repo / ".swarm.toml").write_text(f'worktree_root = "{root}"\n')
    found = problems(git_repo)
    assert list(found) == ["worktree root"]
    assert case.detail in found["worktree root"]["detail"]
    assert "(config worktree_root)" in found["worktree root"]["detail"]


def test_a_running_run_without_a_mayor(git_repo: pathlib.Path) -> None:
    make_run(git_repo, "r1", None)
    found = problems(git_repo)
    assert list(found) == ["runs"]
    assert "swarm resume r1" in found["runs"]["fix"]
    lock = SwarmPaths.for_repo(git_repo).run("r1").lock
    with exclusive_lock(lock) as held:  # a live mayor holds the run's lock
        assert held
        assert problems(git_repo) == {}
        assert "1 with a live mayor" in checks(git_repo)["runs"]["detail"]


def test_stale_sessions_on_the_private_server(
    git_repo: pathlib.Path, server: libtmux.Server
) -> None:
    (git_repo / ".swarm.toml").write_text(f'tmux_socket = "{server.socket_name}"\n')
    make_run(git_repo, "r1", "done")
    make_run(git_repo, "r1-b", None)  # an id with another run's id as its prefix
    for name in ("swarm-r1-T01", "swarm-r1-b-T01", "swarm-gone-T09", "someone-elses"):
        server.new_session(session_name=name, window_command="sleep 600")
    lock = SwarmPaths.for_repo(git_repo).run("r1-b").lock
    with exclusive_lock(lock):
        found = problems(git_repo)
    assert list(found) == ["sessions"]
    detail, fix = found["sessions"]["detail"], found["sessions"]["fix"]
    assert "swarm-r1-T01" in detail and "swarm-gone-T09" in detail
    assert "swarm-r1-b-T01" not in detail and "someone-elses" not in detail
    assert "swarm clean r1 --force" in fix
    assert f"tmux -L {server.socket_name} kill-session -t =swarm-gone-T09" in fix


def test_stale_worktrees_under_the_root(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    root = tmp_path / "wt"
    (git_repo / ".swarm.toml").write_text(f'worktree_root = "{root}"\n')
    make_run(git_repo, "r1", "failed")
    make_run(git_repo, "r2", None)
    git(git_repo, "worktree", "add", "-q", "-b", "swarm/r1/T01", str(root / "r1" / "T01"))
    git(git_repo, "worktree", "add", "-q", "-b", "swarm/r2/T01", str(root / "r2" / "T01"))
    git(git_repo, "worktree", "add", "-q", "-b", "swarm/old/T01", str(root / "old" / "T01"))
    git(git_repo, "worktree", "add", "-q", "-b", "elsewhere", str(tmp_path / "mine"))
    shutil.rmtree(root / "old")  # a worktree whose directory is gone
    with exclusive_lock(SwarmPaths.for_repo(git_repo).run("r2").lock):
        found = problems(git_repo)
    assert list(found) == ["worktrees"]
    detail, fix = found["worktrees"]["detail"], found["worktrees"]["fix"]
    assert str(root / "r1" / "T01") in detail and f"{root / 'old' / 'T01'} (missing)" in detail
    assert str(root / "r2") not in detail and "mine" not in detail
    assert fix == "swarm clean r1 --force; git worktree prune"


class Version(t.NamedTuple):
    test_id: str
    text: str
    version: tuple[int, ...] | None


VERSIONS: t.Final = (
    Version("git", "git version 2.39.5", (2, 39, 5)),
    Version("git-vendor", "git version 2.37.1.windows.1", (2, 37, 1)),
    Version("tmux-letter", "tmux 3.3a", (3, 3)),
    Version("tmux-next", "tmux next-3.4", (3, 4)),
    Version("tmux-master", "tmux master", None),
)


@pytest.mark.parametrize("case", VERSIONS, ids=[c.test_id for c in VERSIONS])
def test_parse_version(case: Version) -> None:
    assert parse_version(case.text) == case.version


def test_an_old_or_missing_program(tmp_path: pathlib.Path) -> None:
    old = fake_program(tmp_path / "bin", "git", "git version 2.30.2")
    check = check_version("git", (str(old), "--version"), GIT_MIN, "merge-tree", "")
    assert not check.ok
    assert check.detail == "git version 2.30.2: 2.38 or newer is needed (merge-tree)"
    assert check.fix == "upgrade git to 2.38 or newer"
    new = fake_program(tmp_path / "bin2", "git", "git version 2.45.0")
    assert check_version("git", (str(new), "--version"), GIT_MIN, "x", "").ok
    missing = check_version("tmux", ("swarm-test-no-tmux", "-V"), (3, 0), "x", " (or local)")
    assert not missing.ok
    assert "command not found" in missing.detail
    assert missing.fix == "install tmux 3.0 or newer (or local)"


def test_inotify_limits(tmp_path: pathlib.Path) -> None:
    assert check_inotify(tmp_path / "missing") == (
        "inotify",
        True,
        "not available: the watchers fall back to polling",
        "",
    )
    limits = tmp_path / "inotify"
    limits.mkdir()
    (limits / "max_user_watches").write_text("524288\n")
    (limits / "max_user_instances").write_text("128\n")
    assert check_inotify(limits).ok
    (limits / "max_user_instances").write_text("8\n")
    low = check_inotify(limits)
    assert not low.ok
    assert "max_user_instances=8" in low.detail
    assert low.fix == "raise it: sudo sysctl fs.inotify.max_user_instances=512"


def test_an_editable_install_from_the_checkout_is_warned_about(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real distribution record (what `pip install -e .` leaves in site-packages), found by
    a real `python3` through PYTHONPATH."""
    site = tmp_path / "site"
    info = site / "calc-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: calc\nVersion: 1.0\n")
    url = {"url": f"file://{git_repo}", "dir_info": {"editable": True}}
    (info / "direct_url.json").write_text(json.dumps(url))
    monkeypatch.setenv("PYTHONPATH", str(site))
    found = check_editable_install(git_repo)
    assert found.ok and found.detail.startswith("warning: calc installed in development mode")
    assert "setup" in found.fix
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nothing"))
    assert "none from this checkout" in check_editable_install(git_repo).detail


class Sandboxed(t.NamedTuple):
    test_id: str
    config: str
    plan: str
    ok: bool


@pytest.mark.parametrize(
    "case",
    [
        Sandboxed("not-asked", "", "", True),
        Sandboxed("config", 'isolation = "sandbox"\n', "", False),
        Sandboxed("plan", "", "sandbox", False),
        Sandboxed("plan-clone", "", "clone", True),
    ],
    ids=lambda c: c.test_id,
)
@pytest.mark.usefixtures("without_bwrap")
def test_a_missing_bwrap_is_a_problem_only_when_sandbox_is_asked_for(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, case: Sandboxed
) -> None:
    if case.config:
        (git_repo / ".swarm.toml").write_text(case.config)
    args = ["--json"]
    if case.plan:
        plan = tmp_path / "plan.yaml"
        plan.write_text(
            f"isolation: {case.plan}\ntasks:\n  - id: T1\n    subject: one\n    files: [a]\n"
        )
        args += ["--plan", str(plan)]
    result = doctor(git_repo, *args)
    found = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert found["bwrap"]["ok"] is case.ok, found["bwrap"]
    if case.ok:
        assert "needed only with --isolation sandbox" in found["bwrap"]["detail"]
    else:
        assert "asks for --isolation sandbox" in found["bwrap"]["detail"]
        assert "apt-get install bubblewrap" in found["bwrap"]["fix"]
        assert result.exit_code == 1
