"""runner.agents adapters, worker preparation, pane watching and the aider wrapper (no real CLI:
tests/agents_real/ runs those)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import typing as t

import pytest

from protocol.plan import Task
from runner import sessions as s
from runner.agents import adapter as a
from runner.agents import claude, codex, gemini, health, panes, presets, worker
from runner.agents.registry import ADAPTERS, adapter_for
from tests.conftest import git

SWARM = pathlib.Path("/home/u/.swarm/bin/swarm")


def ctx(tmp_path: pathlib.Path, **kw: t.Any) -> a.WorkerContext:
    values: dict[str, t.Any] = {
        "task": Task(id="T1", subject="one", files=("src/a.txt",)),
        "repo": tmp_path / "repo",
        "worktree": tmp_path / "wt" / "r1" / "T1",
        "brief": tmp_path / "wt" / "r1" / "T1" / a.BRIEF_NAME,
        "swarm": SWARM,
        "swarm_home": tmp_path / "repo" / ".agents" / "swarm",
        "home": tmp_path / "home",
        "git_common_dir": tmp_path / "repo" / ".git",
    }
    values.update(kw)
    (tmp_path / "wt" / "r1" / "T1").mkdir(parents=True, exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    return a.WorkerContext(**values)


@pytest.mark.parametrize("name", ["claude", "codex", "gemini", "aider"])
def test_adapter_argv_is_the_preset(name: str, tmp_path: pathlib.Path) -> None:
    """The static preset (docs, doctor) and the adapter (what runs) say the same."""
    c = ctx(tmp_path)
    adapter = ADAPTERS[name]
    if name == "aider":
        adapter = type(adapter)(**{**adapter.__dict__, "python": "/py"})
    built = presets.build_argv(
        presets.preset(name),
        brief=c.brief,
        task="T1",
        worktree=c.worktree,
        python="/py",
        swarm=str(SWARM),
    )
    argv = adapter.argv(c)
    if name == "claude":  # the adapter adds its hooks: --settings JSON
        at = argv.index("--settings")
        assert json.loads(argv[at + 1])["hooks"]
        argv = argv[:at] + argv[at + 2 :]
    if name == "aider":
        assert argv == (*built, "src/a.txt")  # the manifest's files go into aider's chat
    else:
        assert argv == built
    assert adapter.argv(c) == adapter.argv(c)
    resumed = adapter.argv(c._replace(resume=True))
    assert resumed != adapter.argv(c)


def test_prompt_names_the_brief_and_swarm_by_absolute_path(tmp_path: pathlib.Path) -> None:
    c = ctx(tmp_path)
    assert str(c.brief) in c.prompt and f"`{SWARM} worker`" in c.prompt
    assert c.prompt == presets.PROMPT.format(brief=c.brief, swarm=SWARM)


def test_validation_commands_are_allowed_without_asking(tmp_path: pathlib.Path) -> None:
    task = Task.model_validate(
        {"id": "T1", "subject": "x", "validation": {"tests": "pytest -q tests/"}}
    )
    c = ctx(tmp_path, task=task)
    assert "Bash(pytest -q tests/)" in claude.ADAPTER.argv(c)
    assert "run_shell_command(pytest -q)" in gemini.ADAPTER.argv(c)


class LevelCase(t.NamedTuple):
    test_id: str
    name: str
    flag: str


LEVELS = [
    LevelCase("claude", "claude", "--dangerously-skip-permissions"),
    LevelCase("codex", "codex", "--dangerously-bypass-approvals-and-sandbox"),
    LevelCase("gemini", "gemini", "--yolo"),
]


@pytest.mark.parametrize("case", LEVELS, ids=[c.test_id for c in LEVELS])
def test_full_level_uses_the_cli_own_flag(case: LevelCase, tmp_path: pathlib.Path) -> None:
    adapter = ADAPTERS[case.name]
    assert case.flag not in adapter.argv(ctx(tmp_path))
    assert case.flag in adapter.argv(ctx(tmp_path, permissions="full"))


def test_codex_never_shares_a_daemon_nor_a_login_shell(tmp_path: pathlib.Path) -> None:
    for level in a.PERMISSION_LEVELS:
        argv = codex.ADAPTER.argv(ctx(tmp_path, permissions=level))
        assert "--no-daemon" in argv and "allow_login_shell=false" in argv


def test_claude_full_level_refused_as_root(tmp_path: pathlib.Path) -> None:
    c = ctx(tmp_path, permissions="full", trust_worktrees=True)
    with pytest.raises(a.AgentSetupError, match="refuses to run as root"):
        claude.ADAPTER.check_startable(c, is_root=True)
    claude.ADAPTER.check_startable(c, is_root=False)


@pytest.mark.parametrize("name", ["claude", "codex", "gemini"])
def test_untrusted_without_consent_is_refused_with_the_fix(
    name: str, tmp_path: pathlib.Path
) -> None:
    c = ctx(tmp_path)
    adapter = ADAPTERS[name]
    assert adapter.trusted(c) is False
    with pytest.raises(a.AgentSetupError, match="trust_worktrees = true"):
        adapter.check_startable(c, is_root=False)


def test_claude_trust_recorded_for_the_worktree_only(tmp_path: pathlib.Path) -> None:
    c = ctx(tmp_path, trust_worktrees=True)
    (c.home / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}))
    claude.ADAPTER.prepare(c)
    doc = json.loads((c.home / ".claude.json").read_text())
    assert doc["hasCompletedOnboarding"] is True
    assert list(doc["projects"]) == [str(c.worktree)]
    assert claude.ADAPTER.trusted(c) is True
    other = c._replace(worktree=tmp_path / "elsewhere", trust_worktrees=False)
    assert claude.ADAPTER.trusted(other) is False


def test_claude_trusted_main_repository_covers_its_worktrees(tmp_path: pathlib.Path) -> None:
    c = ctx(tmp_path)
    projects = {str(c.repo): {"hasTrustDialogAccepted": True}}
    (c.home / ".claude.json").write_text(json.dumps({"projects": projects}))
    assert claude.ADAPTER.trusted(c) is True


def test_codex_trust_and_rules(tmp_path: pathlib.Path) -> None:
    c = ctx(tmp_path, trust_worktrees=True)
    (c.home / ".codex").mkdir()
    (c.home / ".codex" / "config.toml").write_text('model = "m"\n')
    codex.ADAPTER.prepare(c)
    assert codex.ADAPTER.trusted(c) is True
    assert 'model = "m"' in (c.home / ".codex" / "config.toml").read_text()
    rules = (c.worktree / codex.RULES).read_text()
    assert f'["{SWARM}", "worker"]' in rules and '["git", "commit"]' in rules
    codex.ADAPTER.prepare(c)  # once only
    assert (c.home / ".codex" / "config.toml").read_text().count("[projects.") == 1


def test_recorded_trust_is_forgotten_and_nothing_else(tmp_path: pathlib.Path) -> None:
    """After a run, the trust swarm recorded for its worktrees goes; the user's own entries
    (their repository, other folders, every other setting) stay byte for byte."""
    c = ctx(tmp_path, trust_worktrees=True)
    mine = {"/home/u/src": {"hasTrustDialogAccepted": True, "history": ["x"]}}
    (c.home / ".claude.json").write_text(json.dumps({"theme": "dark", "projects": mine}))
    (c.home / ".codex").mkdir()
    user_toml = 'model = "m"\n\n[projects."/home/u/src"]\ntrust_level = "trusted"\n'
    (c.home / ".codex" / "config.toml").write_text(user_toml)
    claude.ADAPTER.prepare(c)
    codex.ADAPTER.prepare(c)
    other = c._replace(worktree=tmp_path / "wt" / "r1" / "T2")
    other.worktree.mkdir(parents=True)
    codex.ADAPTER.prepare(other)
    codex_toml = (c.home / ".codex" / "config.toml").read_text()
    assert codex_toml.count("[projects.") == 3
    gone = worker.forget_trust([c.worktree, other.worktree, None], home=c.home)
    assert gone == 3  # claude's one, codex's two
    doc = json.loads((c.home / ".claude.json").read_text())
    assert doc == {"theme": "dark", "projects": mine}
    assert (c.home / ".codex" / "config.toml").read_text() == user_toml
    assert worker.forget_trust([c.worktree], home=c.home) == 0  # twice: nothing to do


def test_codex_with_its_home_in_the_temp_folder_gets_a_temp_folder_of_its_own(
    tmp_path: pathlib.Path,
) -> None:
    """Else Codex refuses to create its sandbox helper and, with the system's bubblewrap,
    every sandboxed command fails (tests/agents_real runs it for real with HOME in /tmp)."""
    c = ctx(tmp_path)  # tmp_path is in the temp folder
    env = codex.ADAPTER.prepare(c)
    assert env["TMPDIR"] == str(c.swarm_home / "tmp" / "codex")
    assert pathlib.Path(env["TMPDIR"]).is_dir()
    elsewhere = c._replace(home=pathlib.Path("/nonexistent-home/u"))
    assert "TMPDIR" not in codex.ADAPTER.prepare(elsewhere)


def test_gemini_trust_levels(tmp_path: pathlib.Path) -> None:
    c = ctx(tmp_path)
    folders = c.home / ".gemini" / "trustedFolders.json"
    folders.parent.mkdir()
    folders.write_text(json.dumps({str(tmp_path / "wt"): "TRUST_FOLDER"}))
    assert gemini.ADAPTER.trusted(c) is True
    folders.write_text(json.dumps({str(tmp_path / "wt" / "x"): "TRUST_PARENT"}))
    assert gemini.ADAPTER.trusted(c) is True
    folders.write_text(json.dumps({str(tmp_path / "other"): "TRUST_FOLDER"}))
    assert gemini.ADAPTER.trusted(c) is False
    assert "--skip-trust" in gemini.ADAPTER.argv(c._replace(trust_worktrees=True))
    assert "--skip-trust" not in gemini.ADAPTER.argv(c)


class ScreenCase(t.NamedTuple):
    test_id: str
    name: str
    screen: str
    state: a.PaneState


SCREENS = [
    ScreenCase(
        "claude-trust",
        "claude",
        " Quick safety check: Is this a project you created or one you trust?\n"
        " ❯ No, exit\n   Yes, I trust this folder\n Enter to confirm · Esc to cancel",
        "dialog",
    ),
    ScreenCase(
        "claude-permission",
        "claude",
        " Bash command\n   touch ../x\n Do you want to proceed?\n ❯ 1. Yes\n   2. No",
        "permission",
    ),
    ScreenCase("claude-working", "claude", "✻ Thinking… (esc to interrupt)", "working"),
    ScreenCase("claude-idle", "claude", "● Done.\n────\n❯ \n────\n  ⏵⏵ accept edits on", "idle"),
    ScreenCase(
        "codex-trust",
        "codex",
        "  Trust this folder? Codex can read, edit, and run files here\n› 1. Trust and continue",
        "dialog",
    ),
    ScreenCase("codex-working", "codex", "• Working (3s • esc to interrupt)", "working"),
    ScreenCase("codex-idle", "codex", "• Done.\n› Ask Codex to do anything\n  fake-model", "idle"),
    ScreenCase(
        "gemini-trust",
        "gemini",
        " │ Do you trust the files in this folder?\n │ ● 1. Trust folder (T01)",
        "dialog",
    ),
    ScreenCase(
        "gemini-permission",
        "gemini",
        "│ Apply this change?\n│ ● 1. Allow once\n│   2. Modify with external editor",
        "permission",
    ),
    ScreenCase("gemini-idle", "gemini", " >   Type your message or @path/to/file", "idle"),
]


@pytest.mark.parametrize("case", SCREENS, ids=[c.test_id for c in SCREENS])
def test_classify(case: ScreenCase) -> None:
    assert ADAPTERS[case.name].classify(case.screen).state == case.state


def test_pane_watch_reports_a_dialog_once_within_seconds() -> None:
    watch = panes.PaneWatch(block_after=4.0, nudge_after=30.0)
    screen = SCREENS[0].screen
    assert watch.observe("T1", claude.ADAPTER, screen, 100.0) is None
    report = watch.observe("T1", claude.ADAPTER, screen, 104.5)
    assert report is not None and report.kind == "blocked" and report.state == "dialog"
    assert "Yes, I trust this folder" in report.screen
    assert watch.observe("T1", claude.ADAPTER, screen, 110.0) is None  # once per screen


def test_pane_watch_nudges_an_idle_agent_then_asks() -> None:
    watch = panes.PaneWatch(block_after=4.0, nudge_after=30.0)
    idle = SCREENS[3].screen
    assert watch.observe("T1", claude.ADAPTER, idle, 0.0, swarm="/s/swarm") is None
    nudge = watch.observe("T1", claude.ADAPTER, idle, 31.0, swarm="/s/swarm")
    assert nudge is not None and nudge.kind == "nudge" and "/s/swarm worker offer" in nudge.text
    assert watch.observe("T1", claude.ADAPTER, idle, 40.0) is None
    again = watch.observe("T1", claude.ADAPTER, idle, 62.0)
    assert again is not None and again.kind == "blocked" and again.state == "idle"


def test_pane_watch_content_not_timers() -> None:
    watch = panes.PaneWatch()
    watch.observe("T1", codex.ADAPTER, "• Working (3s • esc to interrupt)", 0.0)
    watch.observe("T1", codex.ADAPTER, "• Working (9s • esc to interrupt)", 50.0)
    assert watch.idle_for("T1", 50.0) == 50.0  # a ticking timer is no progress
    watch.observe("T1", codex.ADAPTER, "• Ran git add\n• Working (9s • esc to interrupt)", 60.0)
    assert watch.idle_for("T1", 60.0) == 0.0
    assert watch.idle_for("T2", 60.0) is None


def test_pane_watch_a_stop_hook_makes_an_unknown_screen_idle() -> None:
    """Claude's Stop hook fired: idle however the screen looks, so the nudge comes."""
    watch = panes.PaneWatch(block_after=4.0, nudge_after=10.0)
    screen = "some output the fingerprints do not know"
    stop = a.Hint(a.Verdict("idle", "its turn ended"), 0.5)
    assert watch.observe("T1", claude.ADAPTER, screen, 0.0, hint=stop) is None
    assert watch.states() == {"T1": "idle"}
    nudge = watch.observe("T1", claude.ADAPTER, screen, 11.0, hint=stop)
    assert nudge is not None and nudge.kind == "nudge"


def test_pane_watch_a_prompt_on_screen_beats_an_older_working_hook() -> None:
    """PreToolUse said working; then a permission prompt is drawn: the screen is the proof."""
    watch = panes.PaneWatch(block_after=4.0)
    prompt = next(c.screen for c in SCREENS if c.test_id == "claude-permission")
    working = a.Hint(a.Verdict("working", "working"), 1.0)
    watch.observe("T1", claude.ADAPTER, prompt, 1.5, hint=working)
    report = watch.observe("T1", claude.ADAPTER, prompt, 6.0, hint=working)
    assert report is not None and report.state == "permission"


def test_pane_watch_the_screen_wins_over_a_stale_hook() -> None:
    watch = panes.PaneWatch()
    stale = a.Hint(a.Verdict("idle", "its turn ended"), 0.0)
    watch.observe("T1", codex.ADAPTER, "• Ran git add\n• Working (9s • esc to interrupt)", 10.0)
    watch.observe(
        "T1", codex.ADAPTER, "• Ran git commit\n• Working (1s • esc to interrupt)", 20.0, hint=stale
    )
    assert watch.states() == {"T1": "working"}


@pytest.mark.parametrize(
    ("doc", "state"),
    [
        ({"hook_event_name": "Notification", "notification_type": "permission_prompt",
          "message": "Claude needs your permission to use Bash"}, "permission"),
        ({"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"},
         "permission"),
        ({"hook_event_name": "Notification", "notification_type": "idle_prompt",
          "message": "Claude is waiting for your input"}, "idle"),
        ({"hook_event_name": "Stop", "stop_hook_active": False}, "idle"),
        ({"hook_event_name": "PreToolUse", "tool_name": "Bash"}, "working"),
        ({"hook_event_name": "SessionStart"}, None),
        (["not", "an", "object"], None),
    ],
)  # fmt: skip
def test_claude_hook_events(doc: object, state: str | None) -> None:
    verdict = claude.hook_verdict(doc)
    assert (verdict.state if verdict else None) == state


def test_claude_hooks_write_the_file_the_mayor_reads(tmp_path: pathlib.Path) -> None:
    """The hook command in --settings, run by a real shell as Claude Code runs it, leaves the
    event's JSON where hook_hint reads it; garbage a worker writes there is ignored."""
    worktree = tmp_path / "wt"
    (worktree / ".swarm").mkdir(parents=True)
    settings = json.loads(claude.hook_settings(worktree))
    assert set(settings["hooks"]) == set(claude.HOOK_EVENTS)
    command = settings["hooks"]["Notification"][0]["hooks"][0]["command"]
    event = {"hook_event_name": "Notification", "notification_type": "permission_prompt",
             "message": "Claude needs your permission to use Bash"}  # fmt: skip
    subprocess.run(["sh", "-c", command], input=json.dumps(event), text=True, check=True)
    hint = claude.ADAPTER.hook_hint(worktree)
    assert hint is not None and hint.verdict.state == "permission"
    assert "permission to use Bash" in hint.verdict.what
    assert list((worktree / ".swarm").iterdir()) == [worktree / a.HOOK_NAME]  # no temp left
    (worktree / a.HOOK_NAME).write_bytes(b"\xff{garbage")
    assert claude.ADAPTER.hook_hint(worktree) is None
    assert claude.ADAPTER.hook_hint(tmp_path / "nowhere") is None


def test_exit_reason_twice_the_same_quick_exit_is_fatal() -> None:
    tail = "error: unexpected argument '--full-auto' found\nPane is dead (status 2, 21:14:51)"
    first = worker.exit_reason(status=2, elapsed=0.4, tail=tail, previous=None)
    assert not first.fatal and "--full-auto" in first.reason and "Pane is dead" not in first.reason
    tail2 = tail.replace("21:14:51", "21:14:53")
    second = worker.exit_reason(status=2, elapsed=0.5, tail=tail2, previous=first.signature)
    assert second.fatal and "exited at once the same way twice" in second.reason
    slow = worker.exit_reason(status=2, elapsed=300, tail=tail, previous=first.signature)
    assert not slow.fatal
    scripted = worker.exit_reason(
        status=2, elapsed=0.5, tail=tail2, previous=first.signature, preset="scripted"
    )
    assert not scripted.fatal  # its crashes are on purpose: the retry budget decides


def test_log_tail_strips_escapes(tmp_path: pathlib.Path) -> None:
    log = tmp_path / "pane.log"
    log.write_bytes(
        b"\x1b[1m\x1b[31merror:\x1b[0m bad '\x1b[33m--x\x1b[0m'\r\n\r\n\x1b]0;t\x07ok\r\n"
    )
    assert worker.log_tail(log) == "error: bad '--x'\nok"
    assert worker.log_tail(tmp_path / "missing") == ""


def test_prepare_worker(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    worktree = tmp_path / "wt" / "T1"
    git(git_repo, "worktree", "add", "-q", "-b", "w", str(worktree))
    git(git_repo, "config", "user.name", "Repo Person")
    brief = tmp_path / "runs" / "brief.md"
    brief.parent.mkdir()
    brief.write_text("# Task T1: one\n")
    home = git_repo / ".agents" / "swarm"
    python = "/opt/venv/bin/python"
    prepared = worker.prepare_worker(
        preset=presets.preset("codex"),
        task=Task(id="T1", subject="one"),
        repo=git_repo,
        worktree=worktree,
        brief=brief,
        swarm_home=home,
        python=python,
        options=worker.AgentOptions(trust_worktrees=True),
        home=tmp_path,
    )
    assert prepared.brief == worktree / ".swarm" / "brief.md"
    assert prepared.brief.read_text() == "# Task T1: one\n"
    assert prepared.env["SWARM_BRIEF"] == str(prepared.brief)
    assert git(worktree, "status", "--porcelain") == ""  # brief and rules are excluded
    shim = home / "bin"
    assert sorted(p.name for p in shim.iterdir()) == ["swarm"]
    assert f"exec {python} -m runner" in (shim / "swarm").read_text()
    path = prepared.env["PATH"].split(os.pathsep)
    assert path[0] == str(shim) and "/opt/venv/bin" not in path
    assert prepared.env["GIT_AUTHOR_NAME"] in ("Repo Person", os.environ["GIT_AUTHOR_NAME"])
    assert str(shim / "swarm") in prepared.argv[-1]  # the prompt names swarm by path


def test_prepare_worker_keeps_scripted_and_commands(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    brief = tmp_path / "brief.md"
    brief.write_text("x")
    worktree = tmp_path / "wt"
    git(git_repo, "worktree", "add", "-q", "-b", "w", str(worktree))
    for spec in (presets.preset("scripted"), presets.command_preset("my-agent {brief}")):
        prepared = worker.prepare_worker(
            preset=spec,
            task=Task(id="T1", subject="one"),
            repo=git_repo,
            worktree=worktree,
            brief=brief,
            swarm_home=tmp_path / "home",
            python="/py",
        )
        assert prepared.argv[-1] in ("runner.agents.scripted", str(prepared.brief))


def test_options_from_config() -> None:
    class Cfg(t.NamedTuple):
        agent_permissions: str | None = None
        trust_worktrees: bool | None = None

    assert worker.options_from(Cfg()) == worker.AgentOptions("worktree", False)
    assert worker.options_from(Cfg("full", True)) == worker.AgentOptions("full", True)
    with pytest.raises(ValueError, match="agent_permissions"):
        worker.options_from(Cfg("all"))


FAKE_AIDER = """#!/bin/sh
echo "aider says hello"
if [ "$1" = "--commit" ]; then
  echo x > made.txt && git add made.txt && git commit -qm "aider made it" || exit 3
  exit 0
fi
exit "${1:-0}"
"""
FAKE_SWARM = """#!/bin/sh
printf '%s\\n' "$*" >> "$RECORD"
"""


@pytest.mark.parametrize(
    ("args", "status", "report"),
    [
        (["--commit"], 0, "offer aider: aider made it --commit "),
        (["0"], 1, "fail aider exited 0 without committing anything"),
        (["5"], 5, "fail aider exited with status 5"),
    ],
)
def test_aider_wrapper_reports_for_aider(
    git_repo: pathlib.Path, tmp_path: pathlib.Path, args: list[str], status: int, report: str
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("aider", FAKE_AIDER), ("swarm", FAKE_SWARM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    record = tmp_path / "record"
    env = {
        **os.environ,
        "RECORD": str(record),
        "SWARM_BASE": git(git_repo, "rev-parse", "HEAD"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "runner.agents.aider_wrapper",
            "--swarm",
            str(bin_dir / "swarm"),
            "--",
            str(bin_dir / "aider"),
            *args,
        ],
        cwd=git_repo,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == status, done.stderr
    calls = record.read_text().splitlines()
    assert calls[0] == "worker accepted"
    assert calls[1].startswith(f"worker {report}")
    if report.startswith("offer"):  # the sha itself: a clone's offer is checked by sha
        assert calls[1].split()[-1] == git(git_repo, "rev-parse", "HEAD")
    if report.startswith("fail"):
        assert "aider says hello" in record.read_text()  # its last lines


def test_health_reports_a_missing_cli(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (checks,) = [health.check_agent("claude", repo=tmp_path)]
    assert [(c.check, c.level) for c in checks] == [("installed", "fail")]
    assert "@anthropic-ai/claude-code@2.1.332" in checks[0].fix
    assert health.check_agent("scripted", repo=tmp_path) == []


def test_health_with_a_fake_cli(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "codex"
    fake.write_text('#!/bin/sh\necho "codex-cli 0.170.0 --no-daemon --approve-for-me --config"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    checks = {c.check: c for c in health.check_agent("codex", repo=tmp_path, home=tmp_path)}
    assert checks["version"].level == "warn" and "0.171.0" in checks["version"].detail
    assert checks["flags"].level == "ok"
    assert checks["trust"].level == "warn" and "trust_worktrees" in checks["trust"].fix
    assert adapter_for("codex") is codex.ADAPTER


def test_send_text_types_into_the_pane(tmux: s.TmuxBackend, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "typed.txt"
    tmux.start(
        s.SessionSpec(
            name="swarm-r1-T1",
            argv=("sh", "-c", f'read line; printf "%s" "$line" > {out}; echo got it; sleep 30'),
            cwd=tmp_path,
            env={},
            log_path=tmp_path / "pane.log",
        )
    )
    # someone scrolled while attached: copy mode must not swallow the keys
    tmux.server.cmd("copy-mode", "-t", "=swarm-r1-T1:")
    text = 'You have not reported yet; run `/x/swarm worker offer "done"`. ' * 5
    assert tmux.send_text("swarm-r1-T1", text, chunk=40)
    deadline = time.monotonic() + 5
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert out.read_text() == " ".join(text.split())
    assert tmux.send_text("swarm-nope", "x") is False
