from __future__ import annotations

import collections
import multiprocessing
import pathlib
import queue
import threading
import time
import typing as t

import pytest

from agentmail.errors import UnknownAgent
from agentmail.store import MailStore, Stored
from agentmail.watch import Watcher
from tests.agentmail.helpers import make_store, msg, send_many

# spawn, not fork: a forked child would inherit a lock held by the watcher thread
SPAWN = multiprocessing.get_context("spawn")


@pytest.fixture(autouse=True)
def _no_thread_leaks() -> t.Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        leaked = [th for th in threading.enumerate() if th not in before and th.is_alive()]
        if not leaked:
            return
        time.sleep(0.01)
    raise AssertionError(f"threads leaked: {leaked}")


def _drain(q: queue.Queue[Stored], count: int, timeout: float = 30.0) -> list[Stored]:
    out: list[Stored] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        out.append(q.get(timeout=max(0.01, deadline - time.monotonic())))
    return out


class Mode(t.NamedTuple):
    test_id: str
    polling: bool


MODES: t.Final = [Mode("inotify", False), Mode("polling", True)]


@pytest.mark.parametrize(Mode._fields, MODES, ids=[m.test_id for m in MODES])
def test_watcher_delivers_existing_unread_then_new(
    tmp_path: pathlib.Path, test_id: str, polling: bool
) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    old_read = store.send(msg("w1", "mayor", body="old read"))
    store.mark_read("mayor", old_read.id)
    store.send(msg("w1", "mayor", body="old unread"))
    got: queue.Queue[Stored] = queue.Queue()
    with Watcher(store, "mayor", got.put, polling=polling, rescan_interval=0.2):
        assert [s.envelope.body_md for s in _drain(got, 1)] == ["old unread"]
        sender = MailStore(store.root)
        for i in range(5):
            sender.send(msg("w1", "mayor", body=str(i)))
        assert [s.envelope.body_md for s in _drain(got, 5)] == ["0", "1", "2", "3", "4"]
        with pytest.raises(queue.Empty):
            got.get(timeout=0.3)  # nothing twice


def test_include_read_delivers_everything(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    first = store.send(msg("w1", "mayor", body="a"))
    store.mark_read("mayor", first.id)
    got: queue.Queue[Stored] = queue.Queue()
    with Watcher(store, "mayor", got.put, include_read=True):
        (stored,) = _drain(got, 1)
        assert stored.read and stored.id == first.id


def test_watcher_on_unknown_agent_fails(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor")
    with pytest.raises(UnknownAgent):
        Watcher(store, "ghost", lambda s: None)


def test_callback_errors_do_not_stop_the_watcher(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    got: queue.Queue[Stored] = queue.Queue()

    def callback(stored: Stored) -> None:
        got.put(stored)
        if stored.envelope.body_md == "boom":
            raise RuntimeError("handler bug")

    with Watcher(store, "mayor", callback, rescan_interval=0.2):
        store.send(msg("w1", "mayor", body="boom"))
        store.send(msg("w1", "mayor", body="fine"))
        assert [s.envelope.body_md for s in _drain(got, 2)] == ["boom", "fine"]


def test_forgeries_never_reach_the_callback(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    got: queue.Queue[Stored] = queue.Queue()
    with Watcher(store, "mayor", got.put, rescan_interval=0.2):
        store.send(msg("w1", "mayor", body="forged"), key=b"w2 guessed this" * 2)
        store.send(msg("w1", "mayor", body="real"))
        assert [s.envelope.body_md for s in _drain(got, 1)] == ["real"]
        with pytest.raises(queue.Empty):
            got.get(timeout=0.3)
    assert "bad signature" in store.quarantined("mayor")[0][1]


def test_rescan_finds_mail_without_any_event(tmp_path: pathlib.Path) -> None:
    """With the observer blind (polling with a long period), the timer rescan delivers."""
    store = make_store(tmp_path, "mayor", "w1")
    got: queue.Queue[Stored] = queue.Queue()
    watcher = Watcher(store, "mayor", got.put, rescan_interval=0.1, polling=True)
    watcher.start()
    try:
        store.send(msg("w1", "mayor", body="quiet"))
        assert _drain(got, 1)[0].envelope.body_md == "quiet"
    finally:
        watcher.stop()


@pytest.mark.timeout(300)  # about 20 s on an idle 2-core machine; generous for a busy one
def test_burst_of_20000_is_delivered_exactly_once_in_sender_order(tmp_path: pathlib.Path) -> None:
    senders = [f"s{i}" for i in range(4)]
    store = make_store(tmp_path, "mayor", *senders)
    got: queue.Queue[Stored] = queue.Queue()
    per_sender = 5000
    with Watcher(store, "mayor", got.put):
        procs = [
            SPAWN.Process(
                target=send_many,
                args=(str(store.root), s, ["mayor"], per_sender, str(tmp_path / f"{s}.log")),
            )
            for s in senders
        ]
        for proc in procs:
            proc.start()
        delivered = _drain(got, per_sender * len(senders), timeout=250)
        for proc in procs:
            proc.join(timeout=30)
            assert proc.exitcode == 0
        with pytest.raises(queue.Empty):
            got.get(timeout=0.3)
    ids = [s.id for s in delivered]
    assert len(set(ids)) == len(ids) == 20_000
    seqs: dict[str, list[int]] = collections.defaultdict(list)
    for stored in delivered:
        seqs[stored.envelope.sender].append(stored.envelope.seq)
    for sender in senders:
        assert seqs[sender] == list(range(1, per_sender + 1)), sender


def test_message_moved_to_cur_before_the_watcher_saw_it_is_not_skipped(
    tmp_path: pathlib.Path,
) -> None:
    """An acked-but-unread message that left new/ early still arrives, in order."""
    store = make_store(tmp_path, "mayor", "w1")
    got: queue.Queue[Stored] = queue.Queue()
    hold = threading.Event()

    def callback(stored: Stored) -> None:
        got.put(stored)
        if stored.envelope.body_md == "m0":
            hold.wait(10)

    with Watcher(store, "mayor", callback, rescan_interval=60):
        store.send(msg("w1", "mayor", body="m0"))
        assert _drain(got, 1)[0].envelope.body_md == "m0"  # the watcher is now held
        m1 = store.send(msg("w1", "mayor", body="m1"))
        store.ack("mayor", m1.id)  # moved to cur/ (acked, still unread) behind its back
        store.send(msg("w1", "mayor", body="m2"))
        hold.set()
        assert [s.envelope.body_md for s in _drain(got, 2, timeout=10)] == ["m1", "m2"]
