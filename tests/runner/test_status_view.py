"""``swarm status`` without pydantic, rich or click (runner.status_view, runner.cli.fast): a fresh
``swarm status`` process prints byte for byte what the click command prints, for runs recorded
by a real RunLog in a real git repository; the plain layout is rich's (compared with a real rich
Console over a spread of states and widths); the fast path imports none of the three."""

from __future__ import annotations

import io
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import time
import typing as t
from datetime import UTC, datetime, timedelta

import libtmux
import pytest
from rich.console import Console

from agentmail.fs import exclusive_lock
from protocol.state import EscapeRecord, Event, RunState, TaskRecord
from runner import status_view
from runner.cli.status import rich_status
from runner.paths import RunPaths, SwarmPaths
from runner.state import RunLog, rebuild
from tests.runner.runs import swarm

SWARM: t.Final = str(pathlib.Path(sys.executable).with_name("swarm"))
T0: t.Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUN: t.Final = "20261121-051500-3f2a"
CAUSE: t.Final = "AssertionError: expected 3, got 4"
Spec = tuple[str, str | None, dict[str, t.Any]]


def merged(tid: str, session: str, **extra: t.Any) -> list[Spec]:
    return [
        ("task_dispatched", tid, {"attempt": 1, "session": session, **extra}),
        ("task_offered", tid, {"text": "OFFERING_READY: done"}),
        ("task_merged", tid, {"merge_sha": "a" * 40}),
    ]


def refused(tid: str, reason: str) -> list[Spec]:
    return [
        ("task_dispatched", tid, {"attempt": 1, "session": f"swarm-{RUN}-{tid}"}),
        ("task_offered", tid, {}),
        ("validation_started", tid, {}),
        ("validation_failed", tid, {"reason": reason}),
        ("task_failed", tid, {"reason": reason}),
    ]


def created(*tasks: str) -> Spec:
    return ("run_created", None, {"run_id": RUN, "tasks": list(tasks), "plan_name": "demo"})


LONG: t.Final = "a-very-long-task-identifier-that-goes-on"
CASES: t.Final[dict[str, list[Spec]]] = {
    "done-with-a-remote-host-and-no-change": [
        created("T01", "T02", LONG),
        *merged("T01", f"swarm-{RUN}-T01", host="box-1"),
        ("task_dispatched", "T02", {"attempt": 2, "session": "s"}),
        ("task_offered", "T02", {}),
        ("task_merged", "T02", {}),  # merged without a commit: "no change"
        *merged(LONG, f"swarm-{RUN}-{LONG}", host="local"),
        ("run_finished", None, {"status": "done"}),
    ],
    "failed-with-a-validation-why-and-a-final-gate": [
        created("T01", "T02"),
        *merged("T01", "s1"),
        *refused("T02", "validation failed: tests: `pytest` exited 1"),
        ("final_gate_failed", None, {"reason": "gate suite exited 1", "output": "E   boom\n"}),
        ("run_finished", None, {"status": "failed", "reason": "1 task failed"}),
    ],
    "stopped-paused-with-escapes": [
        created("T01", "T02"),
        ("task_dispatched", "T01", {"attempt": 1, "session": "s1"}),
        ("task_message", "T01", {"text": "parsing the grammar, " * 12}),
        ("escape_decided", None, {"key": "k1", "source": "T01", "spawn": True, "task": "T-A"}),
        ("escape_decided", None, {"key": "docs", "source": None, "reason": "budget " * 20}),
        ("dispatch_paused", None, {}),
        ("task_cancelled", "T01", {"reason": "stopped"}),
        ("run_finished", None, {"status": "stopped", "reason": "stopped by swarm stop " * 6}),
    ],
    "running-with-pending-tasks": [  # nothing ticks: no task runs, so no elapsed time grows
        created("T01", "T02", "T03"),
        *merged("T01", "s1"),
        ("task_skipped", "T03", {"reason": "blocked by [T9]: :x: not merged"}),
    ],
}


def record(repo: pathlib.Path, specs: t.Sequence[Spec]) -> RunPaths:
    run = SwarmPaths.for_repo(repo).run(RUN)
    run.dir.mkdir(parents=True)
    log = RunLog(run.events, run.state)
    for kind, tid, data in specs:
        log.record(kind, tid, **data)  # type: ignore[arg-type]
    if any(kind == "validation_failed" for kind, _, _ in specs):
        log_file = run.task_dir("T02") / "validation.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text("".join(f"line {i}\n" for i in range(40)) + CAUSE + "\n")
    return run


def fresh(repo: pathlib.Path, *args: str) -> str:
    """``swarm status ARGS`` from a fresh process (the installed entry point), its stdout."""
    result = subprocess.run(
        [SWARM, "status", "--repo", str(repo), *args], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def clicked(repo: pathlib.Path, *args: str) -> str:
    """The click command's stdout (in process: the models' fold of the events)."""
    result = swarm("status", "--repo", str(repo), *args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("columns", ["80", "50", "200"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_fresh_status_prints_what_the_click_command_prints(
    git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch, case: str, columns: str
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    record(git_repo, CASES[case])
    assert fresh(git_repo) == clicked(git_repo)
    assert fresh(git_repo, "--json") == clicked(git_repo, "--json")
    assert fresh(git_repo, RUN, "--json") == clicked(git_repo, RUN, "--json")


def test_a_live_and_a_dead_mayor(git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = record(git_repo, CASES["running-with-pending-tasks"])
    dead = fresh(git_repo)
    assert "mayor not running (since" in dead and dead == clicked(git_repo)
    with exclusive_lock(run.lock) as held:
        assert held
        alive = fresh(git_repo)
        assert "mayor not running" not in alive and alive == clicked(git_repo)
        doc = json.loads(fresh(git_repo, "--json"))
        assert doc["mayor_alive"] is True and fresh(git_repo, "--json") == clicked(
            git_repo, "--json"
        )


def test_what_the_text_says(git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    record(git_repo, CASES["failed-with-a-validation-why-and-a-final-gate"])
    text = fresh(git_repo)
    assert text.splitlines()[0].rstrip() == f"run {RUN}: failed"
    assert "failed: 1 task failed" in text and CAUSE in text
    assert f"swarm logs T02 --validation --run {RUN}" in text
    assert "run: final gate suite exited 1\n  | E   boom\n" in text
    doc = json.loads(fresh(git_repo, "--json"))
    assert [w["task_id"] for w in doc["why"]] == ["T02", "run"]
    assert doc["why"][0]["tail"][-1] == CAUSE


FAST_CHECK: t.Final = """
import sys
from runner.cli import fast
code = fast.run(sys.argv[1:])
heavy = sorted(m for m in ("pydantic", "rich", "click", "libtmux", "watchdog") if m in sys.modules)
sys.stderr.write(f"CODE={code} HEAVY={heavy}\\n")
"""


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("as_json", [False, True])
def test_the_fast_path_imports_no_pydantic_rich_or_click(
    git_repo: pathlib.Path, case: str, as_json: bool
) -> None:
    record(git_repo, CASES[case])
    argv = ["status", "--repo", str(git_repo), *(["--json"] if as_json else [])]
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-c", FAST_CHECK, *argv], capture_output=True, text=True, env=env
    )
    assert "CODE=0 HEAVY=[]" in result.stderr, result.stderr


def test_events_after_the_state_are_folded_by_the_models(
    git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    run = record(git_repo, CASES["running-with-pending-tasks"])
    assert status_view.current_doc(run) is not None
    log = RunLog.open(run.events, run.state)
    log.record("task_dispatched", "T02", save=False, attempt=1, session="s2")  # not in state.json
    assert status_view.current_doc(run) is None
    log.record("task_cancelled", "T02", reason="stopped")
    log.record("run_finished", reason="later", status="stopped")
    assert status_view.current_doc(run) is not None
    with run.events.open("ab") as fh:
        fh.write(b'{"v": 1, "seq": 9')  # a torn line: the models' fold ignores it, and warns
    assert status_view.current_doc(run) is None
    assert "stopped: later" in fresh(git_repo) and fresh(git_repo) == clicked(git_repo)


def test_a_state_of_another_version_is_read_by_the_models(git_repo: pathlib.Path) -> None:
    run = record(git_repo, CASES["running-with-pending-tasks"])
    doc = json.loads(run.state.read_text())
    for broken in (
        {**doc, "v": 2},
        {k: v for k, v in doc.items() if k != "paused"},
        {**doc, "tasks": {**doc["tasks"], "T01": {**doc["tasks"]["T01"], "new": 1}}},
    ):
        run.state.write_text(json.dumps(broken))
        assert status_view.current_doc(run) is None
    run.state.unlink()
    assert status_view.current_doc(run) is None
    assert "run " + RUN in fresh(git_repo)


def test_the_field_lists_are_the_models() -> None:
    assert set(RunState.model_fields) == status_view.STATE_FIELDS
    assert set(TaskRecord.model_fields) == status_view.TASK_FIELDS
    assert set(EscapeRecord.model_fields) == status_view.ESCAPE_FIELDS


def events(specs: t.Sequence[Spec]) -> list[Event]:
    return [
        Event(seq=i, ts=T0 + timedelta(minutes=i), run_id=RUN, kind=k, task_id=tid, data=data)
        for i, (k, tid, data) in enumerate(specs, 1)
    ]


RUNNING: t.Final[list[Spec]] = [
    created("T01", "T02", LONG, "T04", "T05"),
    ("task_dispatched", "T01", {"attempt": 1, "session": f"swarm-{RUN}-T01"}),
    ("task_pane", "T01", {"pane": "permission"}),
    ("task_dispatched", LONG, {"attempt": 3, "session": f"swarm-{RUN}-{LONG}", "host": "gpu"}),
    ("task_message", LONG, {"text": "naïve café → ü ═ 3×4 «quoted» — " * 5}),
    ("task_dispatched", "T04", {"attempt": 12, "session": "s"}),
    ("task_offered", "T04", {"text": "  two  spaces  "}),
    ("task_dispatched", "T05", {"attempt": 1, "session": "t"}),
    ("task_crashed", "T05", {"reason": "exited 1\nwithout a word"}),
]


@pytest.mark.parametrize("specs", [RUNNING, *CASES.values()], ids=["running", *CASES])
def test_the_plain_layout_is_richs(tmp_path: pathlib.Path, specs: list[Spec]) -> None:
    state = rebuild(events(specs))
    doc = state.model_dump(mode="json")
    run = RunPaths(tmp_path / RUN)
    at = T0 + timedelta(hours=1, minutes=3)
    for width in range(42, 131):
        out = Console(width=width, file=io.StringIO())
        rich_status(run, doc, out, at=at)
        plain = status_view.render(
            doc,
            whys=status_view.whys(run, doc),
            missing=status_view.mayor_missing(run, RUN, doc["status"]),
            width=width,
            style=status_view.Style(False, False),
            at=at,
        )
        assert plain == t.cast(io.StringIO, out.file).getvalue(), width


def test_what_the_plain_layout_leaves_to_rich(tmp_path: pathlib.Path) -> None:
    plain = status_view.Style(False, False)
    doc = rebuild(events(RUNNING)).model_dump(mode="json")
    at = T0 + timedelta(hours=1)
    assert status_view.render(doc, whys=(), missing=None, width=42, style=plain, at=at)
    assert status_view.render(doc, whys=(), missing=None, width=41, style=plain, at=at) is None
    # a task running for a week: its elapsed time is wider than its column
    later = T0 + timedelta(days=7)
    assert status_view.render(doc, whys=(), missing=None, width=80, style=plain, at=later) is None
    wide = rebuild(events([*RUNNING, ("task_message", "T01", {"text": "中文"})]))
    doc = wide.model_dump(mode="json")
    assert status_view.render(doc, whys=(), missing=None, width=80, style=plain, at=at) is None
    out = Console(width=80, file=io.StringIO())
    rich_status(RunPaths(tmp_path / RUN), doc, out, at=at)  # what the click command prints instead
    assert "中文" in t.cast(io.StringIO, out.file).getvalue()


def test_every_simple_character_is_one_cell_for_rich() -> None:
    from rich.cells import cell_len

    simple = [chr(o) for o in range(0x20, 0x2600) if status_view._plain(chr(o))]
    assert len(simple) > 1000
    assert [ch for ch in simple if cell_len(ch) != 1] == []


def test_a_terminal_gets_a_bold_header_and_state_colours() -> None:
    doc = rebuild(events(RUNNING)).model_dump(mode="json")

    def text(style: status_view.Style) -> str:
        at = T0 + timedelta(hours=1)
        out = status_view.render(doc, whys=(), missing=None, width=80, style=style, at=at)
        assert out is not None
        return out

    coloured = text(status_view.Style(True, True))
    assert "\x1b[1mtask" in coloured and "\x1b[1;31mpermission" in coloured
    no_color = text(status_view.Style(True, False))
    assert "\x1b[1mtask" in no_color and "\x1b[1mpermission" in no_color
    assert "\x1b[31" not in no_color
    assert "\x1b[" not in text(status_view.Style(False, False))


def test_errors_are_the_click_commands(git_repo: pathlib.Path) -> None:
    for args in ([], ["nope"], ["../x"], ["--rebuild", "--bogus"]):
        result = subprocess.run(
            [SWARM, "status", "--repo", str(git_repo), *args], capture_output=True, text=True
        )
        click_result = swarm("status", "--repo", str(git_repo), *args)
        assert result.returncode == click_result.exit_code == 2, result.stderr
        # the prog name: "swarm" from the entry point, "cli" under CliRunner
        assert result.stderr == click_result.stderr.replace("cli ", "swarm ")
        assert result.stdout == ""
    record(git_repo, CASES["running-with-pending-tasks"])
    assert (
        "no run 'nope'"
        in subprocess.run(
            [SWARM, "status", "nope", "--repo", str(git_repo)], capture_output=True, text=True
        ).stderr
    )


def test_on_a_terminal_the_header_is_bold_and_the_states_coloured(
    server: libtmux.Server, git_repo: pathlib.Path
) -> None:
    record(git_repo, CASES["failed-with-a-validation-why-and-a-final-gate"])
    argv = shlex.join([SWARM, "status", "--repo", str(git_repo)])
    script = f"unset COLUMNS NO_COLOR FORCE_COLOR; {argv}; echo EXIT=$?; sleep 600"
    session = server.new_session(
        session_name="status", x=100, y=40, window_command=f"sh -c {shlex.quote(script)}"
    )
    pane = session.active_window.active_pane
    assert pane is not None
    deadline = time.monotonic() + 20
    while not any("EXIT=" in line for line in pane.capture_pane()):
        assert time.monotonic() < deadline, "\n".join(pane.capture_pane())
        time.sleep(0.05)
    lines = [str(line) for line in pane.capture_pane()]
    assert "EXIT=0" in lines
    assert lines[0] == f"run {RUN}: failed" and lines[1].startswith("task  state")
    assert any(line.startswith("T02   failed") for line in lines)
    coloured = pane.cmd("capture-pane", "-p", "-e").stdout
    bold = re.compile(r"\x1b\[(?:\d+;)*1m")  # tmux writes its own SGR sequences
    assert any(bold.search(line) and "task" in line for line in coloured), coloured
    failed = next(line for line in coloured if line.startswith("T02") or "mT02 " in line)
    assert "31m" in failed and bold.search(failed), failed
