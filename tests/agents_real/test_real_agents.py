"""Conformance: each built-in preset runs the REAL agent CLI, unattended, against the fake model.

Every test runs ``swarm run --agent NAME`` (the mayor in this process, the workers in the test's
private tmux server) on a fresh repository and checks what a user would: the run merged, the
reports came from the right workers, and no agent process outlived the run.
"""

from __future__ import annotations

import json
import os
import pathlib
import time
import tomllib
import typing as t

import libtmux
import pytest
import yaml

from tests.agents_real.conftest import Agent, make_agent
from tests.agents_real.fakemodel import LAZY, NUDGED, FakeModel
from tests.agents_real.fakemodel import _texts as fm_texts
from tests.conftest import git
from tests.runner.runs import events, state_doc, swarm, swarm_run

AGENTS: t.Final = ("claude", "codex", "gemini", "aider")
RUN_TIMEOUT: t.Final = int(os.environ.get("SWARM_REAL_TIMEOUT", "240"))


def write_plan(
    repo: pathlib.Path, count: int = 3, first: str = "", *, lazy: bool = False
) -> pathlib.Path:
    extra = f" fake-model-first: `{first}`" if first else ""
    extra += f" {LAZY}" if lazy else ""
    tasks = [
        {
            "id": f"T{n}",
            "subject": f"Add file {n}",
            "description": f"Create src/t{n}.txt with one line of text.{extra}",
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


def trusted_folders(home: pathlib.Path) -> set[str]:
    """The folders the CLIs' own config files in ``home`` say are trusted."""

    def read(path: pathlib.Path, parse: t.Callable[[str], t.Any]) -> dict[str, t.Any]:
        try:
            doc = parse(path.read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    claude = read(home / ".claude.json", json.loads).get("projects") or {}
    codex = read(home / ".codex" / "config.toml", tomllib.loads).get("projects") or {}
    gemini = read(home / ".gemini" / "trustedFolders.json", json.loads)
    return (
        {k for k, v in claude.items() if isinstance(v, dict) and v.get("hasTrustDialogAccepted")}
        | {k for k, v in codex.items() if isinstance(v, dict) and v.get("trust_level") == "trusted"}
        | {k for k, v in gemini.items() if v != "DO_NOT_TRUST"}
    )


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
    repo: pathlib.Path,
    server: libtmux.Server,
    agent: Agent | None,
    *extra: str,
    plan: pathlib.Path | None = None,
    timeout: float = RUN_TIMEOUT,
    exit_code: int = 0,
) -> tuple[dict[str, t.Any], float]:
    plan = plan or write_plan(repo)
    started = time.monotonic()
    result = swarm_run(
        repo,
        plan,
        server,
        *(("--agent", agent.name) if agent else ()),
        "--foreground",
        "--timeout",
        f"{timeout:.0f}s",
        "--stall-after",
        "120s",
        *extra,
    )
    took = time.monotonic() - started
    doc = state_doc(repo)
    if result.exit_code != exit_code:
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
    # Claude Code rewrites ~/.claude.json as it exits, so the run's own forgetting can be
    # undone by a CLI still shutting down; `swarm clean`, after the agents are gone, is final
    cleaned = swarm("clean", "r1", "--repo", str(git_repo))
    assert cleaned.exit_code == 0, cleaned.output
    worktrees = {rec["worktree"] for rec in doc["tasks"].values()}
    assert not worktrees & trusted_folders(agent.home), "trust recorded for a worktree outlived it"
    print(f"{name}: 3/3 merged in {took:.0f}s")


def reasons(repo: pathlib.Path, kind: str) -> dict[str, str]:
    return {ev.task_id or "": str(ev.data.get("reason")) for ev in events(repo) if ev.kind == kind}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", ("claude", "codex", "gemini"))
def test_untrusted_repository_is_refused_up_front(
    name: str,
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without consent to record trust, a repository the CLI does not trust fails at once with
    the fix, before any agent starts (it would only sit at the trust dialog)."""
    agent = make_agent(name, server=server, model=fake_model, monkeypatch=monkeypatch)
    _, took = run_plan(git_repo, server, agent, exit_code=1, timeout=60)
    failed = reasons(git_repo, "task_failed")
    assert sorted(failed) == ["T1", "T2", "T3"], failed
    for reason in failed.values():
        assert "folder-trust dialog" in reason or "trust" in reason
        assert "trust_worktrees = true" in reason
    assert not fake_model.requests  # no agent was started
    assert took < 30
    assert not server.sessions or all(
        not s.name or not s.name.startswith("swarm-r1-T") for s in server.sessions
    )


@pytest.mark.timeout(120)
def test_cli_that_exits_at_once_is_reported_not_looped(
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`codex --full-auto` (the old README's line) exits at once: started twice at most, and the
    reason carries Codex's own words."""
    make_agent("codex", server=server, model=fake_model, monkeypatch=monkeypatch)
    plan = write_plan(git_repo, count=1)
    _, took = run_plan(
        git_repo,
        server,
        None,
        "--agent-cmd",
        "codex --full-auto {prompt}",
        plan=plan,
        exit_code=1,
        timeout=90,
    )
    dispatched = [ev for ev in events(git_repo) if ev.kind == "task_dispatched"]
    assert len(dispatched) == 2, [ev.data for ev in dispatched]
    reason = reasons(git_repo, "task_failed")["T1"]
    assert "exited at once the same way twice" in reason
    assert "--full-auto" in reason  # codex's own message: unexpected argument '--full-auto'
    assert took < 60


@pytest.mark.timeout(150)
def test_permission_prompt_is_reported_within_seconds(
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claude at the default level asks before writing outside the worktree: the mayor sees
    the prompt on the screen and asks the human, with the pane's text, well within 30 s."""
    agent = make_agent("claude", server=server, model=fake_model, monkeypatch=monkeypatch)
    configure(git_repo, trust_worktrees=True)
    plan = write_plan(git_repo, count=1, first="touch ../outside-the-worktree.txt")
    run_plan(git_repo, server, agent, plan=plan, exit_code=4, timeout=45)
    evs = events(git_repo)
    dispatched = next(ev for ev in evs if ev.kind == "task_dispatched")
    nudged = [ev for ev in evs if ev.kind == "task_nudged" and ev.data.get("pane")]
    assert nudged, _debug(git_repo, server)
    assert nudged[0].data["pane"] == "permission"
    assert (nudged[0].ts - dispatched.ts).total_seconds() < 30
    human = git_repo / ".agents" / "swarm" / "mail" / "human"
    asked = [m.read_text() for m in human.glob("*/*")]
    assert any("outside-the-worktree" in text and "HELP_REQUEST" in text for text in asked)
    assert not (git_repo.parent / "wt" / "r1" / "outside-the-worktree.txt").exists()
    assert wait_no_processes(git_repo / ".agents" / "swarm") == []


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("name", ("claude", "codex", "gemini"))
def test_full_permission_level(
    name: str,
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--agent-permissions full`` runs the CLI's own skip-every-prompt mode; Claude Code
    refuses that as root, so swarm refuses it up front there. (The flags, not the config file:
    the other tests use ``.swarm.toml``.)"""
    agent = make_agent(name, server=server, model=fake_model, monkeypatch=monkeypatch)
    plan = write_plan(git_repo, count=1)
    refused = name == "claude" and os.geteuid() == 0
    flags = ("--agent-permissions", "full", "--trust-worktrees")
    doc, _ = run_plan(git_repo, server, agent, *flags, plan=plan, exit_code=1 if refused else 0)
    assert doc["agent_permissions"] == "full" and doc["trust_worktrees"] is True
    if refused:
        assert "refuses to run as root" in reasons(git_repo, "task_failed")["T1"]
        assert not fake_model.requests
    else:
        assert doc["tasks"]["T1"]["state"] == "merged"
    assert wait_no_processes(git_repo / ".agents" / "swarm") == []


@pytest.mark.timeout(RUN_TIMEOUT + 60)
def test_an_idle_agent_gets_the_nudge_typed_into_its_prompt(
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Claude Code ends its turn without reporting: its Stop hook says it is idle, the run's
    state shows it, the mayor types the nudge into the real CLI's prompt (not only mail, which
    a TUI never reads), and the model, seeing the nudge, offers: merged."""
    agent = make_agent("claude", server=server, model=fake_model, monkeypatch=monkeypatch)
    configure(git_repo, trust_worktrees=True)
    plan = write_plan(git_repo, count=1, lazy=True)
    doc, _ = run_plan(git_repo, server, agent, "--stall-after", "40s", plan=plan)
    assert doc["tasks"]["T1"]["state"] == "merged", _debug(git_repo, server)
    evs = events(git_repo)
    shown = [ev.data["pane"] for ev in evs if ev.kind == "task_pane"]
    assert "working" in shown and "idle" in shown, shown
    nudged = [ev for ev in evs if ev.kind == "task_nudged" and ev.data.get("pane") == "idle"]
    assert len(nudged) == 1, [ev.data for ev in evs if ev.kind == "task_nudged"]
    prompts = ["\n".join(fm_texts(r.body)) for r in fake_model.requests]
    assert any(NUDGED in text for text in prompts), "the nudge never reached the model"
    assert wait_no_processes(git_repo / ".agents" / "swarm") == []


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("name", AGENTS)
def test_clone_isolation_merges_unattended(
    name: str,
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--isolation clone``: each real CLI works in its own clone (its own refs and hooks),
    and the mayor fetches the offered commits (checked by sha): 3/3 merged."""
    agent = make_agent(name, server=server, model=fake_model, monkeypatch=monkeypatch)
    merges_in_isolation(git_repo, server, agent, fake_model, "clone")


def merges_in_isolation(
    repo: pathlib.Path, server: libtmux.Server, agent: Agent, model: FakeModel, isolation: str
) -> None:
    """Three tasks, each by its own worker in ``--isolation ISOLATION``, all merged; no mail
    ignored or quarantined, no agent process left."""
    configure(repo, trust_worktrees=True)
    doc, _ = run_plan(repo, server, agent, "--isolation", isolation)
    assert {rec["state"] for rec in doc["tasks"].values()} == {"merged"}, _debug(repo, server)
    assert not [ev for ev in events(repo) if ev.kind == "mail_ignored"]
    assert model.tasks_seen() == {"T1", "T2", "T3"}
    mail = repo / ".agents" / "swarm" / "mail"
    assert not [p for t in ("T1", "T2", "T3") for p in (mail / t / "quarantine").glob("*")]
    assert wait_no_processes(repo / ".agents" / "swarm") == []


@pytest.mark.timeout(RUN_TIMEOUT + 60)
@pytest.mark.parametrize("name", AGENTS)
def test_sandbox_isolation_merges_unattended(
    name: str,
    git_repo: pathlib.Path,
    server: libtmux.Server,
    fake_model: FakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--isolation sandbox``: each real CLI works in its clone inside bubblewrap (Codex's own
    sandbox nested in it), with a private copy of its home files, and reports through its
    outbox: 3/3 merged, with nothing of its inbox quarantined (it holds no mayor key to read
    it with)."""
    agent = make_agent(name, server=server, model=fake_model, monkeypatch=monkeypatch)
    merges_in_isolation(git_repo, server, agent, fake_model, "sandbox")
