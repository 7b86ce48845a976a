"""Agent Mail benchmark: durable send latency, send -> callback latency (watcher vs. a 1 s
poller, the pattern of the agentops and MCP Agent Mail hooks), durable throughput with 1 and 8
writers, and paging an inbox of 10,000 (newest 50; all of it in pages of 50, both ways).
Prints a markdown table; ``--quick`` for a short run; ``--json FILE`` writes the figures.

    .venv/bin/python scripts/bench/mail.py [--quick] [--json FILE] [--dir DIR]

Senders run in their own processes (spawned, as agents would be); times that cross processes use
CLOCK_MONOTONIC, which is system-wide on Linux.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pathlib
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import typing as t

ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentmail.store import MailStore, Stored  # noqa: E402
from agentmail.watch import Watcher  # noqa: E402
from protocol.messages import Envelope, MessageType  # noqa: E402

BODY: t.Final = "Bead: t1\nStep: Step 2\nStatus: working\nContext usage: 40%\n" + "x" * 200
SPAWN = multiprocessing.get_context("spawn")


def _envelope(sender: str, body: str, to: str = "sink") -> Envelope:
    return Envelope.model_validate(
        {
            "from": sender,
            "to": [to],
            "type": MessageType.PROGRESS,
            "subject": "[t1] PROGRESS",
            "body_md": body,
            "thread_id": "t1",
        }
    )


def percentiles(samples: t.Sequence[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


# ------------------------------------------------------------------------------ measurements


def send_latency(root: pathlib.Path, count: int) -> dict[str, float]:
    """Milliseconds per durable send (fsynced, signed, validated), one writer."""
    store = MailStore(root)
    for i in range(50):  # warm-up
        store.send(_envelope("w0", BODY + str(i)))
    samples = []
    for i in range(count):
        env = _envelope("w0", BODY + str(i))
        start = time.perf_counter()
        store.send(env)
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def fsync_floor(base: pathlib.Path, count: int) -> dict[str, float]:
    """Milliseconds for the bare disk work of one message (create, write, fsync the file and
    the directory): the floor under a durable send, measured in the same run."""
    import os

    directory = base / "floor"
    directory.mkdir()
    data = ("x" * 900).encode()
    samples = []
    for i in range(count):
        start = time.perf_counter()
        fd = os.open(directory / f"m{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        os.fsync(dir_fd)
        os.close(dir_fd)
        samples.append((time.perf_counter() - start) * 1000)
    return percentiles(samples)


def _timed_sender(
    root: str, sender: str, receiver: str, count: int, interval: float, go: t.Any
) -> None:
    store = MailStore(pathlib.Path(root))
    go.wait()
    for _ in range(count):
        # the send time travels in the body; the receiver subtracts it on its own clock
        store.send(_envelope(sender, f"{time.monotonic_ns()}\n{BODY}", to=receiver))
        time.sleep(interval)


def _sent_ns(stored: Stored) -> int:
    return int(stored.envelope.body_md.split("\n", 1)[0])


def watch_latency(root: pathlib.Path, count: int, interval: float) -> dict[str, float]:
    """Milliseconds from send() start to the watcher callback (a message every ``interval``)."""
    store = MailStore(root)
    got: queue.Queue[tuple[float, str]] = queue.Queue()

    def callback(stored: Stored) -> None:
        # as the mayor does: note the message and hand it to the main loop
        got.put(((time.monotonic_ns() - _sent_ns(stored)) / 1e6, stored.id))

    go = SPAWN.Event()
    args = (str(root), "w1", "mayor", count, interval, go)
    proc = SPAWN.Process(target=_timed_sender, args=args)
    proc.start()
    samples = []
    with Watcher(store, "mayor", callback):
        go.set()
        for _ in range(count):
            latency, msg_id = got.get(timeout=60)
            samples.append(latency)
            store.mark_read("mayor", msg_id)  # the effect is recorded: mark it read
    proc.join(timeout=60)
    return percentiles(samples)


def poll_latency(
    root: pathlib.Path, count: int, interval: float, period: float
) -> dict[str, float]:
    """The same, for a receiver that lists the inbox every ``period`` seconds."""
    store = MailStore(root)
    cursor = store.list("poller").next_cursor
    go = SPAWN.Event()
    proc = SPAWN.Process(
        target=_timed_sender, args=(str(root), "w2", "poller", count, interval, go)
    )
    proc.start()
    go.set()
    samples: list[float] = []
    deadline = time.monotonic() + count * interval * 3 + 30
    while len(samples) < count and time.monotonic() < deadline:
        time.sleep(period)
        page = store.list("poller", cursor=cursor)
        now = time.monotonic_ns()
        samples.extend(
            (now - _sent_ns(s)) / 1e6 for s in page.messages if s.envelope.sender == "w2"
        )
        cursor = page.next_cursor
    proc.join(timeout=60)
    return percentiles(samples)


def _bulk_sender(root: str, sender: str, count: int, ready: t.Any, go: t.Any) -> None:
    store = MailStore(pathlib.Path(root))
    store.send(_envelope(sender, "warm-up"))
    ready.release()
    go.wait()
    for i in range(count):
        store.send(_envelope(sender, BODY + str(i)))


def throughput(root: pathlib.Path, writers: int, total: int) -> dict[str, float]:
    """Durable messages per second into one inbox with ``writers`` processes."""
    per = max(1, total // writers)
    ready = SPAWN.Semaphore(0)
    go = SPAWN.Event()
    procs = [
        SPAWN.Process(target=_bulk_sender, args=(str(root), f"t{writers}x{i}", per, ready, go))
        for i in range(writers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.acquire()
    start = time.perf_counter()
    go.set()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    return {"writers": writers, "messages": per * writers, "seconds": elapsed,
            "per_second": per * writers / elapsed}  # fmt: skip


def _raw_read(paths: t.Sequence[str]) -> float:
    """Seconds to open, read and parse ``paths`` as JSON: the floor under listing them (their
    page cache warm, as the listing's is)."""
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as fh:
            json.loads(fh.read())
    return time.perf_counter() - start


def _page_through(
    store: MailStore, *, newest: bool, limit: int, docs: bool = True
) -> tuple[int, float, float]:
    """Every message in pages of ``limit``: with ``docs`` as ``swarm mail inbox`` lists them
    (``list_docs``), else through the models, as the mayor reads what it acts on (``list``).
    (count, wall seconds, CPU seconds: on a shared machine the wall time is mostly waiting)."""
    start = time.perf_counter()
    cpu = time.process_time()
    cursor: str | None = None
    count = 0
    lister = store.list_docs if docs else store.list
    while True:
        if newest:
            page = lister("big", newest=True, before=cursor, limit=limit)
        else:
            page = lister("big", cursor=cursor, limit=limit)
        count += len(page.messages)
        cursor = page.next_cursor
        if not page.has_more:
            return count, time.perf_counter() - start, time.process_time() - cpu


def paging(base: pathlib.Path, size: int, repeats: int) -> dict[str, t.Any]:
    """A ``size``-message inbox: the newest 50 (a fresh store each time: nothing cached), and
    the whole inbox in pages of 50 both ways, against reading and parsing the same files raw.
    The inbox is written on tmpfs where there is one (the reads are what is measured)."""
    shm = pathlib.Path("/dev/shm")
    top = pathlib.Path(tempfile.mkdtemp(prefix="bench-paging-", dir=shm if shm.is_dir() else base))
    try:
        return _paging(top / "mail", size, repeats)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _paging(root: pathlib.Path, size: int, repeats: int) -> dict[str, t.Any]:
    store = MailStore(root)
    store.register("big")
    store.register("w9")
    for i in range(size):
        store.send(_envelope("w9", f"{i}\n{BODY}", to="big"))
    newest = [_envelope_files(store, newest=True, limit=50)]
    newest_ms, floor_ms = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        page = MailStore(root).list_docs("big", newest=True, limit=50)
        newest_ms.append((time.perf_counter() - start) * 1000)
        assert len(page.messages) == 50
        floor_ms.append(_raw_read(newest[0]) * 1000)
    every = [s.file for s in store.list("big").messages]
    backward = _page_through(MailStore(root), newest=True, limit=50)
    forward = _page_through(MailStore(root), newest=False, limit=50)
    models = _page_through(MailStore(root), newest=True, limit=50, docs=False)
    assert backward[0] == forward[0] == models[0] == size
    return {
        "size": size,
        "newest_50_ms": percentiles(newest_ms),
        "newest_50_floor_ms": percentiles(floor_ms),
        "page_all_newest_s": backward[1],
        "page_all_forward_s": forward[1],
        "page_all_models_s": models[1],
        "page_all_newest_cpu_s": backward[2],
        "page_all_models_cpu_s": models[2],
        "read_all_floor_s": _raw_read(every),
    }


def _envelope_files(store: MailStore, *, newest: bool, limit: int) -> list[str]:
    return [s.file for s in store.list("big", newest=newest, limit=limit).messages]


# ------------------------------------------------------------------------------------ driver


def run(base: pathlib.Path, quick: bool) -> dict[str, t.Any]:
    count = 1000 if quick else 3000
    interval = 0.004 if quick else 0.005
    root = base / "mail"
    store = MailStore(root)
    senders = ["mayor", "poller", "sink", "w0", "w1", "w2"] + [
        f"t{w}x{i}" for w in (1, 8) for i in range(w)
    ]
    for agent in senders:
        store.register(agent)
    figures: dict[str, t.Any] = {"quick": quick}
    figures["fsync_floor_ms"] = fsync_floor(base, count)
    figures["send_ms"] = send_latency(root, count)
    figures["watch_ms"] = watch_latency(root, count, interval)
    poll_count = 200 if quick else 1000
    figures["poll_1s_ms"] = poll_latency(root, poll_count, interval * 2, 1.0)
    total = 2000 if quick else 8000
    figures["throughput_1"] = throughput(root, 1, total)
    figures["throughput_8"] = throughput(root, 8, total)
    figures["paging"] = paging(base, 10_000, 10 if quick else 30)
    return figures


def table(f: dict[str, t.Any]) -> str:
    def ok(good: bool) -> str:
        return "yes" if good else "**no**"

    send, watch, poll, pg = f["send_ms"], f["watch_ms"], f["poll_1s_ms"], f["paging"]
    floor = f["fsync_floor_ms"]
    t1, t8 = f["throughput_1"]["per_second"], f["throughput_8"]["per_second"]
    rows = [
        "| measure | n | p50 | p95 | p99 | max | target | met |",
        "|---|---|---|---|---|---|---|---|",
        f"| disk floor: write + 2 fsyncs (ms) | {floor['n']} | {floor['p50']:.3f} | "
        f"{floor['p95']:.3f} | {floor['p99']:.3f} | {floor['max']:.3f} | baseline | |",
        f"| durable send (ms) | {send['n']} | {send['p50']:.3f} | {send['p95']:.3f} | "
        f"{send['p99']:.3f} | {send['max']:.3f} | | |",
        f"| send -> callback, watcher (ms) | {watch['n']} | {watch['p50']:.3f} | "
        f"{watch['p95']:.3f} | {watch['p99']:.3f} | {watch['max']:.3f} | p50 <= 2, p99 <= 10 | "
        f"{ok(watch['p50'] <= 2 and watch['p99'] <= 10)} |",
        f"| send -> seen, 1 s poller (ms) | {poll['n']} | {poll['p50']:.1f} | {poll['p95']:.1f} | "
        f"{poll['p99']:.1f} | {poll['max']:.1f} | baseline | |",
        "",
        "| durable throughput | messages | seconds | msg/s | target | met |",
        "|---|---|---|---|---|---|",
        f"| 1 writer | {f['throughput_1']['messages']} | {f['throughput_1']['seconds']:.2f} | "
        f"{t1:.0f} | >= 1000 | {ok(t1 >= 1000)} |",
        f"| 8 writers | {f['throughput_8']['messages']} | {f['throughput_8']['seconds']:.2f} | "
        f"{t8:.0f} | >= 2000 | {ok(t8 >= 2000)} |",
        "",
        "| inbox of 10,000 | ours | floor: read + parse the files | target | met |",
        "|---|---|---|---|---|",
        f"| newest 50, p50 (ms) | {pg['newest_50_ms']['p50']:.1f} | "
        f"{pg['newest_50_floor_ms']['p50']:.1f} | < 20 | {ok(pg['newest_50_ms']['p50'] < 20)} |",
        f"| all, pages of 50, newest first (s) | {pg['page_all_newest_s']:.2f} | "
        f"{pg['read_all_floor_s']:.2f} | < 1 | {ok(pg['page_all_newest_s'] < 1)} |",
        f"| all, pages of 50, oldest first (s) | {pg['page_all_forward_s']:.2f} | "
        f"{pg['read_all_floor_s']:.2f} | < 1 | {ok(pg['page_all_forward_s'] < 1)} |",
        f"| all, newest first, through the models (s) | {pg['page_all_models_s']:.2f} | "
        f"{pg['read_all_floor_s']:.2f} | | |",
        f"| CPU of the two newest-first walks (s) | {pg['page_all_newest_cpu_s']:.2f} / "
        f"{pg['page_all_models_cpu_s']:.2f} | | | |",
        "",
        f"watcher p50 is {poll['p50'] / max(watch['p50'], 1e-9):.0f}x faster than the 1 s poller; "
        f"durable send p50 is {send['p50'] / max(floor['p50'], 1e-9):.2f}x the disk floor "
        f"(1 writer at the floor: {1000 / max(floor['p50'], 1e-9):.0f} msg/s).",
    ]
    return "\n".join(rows)


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a short run (about 20 s)")
    parser.add_argument("--json", type=pathlib.Path, default=None, help="write the figures here")
    parser.add_argument("--dir", type=pathlib.Path, default=None, help="where to put the mail")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-mail-") as tmp:
        figures = run(pathlib.Path(tmp), args.quick)
    print(table(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
