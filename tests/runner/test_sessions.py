"""runner.sessions: the tmux backend on a real private server (libtmux's ``server`` fixture) and
the plain-process backend, with real child processes."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import sys
import threading
import time
import typing as t

import libtmux
import pytest

from runner import sessions as s
from runner.errors import UsageError
from tests.runner.conftest import Backend

WAIT: t.Final = 10.0


def wait_until(predicate: t.Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(0.02)


def wait_exit(events: queue.Queue[str], name: str, timeout: float = WAIT) -> None:
    """Wait until the exit callback was called for ``name`` (other names are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no exit callback for {name} within {timeout}s")
        try:
            if events.get(timeout=remaining) == name:
                return
        except queue.Empty:
            continue


def log_text(path: pathlib.Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def make_spec(
    tmp_path: pathlib.Path, name: str, *argv: str, env: t.Mapping[str, str] | None = None
) -> s.SessionSpec:
    cwd = tmp_path / "wt"
    cwd.mkdir(exist_ok=True)
    return s.SessionSpec(
        name=name,
        argv=argv,
        cwd=cwd,
        env=dict(env or {}),
        log_path=tmp_path / "logs" / name / "pane.log",
    )


def callback_queue(backend: Backend) -> queue.Queue[str]:
    events: queue.Queue[str] = queue.Queue()
    backend.set_exit_callback(events.put)
    return events


class ExitCase(t.NamedTuple):
    test_id: str
    argv: tuple[str, ...]
    status: int


EXIT_CASES = [
    ExitCase("zero", ("sh", "-c", "exit 0"), 0),
    ExitCase("three", ("sh", "-c", "echo failing; exit 3"), 3),
    ExitCase("missing-binary", ("swarm-no-such-agent-binary", "--flag"), 127),
]


@pytest.mark.parametrize("case", EXIT_CASES, ids=[c.test_id for c in EXIT_CASES])
def test_exit_status_reported_by_callback(
    backend: Backend, tmp_path: pathlib.Path, case: ExitCase
) -> None:
    events = callback_queue(backend)
    spec = make_spec(tmp_path, "swarm-r1-t1", *case.argv)
    backend.start(spec, check_binary=False)
    wait_exit(events, "swarm-r1-t1")
    status = backend.status("swarm-r1-t1")
    assert status.exists
    assert not status.alive
    assert status.exit_status == case.status


def test_missing_binary_raises_at_start(backend: Backend, tmp_path: pathlib.Path) -> None:
    spec = make_spec(tmp_path, "swarm-r1-t1", "swarm-no-such-agent-binary")
    with pytest.raises(s.AgentNotFound, match="swarm-no-such-agent-binary") as info:
        backend.start(spec)
    assert info.value.returncode == 127
    assert backend.status("swarm-r1-t1") == s.MISSING
    assert backend.list_sessions("") == []


def test_fast_output_logged_from_first_byte(backend: Backend, tmp_path: pathlib.Path) -> None:
    events = callback_queue(backend)
    spec = make_spec(tmp_path, "swarm-r1-fast", "sh", "-c", "echo first-line; seq 1 3000")
    backend.start(spec)
    wait_exit(events, "swarm-r1-fast")
    wait_until(lambda: "\n3000" in log_text(spec.log_path))
    lines = log_text(spec.log_path).replace("\r", "").splitlines()
    assert lines[0] == "first-line"
    assert lines[1:3001] == [str(n) for n in range(1, 3001)]


WEIRD_ARGS: t.Final = (
    "it's",
    'say "hi"',
    "$(touch pwned)",
    "`touch pwned2`",
    "$HOME ${PATH}",
    "semi; colon && amp | pipe",
    "#{session_name} ##",
    "ünïcødé ✓ 漢字",
    "back\\slash",
    " leading and trailing ",
    "",
    "--",
    ";",
    "ends;",
    "back\\;",
    "\\",
)
"""Arguments ending in ``;`` would end a tmux command in the start command list if unescaped."""


def test_argv_passed_verbatim(backend: Backend, tmp_path: pathlib.Path) -> None:
    events = callback_queue(backend)
    out = tmp_path / "argv.json"
    code = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    spec = make_spec(tmp_path, "swarm-r1-argv", sys.executable, "-c", code, str(out), *WEIRD_ARGS)
    backend.start(spec)
    wait_exit(events, "swarm-r1-argv")
    assert backend.status("swarm-r1-argv").exit_status == 0
    assert json.loads(out.read_text()) == list(WEIRD_ARGS)
    assert not (spec.cwd / "pwned").exists()
    assert not (spec.cwd / "pwned2").exists()


def test_env_and_cwd(
    backend: Backend, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an inherited GIT_DIR would send git in the worktree to another repository
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    events = callback_queue(backend)
    out = tmp_path / "env.json"
    code = (
        "import json, os, sys; json.dump({'cwd': os.getcwd(), 'task': os.environ.get('SWARM_TASK'),"
        " 'quote': os.environ.get('SWARM_Q'), 'git_dir': os.environ.get('GIT_DIR'),"
        " 'semi': os.environ.get('SWARM_SEMI')}, open(sys.argv[1], 'w'))"
    )
    env = {"SWARM_TASK": "t1", "SWARM_Q": "a 'b' \"c\" $d", "SWARM_SEMI": "x;"}
    spec = make_spec(tmp_path, "swarm-r1-env", sys.executable, "-c", code, str(out), env=env)
    backend.start(spec)
    wait_exit(events, "swarm-r1-env")
    seen = json.loads(out.read_text())
    assert pathlib.Path(seen["cwd"]).resolve() == spec.cwd.resolve()
    assert seen["task"] == "t1"
    assert seen["quote"] == env["SWARM_Q"]
    assert seen["semi"] == "x;"
    assert seen["git_dir"] is None


def test_worker_path_finds_the_agent(backend: Backend, tmp_path: pathlib.Path) -> None:
    """The worker's PATH wins (tmux would otherwise give the pane its client's PATH)."""
    bindir = tmp_path / "only-here"
    bindir.mkdir()
    agent = bindir / "lonely-agent"
    out = tmp_path / "ran"
    agent.write_text(f"#!/bin/sh\necho ok > {out}\n")
    agent.chmod(0o755)
    events = callback_queue(backend)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    backend.start(make_spec(tmp_path, "swarm-r1-path", "lonely-agent", env=env))
    wait_exit(events, "swarm-r1-path")
    assert out.read_text() == "ok\n"
    assert backend.status("swarm-r1-path").exit_status == 0


def test_kill_is_idempotent(backend: Backend, tmp_path: pathlib.Path) -> None:
    spec = make_spec(tmp_path, "swarm-r1-sleep", "sleep", "1000")
    backend.start(spec)
    status = backend.status("swarm-r1-sleep")
    assert status.exists and status.alive and status.pid
    backend.kill("swarm-r1-sleep")
    assert backend.status("swarm-r1-sleep") == s.MISSING
    wait_until(lambda: not _pid_alive(status.pid))
    backend.kill("swarm-r1-sleep")
    backend.kill("swarm-never-started")


def _pid_alive(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    stat = pathlib.Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[-1][:1] != "Z"


def test_list_by_prefix(backend: Backend, tmp_path: pathlib.Path) -> None:
    for name in ("swarm-r1-a", "swarm-r1-b", "swarm-r2-a"):
        backend.start(make_spec(tmp_path, name, "sleep", "1000"))
    assert backend.list_sessions("swarm-r1-") == ["swarm-r1-a", "swarm-r1-b"]
    assert backend.list_sessions("swarm-") == ["swarm-r1-a", "swarm-r1-b", "swarm-r2-a"]
    assert backend.list_sessions("other-") == []


def test_statuses_by_prefix(backend: Backend, tmp_path: pathlib.Path) -> None:
    events = callback_queue(backend)
    backend.start(make_spec(tmp_path, "swarm-r1-live", "sleep", "1000"))
    backend.start(make_spec(tmp_path, "swarm-r1-dead", "sh", "-c", "exit 3"))
    backend.start(make_spec(tmp_path, "swarm-r2-other", "sleep", "1000"))
    wait_exit(events, "swarm-r1-dead")
    wait_until(lambda: not backend.statuses("swarm-r1-dead")["swarm-r1-dead"].alive)
    found = backend.statuses("swarm-r1-")
    assert sorted(found) == ["swarm-r1-dead", "swarm-r1-live"]
    assert found == {name: backend.status(name) for name in found}
    assert found["swarm-r1-live"].alive and found["swarm-r1-live"].pid
    dead = found["swarm-r1-dead"]
    assert dead.exists and not dead.alive and dead.exit_status == 3
    assert sorted(backend.statuses("")) == ["swarm-r1-dead", "swarm-r1-live", "swarm-r2-other"]
    assert backend.statuses("other-") == {}
    backend.kill("swarm-r1-live")
    assert "swarm-r1-live" not in backend.statuses("swarm-r1-")


def test_capture_last_lines(backend: Backend, tmp_path: pathlib.Path) -> None:
    script = "for i in $(seq 1 30); do echo line-$i; done; echo ready; sleep 1000"
    backend.start(make_spec(tmp_path, "swarm-r1-cap", "sh", "-c", script))
    wait_until(lambda: "ready" in backend.capture("swarm-r1-cap"))
    assert backend.capture("swarm-r1-cap", lines=3).splitlines() == ["line-29", "line-30", "ready"]
    assert backend.capture("swarm-missing") == ""


def test_live_session_refused_dead_one_replaced(backend: Backend, tmp_path: pathlib.Path) -> None:
    events = callback_queue(backend)
    backend.start(make_spec(tmp_path, "swarm-r1-t1", "sleep", "1000"))
    with pytest.raises(s.SessionExists):
        backend.start(make_spec(tmp_path, "swarm-r1-t1", "sleep", "1000"))
    backend.kill("swarm-r1-t1")
    backend.start(make_spec(tmp_path, "swarm-r1-t1", "sh", "-c", "exit 4"))
    wait_exit(events, "swarm-r1-t1")
    wait_until(lambda: backend.status("swarm-r1-t1").exit_status == 4)
    backend.start(make_spec(tmp_path, "swarm-r1-t1", "sh", "-c", "exit 5"))  # dead: replaced
    wait_until(lambda: backend.status("swarm-r1-t1").exit_status == 5)


class BadSpecCase(t.NamedTuple):
    test_id: str
    name: str
    argv: tuple[str, ...]


BAD_SPECS = [
    BadSpecCase("dot-in-name", "swarm-r1.t1", ("true",)),
    BadSpecCase("colon-in-name", "swarm:r1", ("true",)),
    BadSpecCase("empty-name", "", ("true",)),
    BadSpecCase("empty-argv", "swarm-r1-t1", ()),
]


@pytest.mark.parametrize("case", BAD_SPECS, ids=[c.test_id for c in BAD_SPECS])
def test_bad_spec_is_usage_error(
    backend: Backend, tmp_path: pathlib.Path, case: BadSpecCase
) -> None:
    with pytest.raises(UsageError):
        backend.start(make_spec(tmp_path, case.name or "x", *case.argv)._replace(name=case.name))


def test_session_name_survives_tmux() -> None:
    assert s.session_name("r1", "t.1") == "swarm-r1-t+1"
    assert s.check_session_name(s.session_name("20260101-abc", "task_2.b")) == (
        "swarm-20260101-abc-task_2+b"
    )


def test_close_leaves_no_threads(backend: Backend, tmp_path: pathlib.Path) -> None:
    before = set(threading.enumerate())
    events = callback_queue(backend)
    backend.start(make_spec(tmp_path, "swarm-r1-t1", "sh", "-c", "exit 0"))
    wait_exit(events, "swarm-r1-t1")
    backend.close()
    backend.close()  # idempotent
    wait_until(lambda: set(threading.enumerate()) <= before)


# tmux specifics


def test_tmux_session_keeps_status_and_is_targeted_exactly(
    tmux: s.TmuxBackend, server: libtmux.Server, tmp_path: pathlib.Path
) -> None:
    events = callback_queue(tmux)
    tmux.start(make_spec(tmp_path, "swarm-r1-w10", "sleep", "1000"))
    tmux.start(make_spec(tmp_path, "swarm-r1-w1", "sh", "-c", "exit 2"))
    wait_exit(events, "swarm-r1-w1")
    assert tmux.status("swarm-r1-w1").exit_status == 2  # remain-on-exit kept it
    assert tmux.status("swarm-r1-w10").alive
    assert tmux.status("swarm-r1-w") == s.MISSING  # no prefix matching
    tmux.kill("swarm-r1-w1")
    assert tmux.status("swarm-r1-w10").alive
    assert [sess.name for sess in server.sessions] == ["swarm-r1-w10"]


class CountingTmux(s.TmuxBackend):
    """The real backend, counting the tmux clients it starts."""

    calls: list[tuple[str, ...]]

    def _tmux(self, *args: str, check: bool = True) -> t.Any:
        self.calls.append(args)
        return super()._tmux(*args, check=check)


def test_tmux_start_is_one_client(server: libtmux.Server, tmp_path: pathlib.Path) -> None:
    assert server.socket_name
    backend = CountingTmux(server.socket_name, notify_dir=tmp_path / "n")
    backend.calls = []
    try:
        events = callback_queue(backend)
        backend.start(make_spec(tmp_path, "swarm-r1-one", "sh", "-c", "echo hi; exit 6"))
        assert [c[0] for c in backend.calls] == ["new-session"]  # the whole list, one client
        wait_exit(events, "swarm-r1-one")
        wait_until(lambda: backend.status("swarm-r1-one").exit_status == 6)
        shown = ("show-options", "-v", "-t", "=swarm-r1-one:", s.PANE_OPTION)
        pane = server.cmd("list-panes", "-s", "-t", "=swarm-r1-one:", "-F", "#{pane_id}").stdout
        assert server.cmd(*shown).stdout == pane  # the agent pane's id, expanded by tmux
        backend.calls = []
        backend.start(make_spec(tmp_path, "swarm-r1-one", "sh", "-c", "exit 7"))  # dead: replaced
        replaced = ["new-session", "list-panes", "kill-session"]  # kill + start: one client
        assert [c[0] for c in backend.calls] == replaced
        wait_until(lambda: backend.status("swarm-r1-one").exit_status == 7)
    finally:
        backend.close()


def test_tmux_agents_that_print_and_exit_at_once_are_logged_and_kept(
    tmux: s.TmuxBackend, tmp_path: pathlib.Path
) -> None:
    """The agent starts with the session itself: the log, ``remain-on-exit`` and the hook come
    after it in the same command list, which the server runs before it reads the new pane or
    reaps its child. Forty agents that print one line and exit at once, half of them without
    a shell in between: every first byte is in the log, every exit status is kept."""
    events = callback_queue(tmux)
    specs = []
    for i in range(40):
        name = f"swarm-r1-q{i:02d}"
        argv = ("printf", f"first-{i}\\n") if i % 2 else ("sh", "-c", f"echo first-{i}; exit 3")
        specs.append(make_spec(tmp_path, name, *argv))
        tmux.start(specs[-1])
    exited: set[str] = set()
    while len(exited) < len(specs):
        exited.add(events.get(timeout=WAIT))
    assert exited == {spec.name for spec in specs}
    for i, spec in enumerate(specs):
        status = tmux.status(spec.name)
        assert status.exists and not status.alive
        assert status.exit_status == (0 if i % 2 else 3), spec.name
        wait_until(lambda spec=spec, i=i: f"first-{i}" in log_text(spec.log_path))  # type: ignore[misc]


def test_tmux_never_launched_agent_counts_as_dead(
    tmux: s.TmuxBackend, server: libtmux.Server, tmp_path: pathlib.Path
) -> None:
    """A session left with the placeholder (its start stopped before the agent was launched)
    is dead for status() and statuses(), and start() replaces it."""
    cwd = tmp_path / "wt"
    cwd.mkdir()
    created = server.cmd("new-session", "-d", "-s", "swarm-r1-half", "-c", str(cwd), *s.PLACEHOLDER)
    assert created.returncode == 0, created.stderr
    status = tmux.status("swarm-r1-half")
    assert status.exists and not status.alive and status.exit_status is None
    assert tmux.statuses("swarm-r1-") == {"swarm-r1-half": status}
    events = callback_queue(tmux)
    tmux.start(make_spec(tmp_path, "swarm-r1-half", "sh", "-c", "exit 0"))
    wait_exit(events, "swarm-r1-half")
    wait_until(lambda: tmux.status("swarm-r1-half").exit_status == 0)


def test_tmux_safety_check_without_hook(server: libtmux.Server, tmp_path: pathlib.Path) -> None:
    """A wrapper killed outright cannot notify and the pane-died hook may be lost: the periodic
    check still reports the exit (and a session killed behind the backend's back)."""
    assert server.socket_name
    backend = s.TmuxBackend(server.socket_name, notify_dir=tmp_path / "n", safety_interval=0.2)
    try:
        events = callback_queue(backend)
        spec = make_spec(tmp_path, "swarm-r1-nohook", "sleep", "1000")
        backend.start(spec)
        status = backend.status("swarm-r1-nohook")
        assert status.alive and status.pid
        pane = server.cmd("list-panes", "-s", "-t", "=swarm-r1-nohook:", "-F", "#{pane_id}")
        pane_id = pane.stdout[0]
        hooks = ("show-hooks", "-w", "-t", pane_id)
        assert any("touch" in h for h in server.cmd(*hooks).stdout)  # the hook is there...
        assert server.cmd("set-hook", "-w", "-u", "-t", pane_id, "pane-died").returncode == 0
        assert not any("touch" in h for h in server.cmd(*hooks).stdout)  # ...and now gone
        os.killpg(status.pid, signal.SIGKILL)
        wait_exit(events, "swarm-r1-nohook")
        status = backend.status("swarm-r1-nohook")
        assert status.exists and not status.alive and status.exit_status is None

        backend.start(make_spec(tmp_path, "swarm-r1-gone", "sleep", "1000"))
        wait_until(lambda: "swarm-r1-gone" in backend._seen_alive)  # the check saw it alive
        server.cmd("kill-session", "-t", "=swarm-r1-gone")
        wait_exit(events, "swarm-r1-gone")
    finally:
        backend.close()


# process specifics


def test_process_kill_escalates_to_sigkill(tmp_path: pathlib.Path) -> None:
    backend = s.ProcessBackend(grace=0.2)
    try:
        script = 'trap "" TERM; echo armed; sleep 1000 & wait'
        spec = make_spec(tmp_path, "swarm-r1-stubborn", "sh", "-c", script)
        backend.start(spec)
        wait_until(lambda: "armed" in log_text(spec.log_path))
        pid = backend.status("swarm-r1-stubborn").pid
        backend.kill("swarm-r1-stubborn")
        assert backend.status("swarm-r1-stubborn") == s.MISSING
        assert not _pid_alive(pid)
    finally:
        backend.close()
