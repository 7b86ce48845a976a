from __future__ import annotations

import multiprocessing
import pathlib
import typing as t

import pytest

from agentmail.errors import BadInput, LeaseConflict, NotHolder, UnknownLease
from agentmail.leases import Leases

FORK = multiprocessing.get_context("fork")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_exclusive_lease_denies_overlaps(tmp_path: pathlib.Path) -> None:
    leases = Leases(tmp_path)
    held = leases.reserve("w1", ["src/app/"], reason="t1")
    assert held.patterns == ("src/app",)
    with pytest.raises(LeaseConflict, match=r"'src/app/models.py' overlaps 'src/app' held by 'w1'"):
        leases.reserve("w2", ["src/app/models.py"])
    with pytest.raises(LeaseConflict):
        leases.reserve("w2", ["src/**/*.py"])  # a glob locks its literal prefix
    leases.reserve("w2", ["docs/"])
    leases.reserve("w1", ["src/app/x.py"])  # an agent never conflicts with itself
    assert [lease.agent for lease in leases.list()] == ["w1", "w2", "w1"]


def test_shared_leases_coexist_but_not_with_exclusive(tmp_path: pathlib.Path) -> None:
    leases = Leases(tmp_path)
    leases.reserve("w1", ["README.md"], exclusive=False)
    leases.reserve("w2", ["README.md"], exclusive=False)
    with pytest.raises(LeaseConflict):
        leases.reserve("w3", ["README.md"])


def test_case_insensitive_overlap(tmp_path: pathlib.Path) -> None:
    leases = Leases(tmp_path, case_sensitive=False)
    leases.reserve("w1", ["Src/"])
    with pytest.raises(LeaseConflict):
        leases.reserve("w2", ["src/a.py"])


def test_expiry_and_renewal(tmp_path: pathlib.Path) -> None:
    clock = Clock()
    leases = Leases(tmp_path, clock=clock)
    held = leases.reserve("w1", ["a.py"], ttl=10)
    clock.now += 5
    renewed = leases.renew(held.id, "w1", ttl=10)
    assert renewed.expires == clock.now + 10
    clock.now += 9
    with pytest.raises(LeaseConflict):
        leases.reserve("w2", ["a.py"])
    clock.now += 2
    assert leases.list() == ()
    leases.reserve("w2", ["a.py"])
    with pytest.raises(UnknownLease):
        leases.renew(held.id, "w1", ttl=10)


def test_release_by_holder_only(tmp_path: pathlib.Path) -> None:
    leases = Leases(tmp_path)
    a = leases.reserve("w1", ["a.py"])
    leases.reserve("w1", ["b.py"])
    leases.reserve("w2", ["c.py"])
    with pytest.raises(NotHolder, match="held by 'w1', not 'w2'"):
        leases.release(a.id, "w2")
    with pytest.raises(NotHolder):
        leases.renew(a.id, "w2", ttl=5)
    assert leases.release(a.id, "w1") == 1
    with pytest.raises(UnknownLease):
        leases.release(a.id, "w1")
    assert leases.release(None, "w1") == 1
    assert [lease.agent for lease in leases.list()] == ["w2"]
    assert leases.release(None, "w1") == 0


class BadLease(t.NamedTuple):
    test_id: str
    agent: str
    patterns: list[str]
    ttl: float


BAD: t.Final = [
    BadLease("traversal_pattern", "w1", ["../etc/passwd"], 10),
    BadLease("absolute_pattern", "w1", ["/etc/passwd"], 10),
    BadLease("no_patterns", "w1", [], 10),
    BadLease("bad_agent", "../mayor", ["a.py"], 10),
    BadLease("zero_ttl", "w1", ["a.py"], 0),
]


@pytest.mark.parametrize(BadLease._fields, BAD, ids=[c.test_id for c in BAD])
def test_bad_reservations_fail_closed(
    tmp_path: pathlib.Path, test_id: str, agent: str, patterns: list[str], ttl: float
) -> None:
    with pytest.raises(BadInput):
        Leases(tmp_path).reserve(agent, patterns, ttl=ttl)
    assert Leases(tmp_path).list() == ()


def _race(root: str, agent: str, start: t.Any, results: t.Any) -> None:
    start.wait()
    try:
        Leases(pathlib.Path(root)).reserve(agent, ["src/core/"], reason="race")
        results.put((agent, "won"))
    except LeaseConflict:
        results.put((agent, "lost"))


def test_twenty_processes_race_and_exactly_one_wins(tmp_path: pathlib.Path) -> None:
    for trial in range(5):
        root = tmp_path / f"trial{trial}"
        root.mkdir()
        start = FORK.Event()
        results: multiprocessing.Queue[tuple[str, str]] = FORK.Queue()
        procs = [
            FORK.Process(target=_race, args=(str(root), f"w{i}", start, results)) for i in range(20)
        ]
        for proc in procs:
            proc.start()
        start.set()
        outcomes = [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=30)
            assert proc.exitcode == 0
        winners = [agent for agent, outcome in outcomes if outcome == "won"]
        assert len(winners) == 1, outcomes
        (lease,) = Leases(root).list()
        assert lease.agent == winners[0]
