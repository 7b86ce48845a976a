"""Watch one inbox and hand each new message to a callback, exactly once, in delivery order.

A watchdog observer on the inbox's ``new/`` directory only *wakes* the watcher; every wake-up,
and a timer (``rescan_interval``), rescans the inbox from the watcher's cursor. A coalesced,
dropped or overflowed inotify event therefore delays a message by at most one interval and never
loses it. Where inotify cannot start (no support, watch limit reached) a polling observer is
used instead.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import typing as t

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from agentmail.errors import UnknownAgent
from agentmail.store import MailStore, Stored

logger = logging.getLogger(__name__)

Callback = t.Callable[[Stored], None]


class Wake(FileSystemEventHandler):
    """Calls ``on_event`` on every file system event (a wake-up; the rescan is what counts)."""

    def __init__(self, on_event: t.Callable[[], None]) -> None:
        super().__init__()
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._on_event()


def start_observer(
    handler: FileSystemEventHandler,
    directory: pathlib.Path,
    *,
    polling: bool = False,
    poll_interval: float = 1.0,
    recursive: bool = False,
) -> BaseObserver:
    """A started watchdog observer on ``directory`` (``recursive``: and every folder in it):
    inotify where it can be had, else a polling observer (no inotify, or the per-user instance
    limit reached)."""
    if not polling:
        observer: BaseObserver = Observer()
        try:
            observer.schedule(handler, str(directory), recursive=recursive)
            observer.daemon = True
            observer.start()
            return observer
        except OSError as exc:
            logger.warning("inotify unavailable, polling instead: %s", exc)
            try:
                observer.stop()
            except Exception:  # best effort: the observer never ran
                pass
    observer = PollingObserver(timeout=poll_interval)
    observer.schedule(handler, str(directory), recursive=recursive)
    observer.daemon = True
    observer.start()
    return observer


class Watcher:
    """Deliver the messages of ``agent``'s inbox to ``callback`` (from a worker thread: the
    watcher's own, or watchdog's dispatcher right after an event; never two at once).

    On start every unread message already there is delivered (every message with
    ``include_read``), then each new one as it arrives. Each message reaches the callback once
    per watcher (deduplicated by id), in delivery order, which keeps each sender's ``seq`` order.
    An exception raised by the callback is logged and the watcher goes on.
    """

    def __init__(
        self,
        store: MailStore,
        agent: str,
        callback: Callback,
        *,
        rescan_interval: float = 2.0,
        include_read: bool = False,
        polling: bool = False,
    ) -> None:
        if not store.is_registered(agent):
            raise UnknownAgent(agent, store.root)
        self.store = store
        self.agent = agent
        self.callback = callback
        self.rescan_interval = rescan_interval
        self.include_read = include_read
        self.polling = polling
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._started = threading.Event()  # the first full scan is done
        self._scanning = threading.Lock()
        self._cursor: str | None = None
        self._seen: set[str] = set()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self.delivered = 0

    @property
    def cursor(self) -> str | None:
        return self._cursor

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("watcher already started")
        self._stopping.clear()
        self._started.clear()
        self._observer = self._start_observer()
        self._thread = threading.Thread(
            target=self._run, name=f"agentmail-watch-{self.agent}", daemon=True
        )
        self._thread.start()

    def _start_observer(self) -> BaseObserver:
        new_dir = self.store.maildir(self.agent) / "new"
        return start_observer(
            Wake(self._on_event),
            new_dir,
            polling=self.polling,
            poll_interval=min(self.rescan_interval, 1.0),
        )

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            if self._thread is not threading.current_thread():
                self._thread.join()
            self._thread = None
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None

    def wake(self) -> None:
        """Ask for a rescan now (e.g. after the caller knows mail was sent)."""
        self._wake.set()

    def _on_event(self) -> None:
        """An inotify event (watchdog's dispatcher thread): scan right here when no scan is
        running, saving a thread switch on the way to the callback; else leave it to the
        worker thread, which rescans once the running scan ends."""
        self._wake.set()
        if not self._started.is_set() or not self._scanning.acquire(blocking=False):
            return
        try:
            self._wake.clear()
            if not self._stopping.is_set():
                self._scan_after_wake(woken=True)
        finally:
            self._scanning.release()

    def _run(self) -> None:
        with self._scanning:
            self._scan_after_wake(woken=False)  # the first scan is a full one
            self._started.set()
        while not self._stopping.is_set():
            woken = self._wake.wait(self.rescan_interval)
            if self._stopping.is_set():
                break
            with self._scanning:
                self._wake.clear()
                self._scan_after_wake(woken=woken)

    def _scan_after_wake(self, *, woken: bool) -> None:
        """A quick scan after an event, a full one on the timer (or when the quick one
        cannot tell). Runs under ``_scanning``: one scan at a time, so cursor and dedupe
        need no other lock."""
        try:
            if not woken or not self._quick_scan():
                self._full_scan()
        except Exception:
            logger.exception("inbox scan failed", extra={"agent": self.agent})

    def _quick_scan(self) -> bool:
        """After a wake-up: read ``new/`` only. True if that was enough.

        It is enough when the deliveries found follow the cursor without a gap: then nothing
        in between can be in ``cur/`` (read or acked by someone else before we saw it). A gap
        (or an empty ``new/`` with ``include_read``) asks for the full scan of ``new/`` and
        ``cur/``; the timer does a full scan anyway.
        """
        after = self.store.parse_cursor(self.agent, self._cursor)
        entries = self.store._scan(self.agent, after=after, include_cur=False)
        if not entries:
            return not self.include_read
        if entries[0].dseq != after + 1 or entries[-1].dseq != after + len(entries):
            return False
        count = 0
        for entry in entries:
            if self._stopping.is_set():
                break
            stored = self.store._load(self.agent, entry)
            self._cursor = f"{entry.dseq:012d}"
            if stored is not None and self._deliver(stored):
                count += 1
        self.delivered += count
        return True

    def _deliver(self, stored: Stored) -> bool:
        if stored.id in self._seen:
            return False
        self._seen.add(stored.id)
        try:
            self.callback(stored)
        except Exception:
            logger.exception(
                "mail callback failed", extra={"agent": self.agent, "msg_id": stored.id}
            )
        return True

    def scan(self) -> int:
        """Deliver everything after the cursor now; return how many messages were delivered."""
        with self._scanning:
            return self._full_scan()

    def _full_scan(self) -> int:
        count = 0
        while not self._stopping.is_set():
            page = self.store.list(
                self.agent,
                cursor=self._cursor,
                limit=1000,
                unread=None if self.include_read else True,
            )
            for stored in page.messages:
                if self._deliver(stored):
                    count += 1
            if page.next_cursor is not None:
                self._cursor = page.next_cursor
            if not page.has_more:
                break
        self.delivered += count
        return count
