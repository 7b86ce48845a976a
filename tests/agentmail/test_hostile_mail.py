"""Mail that cannot blind the mayor (issue 13): delivery numbers come only from the store's
counter. A file under a number the store did not give it is quarantined before it is read and
never moves a cursor, so every later genuine message is still listed and watched."""

from __future__ import annotations

import pathlib
import queue
import subprocess
import sys
import textwrap

from agentmail.store import MailStore, Stored
from agentmail.watch import Watcher
from tests.agentmail.helpers import make_store, msg

COPY_AS_WORKER = textwrap.dedent(
    """
    import pathlib, shutil, sys
    new = pathlib.Path(sys.argv[1]) / "mayor" / "new"
    cur = pathlib.Path(sys.argv[1]) / "mayor" / "cur"
    msg_id, dseq, into = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    old = next(p for d in (new, cur) for p in d.iterdir() if msg_id in p.name)
    name = f"{dseq:012d}.{msg_id}" + (":2,S" if into == "cur" else "")
    shutil.copyfile(old, (cur if into == "cur" else new) / name)
    """
)


def worker_copies(store: MailStore, msg_id: str, dseq: int, into: str = "new") -> None:
    """A separate process, as a worker in a pane: copy an old message of its own into the
    mayor's ``new/`` (or ``cur/``, as read) under delivery number ``dseq``."""
    subprocess.run(
        [sys.executable, "-c", COPY_AS_WORKER, str(store.root), msg_id, str(dseq), into],
        check=True,
        timeout=60,
    )


def bodies(page_messages: tuple[Stored, ...]) -> list[str]:
    return [s.envelope.body_md for s in page_messages]


def test_a_copy_under_a_huge_number_never_moves_the_cursor(tmp_path: pathlib.Path) -> None:
    """Issue 13 as reported: the mayor's cursor jumped past every later genuine message."""
    store = make_store(tmp_path, "mayor", "w1", "w2")
    old = store.send(msg("w1", "mayor", body="old"))
    page = store.list("mayor")
    assert bodies(page.messages) == ["old"]
    store.mark_read("mayor", old.id)
    worker_copies(store, old.id, 999_999_999_999)
    worker_copies(store, old.id, 999_999_999_990, into="cur")
    for i in range(5):
        store.send(msg("w2" if i % 2 else "w1", "mayor", body=f"genuine {i}"))
    mayor = MailStore(store.root)  # the mayor's own process: nothing cached
    later = mayor.list("mayor", cursor=page.next_cursor)
    assert bodies(later.messages) == [f"genuine {i}" for i in range(5)]
    assert later.next_cursor == f"{6:012d}"
    reasons = [reason for _name, reason in mayor.quarantined("mayor")]
    assert len(reasons) == 2 and all("beyond the inbox's counter" in r for r in reasons)
    more = store.send(msg("w1", "mayor", body="after the cursor"))
    assert bodies(mayor.list("mayor", cursor=later.next_cursor).messages) == [more.body_md]


def test_junk_under_a_huge_number_never_moves_the_cursor(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    (
        store.maildir("mayor") / "new" / f"{999_999_999_998:012d}.01ARZ3NDEKTSV4RRFFQ69G5FAV"
    ).write_text("{not even json")
    first = store.list("mayor")
    assert first.messages == () and first.next_cursor is None
    sent = store.send(msg("w1", "mayor", body="genuine"))
    assert [s.id for s in store.list("mayor", cursor=first.next_cursor).messages] == [sent.id]


def test_a_copy_under_a_number_the_store_gave_another_message(tmp_path: pathlib.Path) -> None:
    """Within the counter's range, the delivery record says which message has each number:
    a copy under a used number (a collision) or a number a crashed delivery skipped is not it."""
    store = make_store(tmp_path, "mayor", "w1", "w2")
    old = store.send(msg("w1", "mayor", body="old"))
    cursor = store.list("mayor").next_cursor
    # a number that will be used by the next genuine delivery (the race), and the next one
    worker_copies(store, old.id, 2)
    worker_copies(store, old.id, 3)
    genuine = [store.send(msg("w2", "mayor", body=f"genuine {i}")) for i in range(3)]
    listed = MailStore(store.root).list("mayor", cursor=cursor)
    assert [s.id for s in listed.messages] == [g.id for g in genuine]
    reasons = [reason for _name, reason in store.quarantined("mayor")]
    assert len(reasons) == 2 and all("was not given to message" in r for r in reasons)


def test_inboxes_from_before_delivery_records_refuse_copies_too(tmp_path: pathlib.Path) -> None:
    """An inbox whose .delivery holds only the counter (older swarm): beyond the counter is
    refused, and a second copy of a message already listed is quarantined."""
    store = make_store(tmp_path, "mayor", "w1")
    delivery = store.maildir("mayor") / ".delivery"
    sent = [store.send(msg("w1", "mayor", body=f"m{i}")) for i in range(3)]
    delivery.write_bytes(delivery.read_bytes()[:20])  # the old format: the counter alone
    legacy = MailStore(store.root)
    worker_copies(legacy, sent[0].id, 99_999)
    assert [s.id for s in legacy.list("mayor").messages] == [s.id for s in sent]
    # a copy under a number inside the range (a gap a crashed delivery left): refused as a
    # second copy of a message already listed
    next((store.maildir("mayor") / "new").glob(f"*{sent[1].id}")).unlink()
    worker_copies(legacy, sent[0].id, 2)
    fresh = MailStore(store.root)
    assert [s.id for s in fresh.list("mayor").messages] == [sent[0].id, sent[2].id]
    reasons = [reason for _name, reason in fresh.quarantined("mayor")]
    assert any("beyond the inbox's counter" in r for r in reasons)
    assert any("a copy of message" in r for r in reasons)
    # deliveries from now on are recorded, so the inbox is fully protected again
    later = fresh.send(msg("w1", "mayor", body="recorded"))
    assert fresh.list("mayor", cursor=f"{3:012d}").messages[0].id == later.id


def test_the_watcher_delivers_every_genuine_message_past_a_planted_copy(
    tmp_path: pathlib.Path,
) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    old = store.send(msg("w1", "mayor", body="old"))
    got: queue.Queue[str] = queue.Queue()
    with Watcher(MailStore(store.root), "mayor", lambda s: got.put(s.envelope.body_md)):
        assert got.get(timeout=10) == "old"
        worker_copies(store, old.id, 999_999_999_999)
        worker_copies(store, old.id, 2)
        for i in range(20):
            store.send(msg("w1", "mayor", body=f"genuine {i}"))
        received = [got.get(timeout=10) for _ in range(20)]
    assert received == [f"genuine {i}" for i in range(20)]
    assert got.empty()
    assert len(store.quarantined("mayor")) == 2
