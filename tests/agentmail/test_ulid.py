from __future__ import annotations

import time
import typing as t

import pytest

from agentmail import ulid


def test_ulids_are_monotonic_within_a_generator() -> None:
    gen = ulid.UlidGenerator()
    ids = [gen.new() for _ in range(5000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(ulid.is_ulid(i) for i in ids)


def test_ulid_encodes_millisecond_time() -> None:
    before = int(time.time() * 1000)
    value = ulid.UlidGenerator().new()
    after = int(time.time() * 1000)
    assert before <= ulid.timestamp_ms(value) <= after


def test_clock_going_back_keeps_order() -> None:
    times = iter([1000.0, 1000.0, 999.0, 1000.5])
    gen = ulid.UlidGenerator(clock=lambda: next(times))
    ids = [gen.new() for _ in range(4)]
    assert ids == sorted(ids)
    assert ulid.timestamp_ms(ids[2]) == 1_000_000


def test_ids_from_different_generators_sort_by_millisecond() -> None:
    now = [1.0]
    a = ulid.UlidGenerator(clock=lambda: now[0])
    b = ulid.UlidGenerator(clock=lambda: now[0])
    first = a.new()
    now[0] = 1.002
    second = b.new()
    assert first < second


class Bad(t.NamedTuple):
    test_id: str
    text: str


BAD: t.Final = [
    Bad("short", "01ARZ3NDEKTSV4RRFFQ69G5FA"),
    Bad("letter_u", "01ARZ3NDEKTSV4RRFFQ69G5FAU"),
    Bad("lowercase", "01arz3ndektsv4rrffq69g5fav"),
    Bad("overflow", "81ARZ3NDEKTSV4RRFFQ69G5FAV"),
]


@pytest.mark.parametrize(Bad._fields, BAD, ids=[c.test_id for c in BAD])
def test_invalid_ulids_are_refused(test_id: str, text: str) -> None:
    assert not ulid.is_ulid(text)
    with pytest.raises(ValueError, match="invalid ULID"):
        ulid.decode(text)


def test_round_trip() -> None:
    value = ulid.UlidGenerator().new()
    assert ulid.encode(ulid.decode(value)) == value
