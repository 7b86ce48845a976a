"""Conformance: each built-in preset runs the REAL agent CLI, unattended, against the fake model.

Every test runs ``swarm run --agent NAME`` (the mayor in this process, the workers in the test's
private tmux server) on a fresh repository and checks what a user would: the run merged, the
reports came from the right workers, and no agent process outlived the run.
"""

from __future__ import annotations

import os
import pathlib
import time
import typing as t

import libtmux
import pytest
import yaml

from tests.agents_real.conftest import Agent, make_agent
from tests.agents_real.fakemodel import FakeModel
from tests.conftest import git
from tests.runner.runs import events, state_doc, swarm_run

AGENTS: t.Final = ("claude", "codex", "gemini", "aider")
RUN_TIMEOUT: t.Final = int(os.environ.get("SWARM_REAL_TIMEOUT", "240"))


def write_plan(repo: pathlib.Path, count: int = 3) -> pathlib.Path:
    tasks = [
        {
            "id": f"T{n}",
            "subject": f"Add file {n}",
            "description": f"Create src/t{n}.txt with one line of text.",
            "files": [f"src/t{n}.txt"],
            "validation": {"files_exist": [f"src/t{n}.txt"]},
        }
        for n in range(1, count + 1)
    ]
    plan = repo.parent / "plan.yaml"
    plan.write_text(yaml.safe_dump({"name": "real-agents", "max_workers": 3, "tasks": tasks}))
    return plan


def configure(repo: pathlib.Path, **keys: t.Any) -> None:
    lines = [f"{key} = {str(value).lower() if isinstance(value, bool) else repr(value)}"
             for key, value in keys.items()]  # fmt: skip
    (repo / ".swarm.toml").write_text("\n".join(lines) + "\n")
    git(repo, "add", ".swarm.toml")
    git(repo, "commit", "-q", "-m", "swarm config")


def agent_processes(run_home: pathlib.Path) -> list[str]:
    """Processes still running with this run's SWARM_HOME in their environment."""
    marker = f"SWARM_HOME={run_home}".encode()
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def wait_no_processes(run_home: pathlib.Path, timeout: float = 15.0) -> list[str]:
    deadline = time.monotonic() + timeout
    left = agent_processes(run_home)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = agent_processes(run_home)
    return left


def run_plan(
    repo: pathlib.Path, server: libtmux.Server, agent: Agent, *extra: str
) -> tuple[dict[str, t.Any], float]:
    plan = write_plan(repo)
    started = time.monotonic()
    result = swarm_run(
        repo,
        plan,
        server,
        "--agent",
        agent.name,
        "--foreground",
        "--timeout",
        f"{RUN_TIMEOUT}s",
        "--stall-after",
        "120s",
        *extra,
    )
    took = time.monotonic() - started
    doc = state_doc(repo)
    if result.exit_code != 0:
        report = f"{result.output}\n{_debug(repo, server)}"
        (repo.parent / "debug.txt").write_text(report)
        raise AssertionError(report)
    return doc, took


def _debug(repo: pathlib.Path, server: libtmux.Server) -> str:
    """What to look at when a run failed: the events' reasons and every pane's text."""
    out = []
    for ev in events(repo):
        if ev.data.get("reason") or ev.kind in ("task_nudged",):
            out.append(f"{ev.kind} {ev.task_id}: {ev.data.get('reason') or ev.data}")
    mail = repo / ".agents" / "swarm" / "mail" / "human"
    for message in sorted(mail.glob("*/*")):
        out.append(f"--- mail {message.name}\n{message.read_text()[:3000]}")
    for session in server.sessions:
        for pane in session.panes:
            out.append(f"--- {session.name}\n" + "\n".join(pane.capture_pane()))
    return "\n".join(out)


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("name", AGENTS)
def test_three_tasks_merge_unattended(
    name: str,
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = make_agent(name, server=server, model=fake_model, monkeypatch=monkeypatch)
    configure(git_repo, trust_worktrees=True)
    doc, took = run_plan(git_repo, server, agent)
    assert doc["status"] == "done", _debug(git_repo, server)
    assert {tid: rec["state"] for tid, rec in doc["tasks"].items()} == {
        "T1": "merged",
        "T2": "merged",
        "T3": "merged",
    }
    integration = "swarm/r1/integration"
    for n in (1, 2, 3):
        content = git(git_repo, "show", f"{integration}:src/t{n}.txt")
        assert f"T{n}" in content  # each worker did its own task
        assert git(git_repo, "ls-tree", "-r", "--name-only", integration).count(".swarm/") == 0
    evs = events(git_repo)
    offered = sorted(ev.task_id or "" for ev in evs if ev.kind == "task_offered")
    assert offered == ["T1", "T2", "T3"]
    assert not [ev for ev in evs if ev.kind == "mail_ignored"], "a report from the wrong worker"
    assert fake_model.tasks_seen() == {"T1", "T2", "T3"}
    home = git_repo / ".agents" / "swarm"
    assert wait_no_processes(home) == []
    print(f"{name}: 3/3 merged in {took:.0f}s")
