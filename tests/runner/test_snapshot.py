"""The state snapshot: resume and status fold only the events after ``snapshot.json``, and trust
it only when it covers a prefix of exactly these events. Whatever happens to it (cut short,
older than the events, garbage, a fold of other events, a mayor SIGKILLed between an append
and the snapshot), the state equals the full replay."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import typing as t

import pytest

from runner.escapes import LoopGuard
from runner.state import (
    SNAPSHOT_EVERY,
    Fold,
    RunLog,
    current_state,
    fold_log,
    read_events,
    rebuild,
    snapshot_path,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _grow(log: RunLog, events: int, *, start: int = 0, chunk: int = 50) -> None:
    """Append ``events`` run events, ``chunk`` per durable write (each one a handled mail)."""
    for first in range(start, start + events, chunk):
        batch: list[tuple[t.Any, str | None, dict[str, t.Any]]] = [
            ("mail_ignored", None, {"msg_id": f"m{n:06d}", "reason": "bench"})
            for n in range(first, min(first + chunk, start + events))
        ]
        log.record_all(batch)


def _run(tmp_path: pathlib.Path, events: int) -> RunLog:
    log = RunLog(tmp_path / "events.jsonl", tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["A", "B"], max_workers=2)
    log.record("task_dispatched", "A", attempt=1, session="s-A", branch="b", worktree="w")
    _grow(log, events // 2)
    log.record("task_crashed", "A", reason="a crash mid-history", text="crashed")
    log.record("task_dispatched", "A", attempt=2, session="s-A", branch="b", worktree="w")
    task_def = {"id": "F1", "subject": "a follow-up", "files": ["f1.txt"]}
    log.record("escape_decided", spawn=True, task="F1", task_def=task_def, key="k1")
    _grow(log, events - events // 2, start=events)
    return log


def _full(log: RunLog) -> t.Any:
    return rebuild(read_events(log.events_path))


def _same_as_full_replay(fold: Fold, events: pathlib.Path) -> None:
    """State, anti-loop counters and added tasks all equal the fold of every event."""
    every = read_events(events)
    assert fold.state == rebuild(every)
    assert fold.guard == LoopGuard().replay(every)
    assert fold.task_defs == [e.data["task_def"] for e in every if e.data.get("task_def")]


def test_a_resume_replays_only_the_events_after_the_snapshot(tmp_path: pathlib.Path) -> None:
    log = _run(tmp_path, SNAPSHOT_EVERY * 2 + 30)
    assert snapshot_path(log.state_path).exists()
    folded = fold_log(log.events_path, log.state_path)
    assert folded.replayed < SNAPSHOT_EVERY
    assert folded.fold.state == _full(log) == log.state
    _same_as_full_replay(folded.fold, log.events_path)
    # the reopened log keeps covering its own appends: the next snapshot is trusted too
    again = RunLog.open(log.events_path, log.state_path)
    _grow(again, SNAPSHOT_EVERY + 5, start=10**5)
    later = fold_log(log.events_path, log.state_path)
    assert later.replayed < SNAPSHOT_EVERY
    assert later.fold.state == _full(log) == again.state
    _same_as_full_replay(later.fold, log.events_path)


class Damage(t.NamedTuple):
    test_id: str
    damage: t.Callable[[pathlib.Path, pathlib.Path], None]


def _cut(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    data = snapshot.read_bytes()
    snapshot.write_bytes(data[: len(data) // 2])


def _garbage(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    snapshot.write_bytes(b"\x00\xffnot json at all")


def _wrong_digest(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    data = json.loads(snapshot.read_text())
    data["events_digest"] = "0" * 64
    snapshot.write_text(json.dumps(data))


def _other_fold(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    """The right offset and digest, but the fold of fewer events than it claims."""
    data = json.loads(snapshot.read_text())
    data["state"]["last_seq"] -= 3
    data["state"]["handled_mail"] = data["state"]["handled_mail"][:-3]
    snapshot.write_text(json.dumps(data))


def _beyond_the_events(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    """The events were cut back (restored from an older copy): the snapshot is newer."""
    raw = events.read_bytes()
    keep = raw[: raw.rfind(b"\n", 0, len(raw) // 3) + 1]
    events.write_bytes(keep)


def _other_events(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    """Same length, other bytes before the offset: the events file was replaced."""
    raw = bytearray(events.read_bytes())
    at = raw.index(b'"m000001"')
    raw[at : at + 9] = b'"x000001"'
    events.write_bytes(bytes(raw))


def _not_a_line_end(snapshot: pathlib.Path, events: pathlib.Path) -> None:
    data = json.loads(snapshot.read_text())
    data["events_offset"] -= 1
    snapshot.write_text(json.dumps(data))


DAMAGES = [
    Damage("truncated", _cut),
    Damage("garbage", _garbage),
    Damage("wrong-digest", _wrong_digest),
    Damage("fold-of-other-events", _other_fold),
    Damage("newer-than-the-events", _beyond_the_events),
    Damage("events-replaced", _other_events),
    Damage("offset-mid-line", _not_a_line_end),
    Damage("missing", lambda snapshot, events: snapshot.unlink()),
]


@pytest.mark.parametrize("case", DAMAGES, ids=[d.test_id for d in DAMAGES])
def test_a_snapshot_that_does_not_cover_these_events_is_not_trusted(
    tmp_path: pathlib.Path, case: Damage
) -> None:
    log = _run(tmp_path, SNAPSHOT_EVERY + 40)
    _grow(log, 25, start=10**5)  # the snapshot is also older than the events
    case.damage(snapshot_path(log.state_path), log.events_path)
    folded = fold_log(log.events_path, log.state_path)
    full = _full(log)
    assert folded.fold.state == full
    _same_as_full_replay(folded.fold, log.events_path)
    assert folded.replayed == len(read_events(log.events_path))  # every event, from the first
    reopened = RunLog.open(log.events_path, log.state_path)
    assert reopened.state == full
    _grow(reopened, SNAPSHOT_EVERY, start=2 * 10**5)  # and a good snapshot is written again
    assert fold_log(log.events_path, log.state_path).replayed < SNAPSHOT_EVERY
    assert current_state(log.events_path, log.state_path) == _full(log)


def test_an_older_snapshot_is_joined_by_the_events_after_it(tmp_path: pathlib.Path) -> None:
    log = _run(tmp_path, SNAPSHOT_EVERY + 10)
    _grow(log, 333, start=10**5)
    folded = fold_log(log.events_path, log.state_path)
    assert 333 <= folded.replayed < SNAPSHOT_EVERY
    assert folded.fold.state == _full(log)


WRITER = textwrap.dedent(
    """
    import itertools, pathlib, sys
    sys.path.insert(0, sys.argv[2])
    from runner.state import RunLog
    here = pathlib.Path(sys.argv[1])
    log = RunLog.open(here / "events.jsonl", here / "state.json")
    if log._state is None:
        log.record("run_created", run_id="r1", tasks=["A"], max_workers=1)
    for n in itertools.count(log.state.last_seq * 100):
        log.record_all([("mail_ignored", None, {"msg_id": f"k{n}-{i}"}) for i in range(n % 9 + 1)])
    """
)


def test_sigkill_between_an_append_and_the_snapshot_loses_nothing(
    tmp_path: pathlib.Path,
) -> None:
    """A real writer process killed with SIGKILL at several points (some while it writes
    the snapshot, some between an append and the snapshot): each time, the fold through the
    snapshot equals the full replay, and the next writer goes on from there."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    events = tmp_path / "events.jsonl"
    for kill in range(5):
        writer = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(ROOT)])
        target = (kill + 1) * 700 + kill * 37
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and writer.poll() is None:
            if events.exists() and events.stat().st_size // 60 >= target:
                break
            time.sleep(0.005)
        assert writer.poll() is None, "the writer died on its own"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        folded = fold_log(events, tmp_path / "state.json")
        _same_as_full_replay(folded.fold, events)
        assert RunLog.open(events, tmp_path / "state.json").state == folded.fold.state
    assert snapshot_path(tmp_path / "state.json").exists()
