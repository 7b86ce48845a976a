"""ULIDs: 48-bit millisecond time + 80 random bits, 26 characters of Crockford base32.

Ids sort by creation time across processes (to the millisecond). Within one generator they are
strictly increasing: inside the same millisecond (or if the clock steps back) the random part of
the previous id is incremented instead of drawn again.
"""

from __future__ import annotations

import os
import re
import threading
import time
import typing as t

ALPHABET: t.Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
ULID_RE: t.Final = re.compile(r"[0-7][0-9A-HJKMNP-TV-Z]{25}")
_RANDOM_BITS: t.Final = 80
_RANDOM_MAX: t.Final = (1 << _RANDOM_BITS) - 1
_TIME_MAX: t.Final = (1 << 48) - 1


def encode(value: int) -> str:
    """The 26-character Crockford base32 form of a 128-bit integer."""
    chars = []
    for _ in range(26):
        chars.append(ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def decode(text: str) -> int:
    if not ULID_RE.fullmatch(text):
        raise ValueError(f"invalid ULID {text!r}: expected 26 characters of Crockford base32")
    value = 0
    for char in text:
        value = (value << 5) | ALPHABET.index(char)
    return value


def timestamp_ms(text: str) -> int:
    """The millisecond Unix time encoded in a ULID."""
    return decode(text) >> _RANDOM_BITS


def is_ulid(text: str) -> bool:
    return bool(ULID_RE.fullmatch(text))


class UlidGenerator:
    """Monotonic ULIDs for one process (thread-safe)."""

    def __init__(self, clock: t.Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self) -> str:
        with self._lock:
            now = min(int(self._clock() * 1000), _TIME_MAX)
            if now <= self._last_ms:
                # same millisecond, or the clock went back: stay on the last time, count up
                now = self._last_ms
                rand = self._last_rand + 1
                if rand > _RANDOM_MAX:  # 2**80 ids in one millisecond: move time on
                    now += 1
                    rand = int.from_bytes(os.urandom(10), "big") >> 1
            else:
                # keep headroom below the maximum so increments never overflow in practice
                rand = int.from_bytes(os.urandom(10), "big") >> 1
            self._last_ms, self._last_rand = now, rand
            return encode((now << _RANDOM_BITS) | rand)
