"""runner.dashboard: the watch dashboard and the status table, rendered by a real rich Console
into a string; the event tail on a real events.jsonl."""

from __future__ import annotations

import io
import pathlib
import re
import typing as t
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console, RenderableType

from protocol.plan import Plan
from protocol.state import Event, RunState
from runner.dashboard import (
    EventTail,
    left_ellipsis,
    merge_queue,
    progress,
    render,
    status_table,
)
from runner.state import RunLog, rebuild

T0: t.Final = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
RUN: t.Final = "20261121-051500-3f2a"
COLOR_RE: t.Final = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-9]|9[0-7])(?:;\d+)*m")


def events(*specs: tuple[float, str, str | None, dict[str, t.Any]]) -> list[Event]:
    """Events at ``T0 + minutes``: (minutes, kind, task id, data)."""
    return [
        Event(seq=i, ts=T0 + timedelta(minutes=m), run_id=RUN, kind=k, task_id=tid, data=data)
        for i, (m, k, tid, data) in enumerate(specs, 1)
    ]


def created(
    *tasks: str, done: t.Sequence[str] = (), **extra: t.Any
) -> tuple[float, str, None, dict[str, t.Any]]:
    return (0, "run_created", None, {"tasks": list(tasks), "done": list(done), **extra})


def plan(**efforts: str) -> Plan:
    return Plan.model_validate(
        {"name": "demo", "tasks": [{"id": tid, "effort": e} for tid, e in efforts.items()]}
    )


def text_of(renderable: RenderableType, width: int = 80, **console: t.Any) -> str:
    out = Console(width=width, file=io.StringIO(), record=True, **console)
    out.print(renderable)
    return out.export_text()


def busy_run() -> tuple[RunState, list[Event]]:
    """Long ids, sessions and messages; every section non-empty."""
    long_task = "a-very-long-task-identifier-that-goes-on"
    evs = events(
        created("T01", "T02", "T03", long_task, "T05", plan_name="a plan with a long name" * 3),
        (1, "task_dispatched", "T01", {"attempt": 1, "session": f"swarm-{RUN}-T01"}),
        (1, "task_dispatched", "T02", {"attempt": 1, "session": f"swarm-{RUN}-T02"}),
        (1, "task_dispatched", long_task, {"attempt": 3, "session": f"swarm-{RUN}-{long_task}"}),
        (2, "task_message", long_task, {"text": "parsing the grammar, " * 20}),
        (3, "task_offered", "T02", {"text": "OFFERING_READY: done"}),
        (4, "task_offered", "T01", {"text": "OFFERING_READY: done"}),
        (4, "validation_started", "T01", {}),
        (5, "help_requested", "T03", {"text": "which API? " * 30}),
        (6, "escape_reported", "T02", {"text": "docs/" + "x" * 200 + ".md is stale"}),
        (
            7,
            "escape_decided",
            None,
            {"key": "k1", "spawn": True, "reason": "safe " * 40, "task": "T-AUTO-1"},
        ),
        (1, "task_dispatched", "T05", {"attempt": 1, "session": f"swarm-{RUN}-T05"}),
        (8, "task_failed", "T05", {"reason": "tests failed: " + "E" * 300}),
    )
    return rebuild(evs), evs


@pytest.mark.parametrize("width", [80, 60, 120])
def test_dashboard_fits_the_width(width: int) -> None:
    state, evs = busy_run()
    text = text_of(render(state, None, evs, width=width, at=T0 + timedelta(minutes=9)), width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert any(line.startswith("T01") and "validating" in line for line in lines), text
    assert "merge queue: T01 validating, T02 offered" in text
    assert "T03: which API?" in text
    assert "spawned T-AUTO-1" in text
    assert any("T05" in line and "failed" in line and "tests f" in line for line in lines)


def test_status_table_fits_80_columns_in_plan_order() -> None:
    state, _ = busy_run()
    text = text_of(status_table(state, at=T0 + timedelta(minutes=9)))
    lines = [line.rstrip() for line in text.splitlines()]
    assert max(len(line) for line in lines) <= 80, text
    assert lines[0] == f"run {RUN}: running"
    order = [line.split()[0] for line in lines[2:] if line.strip()]
    assert order == ["T01", "T02", "T03", "a-very-long-t…", "T05"]
    t01 = next(line for line in lines if line.startswith("T01"))
    assert "…" in t01 and t01.split()[3:5] == ["1", "8m00s"]  # try, elapsed


def test_left_ellipsis_keeps_the_distinguishing_end() -> None:
    assert left_ellipsis(f"swarm-{RUN}-T03", 10) == "…-3f2a-T03"
    assert left_ellipsis("short", 10) == "short"


def test_eta_from_remaining_efforts_at_the_pace_so_far() -> None:
    evs = events(
        created("A", "B", "C", "D", done=["D"]),
        (0, "task_dispatched", "A", {"attempt": 1}),
        (30, "task_offered", "A", {}),
        (30, "task_merged", "A", {"merge_sha": "m"}),
    )
    state = rebuild(evs)
    efforts = plan(A="1h", B="2h", C="60min", D="XL")
    # 60 effort-minutes merged in 30 minutes; 180 remain (D was done before the run: no pace)
    at = T0 + timedelta(minutes=30)
    assert progress(state, efforts, at) == (2, 4, 90 * 60.0)
    text = text_of(render(state, efforts, evs, at=at))
    assert "merged 2/4" in text and " 50%" in text and "ETA 1h30m" in text


def test_no_eta_before_the_first_merge_and_after_the_end() -> None:
    evs = events(created("A", "B"), (1, "task_dispatched", "A", {"attempt": 1}))
    assert progress(rebuild(evs), None, T0).eta is None
    assert "ETA ?" in text_of(render(rebuild(evs), None, evs, at=T0))
    ended = rebuild(
        [
            *evs,
            Event(
                seq=3,
                ts=T0,
                run_id=RUN,
                kind="run_finished",
                data={"status": "failed", "reason": "budget"},
            ),
        ]
    )
    text = text_of(render(ended, None, evs, at=T0))
    assert "ETA" not in text
    assert f"run {RUN}: failed" in text and "(budget)" in text


def test_spawned_tasks_not_in_the_plan_count_with_the_default_effort() -> None:
    evs = events(
        created("A"),
        (0, "task_dispatched", "A", {"attempt": 1}),
        (10, "task_offered", "A", {}),
        (10, "task_merged", "A", {}),
    )
    state = rebuild(evs)
    spawned = state.model_copy(
        update={
            "tasks": {
                **state.tasks,
                "T-AUTO-1": state.tasks["A"].model_copy(
                    update={"id": "T-AUTO-1", "state": "pending"}
                ),
            }
        }
    )
    # A: 30 effort-minutes in 10 minutes; T-AUTO-1: the default 120 effort-minutes
    assert progress(spawned, plan(A="S"), T0 + timedelta(minutes=10)).eta == 40 * 60.0


def test_merge_queue_head_first() -> None:
    evs = events(
        created("A", "B", "C", "D"),
        *((1, "task_dispatched", tid, {"attempt": 1}) for tid in "ABCD"),
        (2, "task_offered", "C", {}),
        (3, "task_offered", "A", {}),
        (4, "task_offered", "B", {}),
        (5, "merge_started", "B", {}),
    )
    assert merge_queue(rebuild(evs), evs) == ["B", "C", "A"]


def test_only_the_last_escapes_and_help_requests() -> None:
    evs = events(
        created("A"),
        *((i, "help_requested", "A", {"text": f"question {i}"}) for i in range(1, 6)),
        *((i, "escape_reported", "A", {"text": f"finding {i}"}) for i in range(6, 11)),
    )
    text = text_of(render(rebuild(evs), None, evs, at=T0))
    assert [n for n in range(1, 6) if f"question {n}" in text] == [3, 4, 5]
    assert [n for n in range(6, 11) if f"finding {n}" in text] == [8, 9, 10]


def test_empty_sections_say_none() -> None:
    evs = events(created("A"))
    text = text_of(render(rebuild(evs), None, evs, at=T0))
    assert "merge queue: empty" in text
    assert "escapes: none" in text and "help requests: none" in text


def test_no_color_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    state, evs = busy_run()

    def ansi() -> str:
        out = Console(width=80, file=io.StringIO(), force_terminal=True, color_system="standard")
        out.print(render(state, None, evs, at=T0))
        return t.cast(io.StringIO, out.file).getvalue()

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert COLOR_RE.search(ansi())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not COLOR_RE.search(ansi())


def task_state(tail: EventTail, task_id: str) -> str:
    assert tail.state is not None
    return tail.state.tasks[task_id].state


def test_event_tail_reads_only_what_was_appended(tmp_path: pathlib.Path) -> None:
    log = RunLog(tmp_path / "events.jsonl", tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["A", "B"])
    tail = EventTail(log.events_path)
    assert tail.poll()
    assert task_state(tail, "A") == "pending"
    assert not tail.poll()  # nothing new
    log.record("task_dispatched", "A", attempt=1, session="s-A")
    log.record("help_requested", "A", text="help")
    assert tail.poll()
    assert task_state(tail, "A") == "running"
    assert [e.kind for e in tail.events] == ["help_requested"]  # only what render needs
    assert tail.state == log.state


def test_event_tail_waits_for_a_torn_line(tmp_path: pathlib.Path) -> None:
    log = RunLog(tmp_path / "events.jsonl", tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["A"])
    tail = EventTail(log.events_path)
    tail.poll()
    line = Event(seq=2, run_id="r1", kind="task_skipped", task_id="A", data={"reason": "x"})
    raw = line.model_dump_json().encode() + b"\n"
    with log.events_path.open("ab") as fh:
        fh.write(raw[:10])
    assert not tail.poll()
    with log.events_path.open("ab") as fh:
        fh.write(raw[10:])
    assert tail.poll()
    assert tail.state is not None and tail.state.tasks["A"].state == "skipped"


def test_event_tail_rereads_a_replaced_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    log = RunLog(path, tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["A", "B", "C"])
    log.record("task_skipped", "A", reason="x")
    tail = EventTail(path)
    tail.poll()
    path.unlink()
    fresh = RunLog(path, tmp_path / "state.json")
    fresh.record("run_created", run_id="r2", tasks=["Z"])
    assert tail.poll()
    assert tail.state is not None and tail.state.run_id == "r2"


def test_event_tail_of_a_missing_file(tmp_path: pathlib.Path) -> None:
    tail = EventTail(tmp_path / "nope.jsonl")
    assert not tail.poll()
    assert tail.state is None


def test_elapsed_times_stop_with_the_run() -> None:
    evs = events(
        created("A"),
        (1, "task_dispatched", "A", {"attempt": 1, "session": "s"}),
        (3, "run_finished", None, {"status": "stopped", "reason": "stopped by swarm stop"}),
    )
    text = text_of(status_table(rebuild(evs), at=T0 + timedelta(hours=5)))
    row = next(line for line in text.splitlines() if line.startswith("A "))
    assert row.split()[1:5] == ["running", "s", "1", "2m00s"]


def _merged_all() -> RunState:
    return rebuild(
        events(
            created("T01", "T02"),
            (1, "task_dispatched", "T01", {"attempt": 1, "session": "s1"}),
            (2, "task_offered", "T01", {}),
            (3, "task_merged", "T01", {"merge_sha": "abc"}),
            (3, "task_dispatched", "T02", {"attempt": 1, "session": "s2"}),
            (4, "task_offered", "T02", {}),
            (5, "task_merged", "T02", {"merge_sha": None, "text": "merged (no changes)"}),
        )
    )


def test_final_gates_are_named_while_they_run() -> None:
    gated = Plan.model_validate(
        {
            "name": "demo",
            "tasks": [{"id": "T01"}, {"id": "T02"}],
            "gates": [{"name": "tests", "command": "pytest"}, {"name": "lint", "command": "ruff"}],
        }
    )
    state = _merged_all()
    text = text_of(render(state, gated, [], at=T0 + timedelta(minutes=5, seconds=12)))
    header = text.splitlines()[0]
    assert "final gates: tests, lint (12s)" in header
    assert "workers" not in header  # no worker runs now: the gates do
    # without gates, or once it ended, nothing is said about them
    assert "final gates" not in text_of(render(state, plan(T01="S", T02="S"), [], at=T0))


def test_a_task_that_changed_nothing_is_not_a_plain_success() -> None:
    text = text_of(status_table(_merged_all(), at=T0, title=False))
    (row,) = [line for line in text.splitlines() if line.startswith("T02 ")]
    assert "no change" in row
    (row,) = [line for line in text.splitlines() if line.startswith("T01 ")]
    assert "merged" in row and "no change" not in row


def test_a_dead_mayor_never_looks_like_a_live_run() -> None:
    state = rebuild(
        events(created("T01"), (1, "task_dispatched", "T01", {"attempt": 1, "session": "s"}))
    )
    note = "mayor not running (since 12:01:00): `swarm resume r1`"
    text = text_of(render(state, None, [], at=T0 + timedelta(hours=3), mayor=note))
    header = text.splitlines()[0]
    assert note in header and "running" not in header.replace(note, "")
    assert "ETA" not in text
    # its clock stopped with it: the task's elapsed time is not three hours
    (row,) = [line for line in text.splitlines() if line.startswith("T01 ")]
    assert "0s" in row and "3h" not in row and "180m" not in row


def test_why_section_shows_the_cause_and_the_command() -> None:
    from runner.why import Why

    state = rebuild(events(created("T01")))
    found = Why(
        "T01",
        "validation failed: tests: `pytest` exited 1",
        pathlib.Path("/r/v.log"),
        ("collected 3 items", "E   assert 3 == 4"),
    )
    text = text_of(render(state, None, [], at=T0, whys=[found]))
    assert "why:" in text
    assert "T01: validation failed: tests" in text
    assert "| E   assert 3 == 4" in text
    assert f"swarm logs T01 --validation --run {RUN}" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_worker_waiting_on_its_pane_says_so_in_the_state_column() -> None:
    """A running task whose pane shows a permission prompt, a dialog or an idle prompt says
    that instead of "running" (status and watch); working stays "running"."""
    evs = events(
        created("T1", "T2", "T3"),
        (1, "task_dispatched", "T1", {"attempt": 1, "session": "s-T1"}),
        (1, "task_dispatched", "T2", {"attempt": 1, "session": "s-T2"}),
        (1, "task_dispatched", "T3", {"attempt": 1, "session": "s-T3"}),
        (2, "task_pane", "T1", {"pane": "permission"}),
        (2, "task_pane", "T2", {"pane": "working"}),
        (2, "task_pane", "T3", {"pane": "idle"}),
    )
    text = text_of(status_table(rebuild(evs), at=T0 + timedelta(minutes=3)))
    states = {line.split()[0]: line.split()[1] for line in text.splitlines()[2:] if line.strip()}
    assert states == {"T1": "permission", "T2": "running", "T3": "idle"}
