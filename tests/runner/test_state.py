from __future__ import annotations

import pathlib
import typing as t

import pytest

from protocol.state import (
    TASK_STATES,
    TRANSITIONS,
    EventKind,
    LifecycleError,
    RunEventKind,
    TaskEventKind,
    mermaid_diagram,
)
from runner.errors import UsageError
from runner.state import RunLog, exclusive_lock, lock_held, read_events, rebuild


def _log(tmp_path: pathlib.Path) -> RunLog:
    log = RunLog(tmp_path / "events.jsonl", tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["A", "B", "C"], done=["C"], max_workers=2)
    return log


def test_state_is_the_fold_of_events(tmp_path: pathlib.Path) -> None:
    log = _log(tmp_path)
    log.record(
        "task_dispatched", "A", attempt=1, session="s-A", branch="b", worktree="w", base_sha="base"
    )
    log.record("task_offered", "A", msg_id="m1", head_sha="h1", text="OFFERING_READY: ok")
    log.record("merge_started", "A", head_sha="h1")
    log.record("task_merged", "A", merge_sha="m", integration_head="m", text="merged")
    log.record("task_skipped", "B", reason="dependency failed")
    state = log.state
    assert state.tasks["A"].state == "merged"
    assert state.tasks["A"].merge_sha == "m"
    assert state.integration_head == "m"
    assert state.tasks["B"].state == "skipped"
    assert state.tasks["C"].state == "merged"  # status: done in the plan
    assert state.handled_mail == ("m1",)
    assert rebuild(read_events(log.events_path)) == state
    assert RunLog.open(log.events_path, log.state_path).state == state


def test_conflict_refusals_are_counted(tmp_path: pathlib.Path) -> None:
    log = _log(tmp_path)
    log.record("task_dispatched", "A", attempt=1, session="s")
    log.record("task_offered", "A", head_sha="h1")
    log.record("merge_refused", "A", kind="conflict", files=["x"], reason="merge conflict in x")
    log.record("task_dispatched", "A", attempt=2, session="s", fixup=True)
    state = log.state.tasks["A"]
    assert (state.state, state.conflicts, state.fixups, state.files) == ("running", 1, 1, ("x",))


def test_torn_last_line_is_ignored_and_repaired(tmp_path: pathlib.Path) -> None:
    log = _log(tmp_path)
    with log.events_path.open("ab") as fh:
        fh.write(b'{"v":1,"seq":2,"run_id":"r1","ki')  # a crash mid-append
    reopened = RunLog.open(log.events_path, log.state_path)
    reopened.record("task_skipped", "B", reason="x")
    assert [e.seq for e in read_events(log.events_path)] == [1, 2]


def test_corrupt_middle_line_is_an_error(tmp_path: pathlib.Path) -> None:
    log = _log(tmp_path)
    text = log.events_path.read_text()
    log.events_path.write_text("garbage\n" + text)
    with pytest.raises(UsageError, match="corrupt event line"):
        read_events(log.events_path)


def test_exclusive_lock_admits_one_holder(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "mayor.lock"
    assert not lock_held(path)
    with exclusive_lock(path) as first:
        assert first
        assert lock_held(path)
        with exclusive_lock(path) as second:
            assert not second
    assert not lock_held(path)
    with exclusive_lock(path) as again:
        assert again


class LifecycleCase(t.NamedTuple):
    test_id: str
    events: list[tuple[str, str | None]]
    match: str


LIFECYCLE_CASES = [
    LifecycleCase("misspelt-kind", [("task_crahsed", "A")], "unknown event kind"),
    LifecycleCase("merged-while-pending", [("task_merged", "A")], "allowed only in offered"),
    LifecycleCase(
        "dispatched-after-merge",
        [
            ("task_dispatched", "A"),
            ("task_offered", "A"),
            ("task_merged", "A"),
            ("task_dispatched", "A"),
        ],
        "task_dispatched for task A in state merged",
    ),
    LifecycleCase("offer-of-a-task-never-started", [("task_offered", "B")], "allowed only in"),
    LifecycleCase("task-event-without-task", [("task_crashed", None)], "needs a task"),
    LifecycleCase("unknown-task", [("task_skipped", "Z")], "needs a task"),
    LifecycleCase("skip-a-running-task", [("task_dispatched", "A"), ("task_skipped", "A")], "skip"),
]


@pytest.mark.parametrize("case", LIFECYCLE_CASES, ids=[c.test_id for c in LIFECYCLE_CASES])
def test_a_wrong_transition_raises_and_is_not_stored(
    tmp_path: pathlib.Path, case: LifecycleCase
) -> None:
    log = _log(tmp_path)
    *before, (kind, task_id) = case.events
    for ok_kind, ok_task in before:
        log.record(t.cast(EventKind, ok_kind), ok_task, attempt=1)
    lines = log.events_path.read_bytes()
    with pytest.raises(LifecycleError, match=case.match):
        log.record(t.cast(EventKind, kind), task_id, attempt=1)
    assert log.events_path.read_bytes() == lines  # nothing was written
    assert RunLog.open(log.events_path, log.state_path).state == log.state


def test_every_event_kind_is_known_and_every_task_event_has_a_row() -> None:
    assert set(TRANSITIONS) == set(t.get_args(TaskEventKind))
    assert not set(t.get_args(TaskEventKind)) & set(t.get_args(RunEventKind))
    for row in TRANSITIONS.values():
        assert row.sources, row
        assert row.sources <= set(TASK_STATES)


def test_every_state_is_reachable_from_pending() -> None:
    reached = {"pending"}
    changed = True
    while changed:
        changed = False
        for row in TRANSITIONS.values():
            if row.sources & reached and row.target and row.target not in reached:
                reached.add(row.target)
                changed = True
    assert reached == set(TASK_STATES)


def test_the_architecture_doc_shows_the_diagram_drawn_from_the_table() -> None:
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "architecture.md").read_text()
    assert "```mermaid\n" + mermaid_diagram() + "```" in doc, (
        "docs/architecture.md is out of date: paste protocol.state.mermaid_diagram() output"
    )
