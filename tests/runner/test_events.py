"""runner.events: one reader of ``events.jsonl`` (replay and tail), one bad-line policy."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from protocol.state import Event
from runner.errors import UsageError
from runner.events import EventTail, read_events


def line(seq: int, kind: str = "task_skipped") -> bytes:
    event = Event(seq=seq, run_id="r1", kind=kind, task_id="A", data={})
    return event.model_dump_json().encode() + b"\n"


def seqs(events: t.Iterable[Event]) -> list[int]:
    return [event.seq for event in events]


class ReplayCase(t.NamedTuple):
    test_id: str
    raw: bytes
    expected: list[int]


REPLAY_CASES = [
    ReplayCase("empty", b"", []),
    ReplayCase("whole-lines", line(1) + line(2), [1, 2]),
    ReplayCase("blank-lines", line(1) + b"\n  \n" + line(2), [1, 2]),
    ReplayCase("torn-garbage", line(1) + b'{"v":1,"seq":2,"ki', [1]),
    ReplayCase("torn-but-parseable", line(1) + line(2).rstrip(b"\n"), [1]),
]


@pytest.mark.parametrize("case", REPLAY_CASES, ids=[c.test_id for c in REPLAY_CASES])
def test_replay(tmp_path: pathlib.Path, case: ReplayCase) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(case.raw)
    assert seqs(read_events(path)) == case.expected


def test_replay_of_a_missing_file(tmp_path: pathlib.Path) -> None:
    assert read_events(tmp_path / "nope.jsonl") == []


class CorruptCase(t.NamedTuple):
    test_id: str
    raw: bytes
    where: str


CORRUPT_CASES = [
    CorruptCase("first", b"garbage\n" + line(1), ":1:"),
    CorruptCase("middle", line(1) + b"\n" + b"{}\n" + line(2), ":3:"),
    CorruptCase("last-complete", line(1) + b"garbage\n", ":2:"),
]


@pytest.mark.parametrize("case", CORRUPT_CASES, ids=[c.test_id for c in CORRUPT_CASES])
def test_a_corrupt_complete_line_names_file_and_line(
    tmp_path: pathlib.Path, case: CorruptCase
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(case.raw)
    with pytest.raises(UsageError, match=f"events.jsonl{case.where} corrupt event line"):
        read_events(path)
    with pytest.raises(UsageError, match=f"events.jsonl{case.where} corrupt event line"):
        EventTail(path).read()


def test_tail_reads_only_what_was_appended(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = EventTail(path)
    assert tail.read() == ([], False)  # no file yet
    path.write_bytes(line(1))
    assert seqs(tail.read().events) == [1]
    assert tail.read().events == []
    with path.open("ab") as fh:
        fh.write(line(2) + line(3))
    assert seqs(tail.read().events) == [2, 3]
    assert (tail.offset, tail.lineno) == (path.stat().st_size, 3)


def test_tail_waits_for_a_torn_line(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(1))
    tail = EventTail(path)
    tail.read()
    raw = line(2)
    with path.open("ab") as fh:
        fh.write(raw[:10])
    assert tail.read().events == []
    with path.open("ab") as fh:
        fh.write(raw[10:])
    assert seqs(tail.read().events) == [2]


def test_tail_counts_lines_across_reads(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(1) + b"\n")
    tail = EventTail(path)
    tail.read()
    with path.open("ab") as fh:
        fh.write(b"garbage\n")
    for _ in range(2):  # not consumed: the same error again
        with pytest.raises(UsageError, match=r"events.jsonl:3: corrupt"):
            tail.read()


def test_tail_restarts_on_a_replaced_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(1) + line(2))
    tail = EventTail(path)
    tail.read()
    path.write_bytes(line(7))
    chunk = tail.read()
    assert chunk.restarted and seqs(chunk.events) == [7]
    assert tail.lineno == 1


def test_replay_and_tail_agree(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "events.jsonl"
    raw = line(1) + line(2) + b"\n" + line(3) + b'{"torn'
    path.write_bytes(raw)
    tail = EventTail(path)
    assert tail.read().events == read_events(path)


def test_every_follower_has_the_same_policy(tmp_path: pathlib.Path) -> None:
    """The dashboard and ``swarm run``'s follow read through the same tail: a corrupt line is
    an error naming it, not a skipped event (dashboard) or a bare ValidationError (follow)."""
    from runner import launch
    from runner.dashboard import EventTail as DashboardTail
    from runner.paths import SwarmPaths

    run = SwarmPaths.for_repo(tmp_path).run("r1")
    run.dir.mkdir(parents=True)
    run.events.write_bytes(line(1, "run_created").replace(b'"data":{}', b'"data":{"tasks":[]}'))
    with run.events.open("ab") as fh:
        fh.write(b"garbage\n")
    with pytest.raises(UsageError, match=r"events.jsonl:2: corrupt event line"):
        DashboardTail(run.events).poll()
    with pytest.raises(UsageError, match=r"events.jsonl:2: corrupt event line"):
        launch.follow(tmp_path, "r1", mayor_alive=lambda: True, poll=0.01)
