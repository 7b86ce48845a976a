"""Inbox pages from the delivery records (agentmail.ledger): newest first and forward, before and
after cursors, every message exactly once, in O(page): no directory listing per page."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import typing as t

import pytest

from agentmail.store import MailStore, Page
from tests.agentmail.helpers import make_store, msg

ROOT: t.Final = pathlib.Path(__file__).resolve().parents[2]


def _inbox(tmp_path: pathlib.Path, count: int) -> MailStore:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    for i in range(count):
        store.send(msg("w1" if i % 3 else "w2", "mayor", body=f"m{i}"))
    return store


def _bodies(page: Page) -> list[str]:
    return [s.envelope.body_md for s in page.messages]


def _page_all(store: MailStore, *, newest: bool, limit: int, **filters: t.Any) -> list[str]:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        if newest:
            page = store.list("mayor", newest=True, before=cursor, limit=limit, **filters)
        else:
            page = store.list("mayor", cursor=cursor, limit=limit, **filters)
        seen += _bodies(page)
        cursor = page.next_cursor
        if not page.has_more:
            return seen


@pytest.mark.parametrize("limit", [1, 7, 50, 500])
def test_paging_either_way_lists_every_message_once(tmp_path: pathlib.Path, limit: int) -> None:
    store = _inbox(tmp_path, 130)
    everything = [f"m{i}" for i in range(130)]
    fresh = MailStore(store.root)
    assert _page_all(fresh, newest=False, limit=limit) == everything
    assert _page_all(fresh, newest=True, limit=limit) == everything[::-1]
    only_w2 = [f"m{i}" for i in range(130) if i % 3 == 0]
    assert _page_all(fresh, newest=True, limit=limit, sender="w2") == only_w2[::-1]


def test_newest_first_with_before_and_after(tmp_path: pathlib.Path) -> None:
    store = _inbox(tmp_path, 20)
    page = store.list("mayor", newest=True, limit=5)
    assert _bodies(page) == ["m19", "m18", "m17", "m16", "m15"]
    assert page.has_more and page.next_cursor == f"{16:012d}"  # m15 is delivery 16
    older = store.list("mayor", newest=True, before=page.next_cursor, limit=3)
    assert _bodies(older) == ["m14", "m13", "m12"]
    window = store.list("mayor", cursor=f"{4:012d}", before=f"{8:012d}")
    assert _bodies(window) == ["m4", "m5", "m6"]
    by_id = store.list("mayor", newest=True, before=page.messages[-1].id, limit=1)
    assert _bodies(by_id) == ["m14"]
    assert store.list("mayor", newest=True, before=f"{1:012d}").messages == ()


def test_read_acked_quarantined_and_foreign_flags(tmp_path: pathlib.Path) -> None:
    """A page finds a message wherever its flags put it (our own, another Maildir client's) and
    skips what is no longer there (quarantined) or never was (a delivery that crashed)."""
    store = _inbox(tmp_path, 6)
    ids = [s.id for s in store.list("mayor").messages]
    store.mark_read("mayor", ids[1])
    store.ack("mayor", ids[2])
    cur = store.maildir("mayor") / "cur"
    new = store.maildir("mayor") / "new"
    (moved,) = new.glob(f"*{ids[3]}")
    moved.rename(cur / f"{moved.name}:2,FS")  # mutt flagged and read it
    (gone,) = new.glob(f"*{ids[4]}")
    gone.unlink()  # as if quarantined by another reader
    newest = MailStore(store.root).list("mayor", newest=True)
    assert [s.id for s in newest.messages] == [ids[5], ids[3], ids[2], ids[1], ids[0]]
    assert [s.read for s in newest.messages] == [False, True, False, True, False]
    assert newest.messages[2].acked


def test_a_planted_file_is_never_listed(tmp_path: pathlib.Path) -> None:
    """Newest first starts from the inbox's counter and reads only what the records name: a
    worker's copy under a huge number, or under a number given to another message, is not it."""
    store = _inbox(tmp_path, 3)
    (first,) = (store.maildir("mayor") / "new").glob("000000000001.*")
    shutil.copy(first, store.maildir("mayor") / "new" / f"{999_999_999_999:012d}.{first.name[13:]}")
    shutil.copy(first, store.maildir("mayor") / "new" / f"{2:012d}.{first.name[13:]}")
    page = MailStore(store.root).list("mayor", newest=True)
    assert _bodies(page) == ["m2", "m1", "m0"]
    forward = MailStore(store.root).list("mayor")  # the mayor's way: also sweeps them away
    assert _bodies(forward) == ["m0", "m1", "m2"]
    assert len(store.quarantined("mayor")) == 2


def test_an_inbox_from_before_the_records_is_still_listed(tmp_path: pathlib.Path) -> None:
    store = _inbox(tmp_path, 12)
    delivery = store.maildir("mayor") / ".delivery"
    delivery.write_bytes(delivery.read_bytes()[:20])  # an older swarm: the counter alone
    legacy = MailStore(store.root)
    assert _page_all(legacy, newest=True, limit=5) == [f"m{i}" for i in range(12)][::-1]
    assert _page_all(legacy, newest=False, limit=5) == [f"m{i}" for i in range(12)]
    legacy.send(msg("w1", "mayor", body="recorded"))  # records begin again here
    assert _bodies(legacy.list("mayor", newest=True, limit=2)) == ["recorded", "m11"]


LIST_PAGES: t.Final = """
import sys
from agentmail.store import MailStore
store = MailStore(__import__("pathlib").Path(sys.argv[1]))
newest = sys.argv[2] == "newest"
cursor, count = None, 0
while True:
    if newest:
        page = store.list("mayor", newest=True, before=cursor, limit=20)
    else:
        page = store.list("mayor", cursor=cursor, limit=20)
    count += len(page.messages)
    cursor = page.next_cursor
    if not page.has_more:
        break
print(count)
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize(("order", "listings"), [("newest", 0), ("forward", 2)])
def test_a_page_does_not_list_the_directory(
    tmp_path: pathlib.Path, order: str, listings: int
) -> None:
    """Counted with strace on a real process: paging newest first opens ``new/`` and ``cur/``
    as directories never; paging forward, once each (the sweep), not once per page."""
    store = _inbox(tmp_path, 200)
    trace = tmp_path / "trace.txt"
    result = subprocess.run(
        ["strace", "-f", "-e", "trace=openat", "-o", str(trace),
         sys.executable, "-c", LIST_PAGES, str(store.root), order],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "200"
    box = str(store.maildir("mayor"))
    opened = [
        line
        for line in trace.read_text().splitlines()
        if "O_DIRECTORY" in line and (f'"{box}/new"' in line or f'"{box}/cur"' in line)
    ]
    assert len(opened) == listings, opened
