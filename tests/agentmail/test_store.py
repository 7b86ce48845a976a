from __future__ import annotations

import collections
import json
import multiprocessing
import os
import pathlib
import random
import signal
import stat
import time
import typing as t

import pytest

from agentmail import wire
from agentmail.errors import (
    BadInput,
    BodyTooLarge,
    IdempotencyConflict,
    UnknownAgent,
    UnknownMessage,
)
from agentmail.store import MailStore, Stored, load_key, sign
from protocol.messages import Envelope, MessageType
from tests.agentmail.helpers import make_store, msg, send_many

FORK = multiprocessing.get_context("fork")


def test_register_creates_private_maildir_and_key(tmp_path: pathlib.Path) -> None:
    store = MailStore(tmp_path / "mail")
    key_path = store.register("mayor")
    assert key_path == store.key_path("mayor")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    for sub in ("tmp", "new", "cur", "quarantine"):
        path = tmp_path / "mail" / "mayor" / sub
        assert path.is_dir()
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    key = load_key(key_path)
    assert len(key) == 32
    # idempotent: the key is kept
    assert store.register("mayor") == key_path
    assert load_key(key_path) == key
    assert store.is_registered("mayor")
    assert not store.is_registered("w1")
    assert store.agents() == ("mayor",)


def test_a_key_a_crash_left_empty_is_replaced_and_then_verifies(tmp_path: pathlib.Path) -> None:
    """Found by the chaos trials: a mayor SIGKILLed between creating a worker's key file and
    writing it left it empty; every message of that worker was then quarantined ("no key")."""
    store = make_store(tmp_path, "mayor")
    (tmp_path / "mail" / ".keys").mkdir(exist_ok=True)
    store.key_path("w1").touch(mode=0o600)  # what the kill left behind
    key_path = store.register("w1")
    assert len(load_key(key_path)) == 32
    MailStore(tmp_path / "mail").send(msg("w1", "mayor"), key=load_key(key_path))
    (stored,) = store.list("mayor").messages
    assert stored.envelope.sender == "w1"
    assert not list((tmp_path / "mail" / "mayor" / "quarantine").iterdir())
    assert not [p for p in key_path.parent.iterdir() if p.name.startswith(".")]  # no tmp left


class BadName(t.NamedTuple):
    test_id: str
    name: str


BAD_NAMES: t.Final = [
    BadName("traversal", "../mayor"),
    BadName("slash", "a/b"),
    BadName("dotdot", "a..b"),
    BadName("empty", ""),
    BadName("space", "a b"),
    BadName("leading_dot", ".keys"),
]


@pytest.mark.parametrize(BadName._fields, BAD_NAMES, ids=[c.test_id for c in BAD_NAMES])
def test_invalid_agent_names_are_refused(tmp_path: pathlib.Path, test_id: str, name: str) -> None:
    store = make_store(tmp_path, "mayor")
    with pytest.raises(BadInput, match="agent name"):
        store.register(name)
    with pytest.raises(BadInput, match="agent name"):
        store.list(name)
    assert not store.is_registered(name)
    assert sorted(p.name for p in (tmp_path / "mail").iterdir()) == [
        ".keys",
        ".senders",
        "mayor",
    ]


def test_send_and_list(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    sent = store.send(msg("w1", "mayor", "w2", body="hello", thread_id="t1"))
    assert sent.seq == 1 and sent.sig and len(sent.id) == 26
    assert sent.sig == sign(sent, load_key(store.key_path("w1")))
    for agent in ("mayor", "w2"):
        (stored,) = store.list(agent).messages
        assert stored.envelope == sent
        assert not stored.read and not stored.acked
    assert store.list("w1").messages == ()
    second = store.send(msg("w1", "mayor"))
    assert second.seq == 2 and second.id > sent.id


def test_send_to_unregistered_agent_names_it(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    with pytest.raises(UnknownAgent, match="'ghost'"):
        store.send(msg("w1", "mayor", "ghost"))
    # nothing delivered to anyone
    assert store.list("mayor").messages == ()
    with pytest.raises(UnknownAgent, match="'nobody'"):
        store.send(msg("nobody", "mayor"))


def test_oversize_body_is_refused(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", max_body=1000)
    store.send(msg("w1", "mayor", body="x" * 1000))
    with pytest.raises(BodyTooLarge, match="1001 bytes, over the 1000-byte limit"):
        store.send(msg("w1", "mayor", body="x" * 1001))
    assert len(store.list("mayor").messages) == 1


def test_idempotent_retry_is_a_no_op(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    first = store.send(msg("w1", "mayor", body="once", idempotency_key="k1"))
    again = store.send(msg("w1", "mayor", body="once", idempotency_key="k1"))
    assert again == first
    assert [s.id for s in store.list("mayor").messages] == [first.id]
    with pytest.raises(IdempotencyConflict, match="'k1'"):
        store.send(msg("w1", "mayor", body="different", idempotency_key="k1"))
    other = store.send(msg("w1", "mayor", body="once", idempotency_key="k2"))
    assert other.id != first.id and other.seq == first.seq + 1


def test_idempotent_retry_completes_a_partial_delivery(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    first = store.send(msg("w1", "mayor", "w2", idempotency_key="k"))
    # as if the sender died after the first link: remove w2's copy
    (copy,) = (tmp_path / "mail" / "w2" / "new").iterdir()
    copy.unlink()
    again = store.send(msg("w1", "mayor", "w2", idempotency_key="k"))
    assert again.id == first.id
    assert [s.id for s in store.list("w2").messages] == [first.id]
    assert [s.id for s in store.list("mayor").messages] == [first.id]


def test_every_retry_after_a_partial_delivery_finds_the_completed_copy(
    tmp_path: pathlib.Path,
) -> None:
    """The completing retry records the message a second time (the first record is the gap the
    dead sender left); later retries must find that second record, not deliver again (seen in
    CI: three copies of one report after three killed sends)."""
    store = make_store(tmp_path, "mayor", "w1", "w2")
    first = store.send(msg("w1", "mayor", "w2", idempotency_key="k"))
    (copy,) = (tmp_path / "mail" / "w2" / "new").iterdir()
    copy.unlink()
    for _ in range(3):
        assert store.send(msg("w1", "mayor", "w2", idempotency_key="k")).id == first.id
    assert [s.id for s in store.list("w2").messages] == [first.id]
    assert [s.id for s in store.list("mayor").messages] == [first.id]


def test_listing_never_changes_state_and_read_ack_are_recorded(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    a = store.send(msg("w1", "mayor", type=MessageType.OFFERING_READY, ack_required=True))
    b = store.send(msg("w1", "mayor"))
    before = sorted(p.name for p in (tmp_path / "mail" / "mayor").rglob("*"))
    for _ in range(3):
        store.list("mayor")
        store.get("mayor", a.id)
    assert sorted(p.name for p in (tmp_path / "mail" / "mayor").rglob("*")) == before

    for _ in range(2):  # idempotent
        store.mark_read("mayor", a.id)
    assert [s.id for s in store.list("mayor", unread=True).messages] == [b.id]
    assert [s.id for s in store.list("mayor", unread=False).messages] == [a.id]
    assert [s.id for s in store.list("mayor", unacked=True).messages] == [a.id]
    for _ in range(2):
        store.ack("mayor", a.id)
    assert store.list("mayor", unacked=True).messages == ()
    stored = store.get("mayor", a.id)
    assert stored.read and stored.acked
    assert stored.path.name.endswith(":2,AS")
    # ack without read: still unread
    store.ack("mayor", b.id)
    assert [s.id for s in store.list("mayor", unread=True).messages] == [b.id]
    # state lives on disk: a fresh store sees it
    fresh = MailStore(tmp_path / "mail")
    states = [(s.read, s.acked) for s in fresh.list("mayor").messages]
    assert states == [(True, True), (False, True)]
    with pytest.raises(UnknownMessage):
        store.mark_read("mayor", "01ARZ3NDEKTSV4RRFFQ69G5FAV")


def test_filters_and_thread(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    p1 = store.send(msg("w1", "mayor", type=MessageType.PROGRESS, thread_id="t1"))
    store.send(msg("w2", "mayor", type=MessageType.PROGRESS, thread_id="t2"))
    d1 = store.send(msg("w1", "mayor", type=MessageType.DONE, thread_id="t1"))
    assert [s.id for s in store.list("mayor", type=MessageType.DONE).messages] == [d1.id]
    assert [s.id for s in store.list("mayor", sender="w1").messages] == [p1.id, d1.id]
    assert [s.id for s in store.thread("mayor", "t1")] == [p1.id, d1.id]
    assert [s.id for s in store.list("mayor", thread="t1", type=MessageType.PROGRESS).messages] == [
        p1.id
    ]


def test_cursor_sees_every_message_once_however_many_arrive(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    reader = MailStore(tmp_path / "mail")
    seen: list[str] = []
    cursor: str | None = None
    sent: list[str] = []
    rng = random.Random(7)
    for _round in range(30):
        for _ in range(rng.randrange(0, 120)):
            sent.append(store.send(msg(rng.choice(["w1", "w2"]), "mayor")).id)
        while True:
            page = reader.list("mayor", cursor=cursor, limit=20)
            seen.extend(s.id for s in page.messages)
            cursor = page.next_cursor
            if not page.has_more:
                break
    assert seen == sent
    # a message id works as a cursor too
    assert [s.id for s in reader.list("mayor", cursor=sent[-2]).messages] == [sent[-1]]
    with pytest.raises(BadInput, match="invalid cursor"):
        reader.list("mayor", cursor="yesterday")


def test_cursor_orders_by_arrival_not_by_id(tmp_path: pathlib.Path) -> None:
    """A message whose id is older than one already listed (a slow sender) is still seen."""
    store = make_store(tmp_path, "mayor", "w1", "w2")
    slow = msg("w1", "mayor").model_copy(update={"id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"})
    fast = store.send(msg("w2", "mayor"))
    page = store.list("mayor")
    assert [s.id for s in page.messages] == [fast.id]
    late = store.send(slow)
    assert late.id < fast.id
    assert [s.id for s in store.list("mayor", cursor=page.next_cursor).messages] == [late.id]


def _quarantine_reasons(store: MailStore, agent: str) -> list[str]:
    return [reason for _name, reason in store.quarantined(agent)]


def _plant(store: MailStore, agent: str, name: str, data: bytes) -> pathlib.Path:
    path = store.maildir(agent) / "new" / name
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    return path


def _file_of(store: MailStore, agent: str, msg_id: str) -> pathlib.Path:
    box = store.maildir(agent)
    return next(p for sub in ("new", "cur") for p in (box / sub).iterdir() if msg_id in p.name)


class Hostile(t.NamedTuple):
    test_id: str
    reason: str  # substring of the quarantine reason


HOSTILE: t.Final = [
    Hostile("forged_from", "bad signature"),
    Hostile("tampered_body", "bad signature"),
    Hostile("unsigned", "unsigned"),
    Hostile("garbage_json", "malformed"),
    Hostile("unknown_type", "malformed: type"),
    Hostile("wrong_schema", "malformed"),
    Hostile("symlink", "symlink"),
    Hostile("bad_name", "not a message file name"),
    Hostile("traversal_name", "not a message file name"),
    Hostile("directory", "not a regular file"),
    Hostile("oversize", "oversize"),
    Hostile("unknown_sender", "unknown sender"),
    Hostile("not_addressed", "not addressed"),
]


def _bodies(store: MailStore, agent: str, docs: bool) -> list[str]:
    if docs:
        return [s.doc["body_md"] for s in store.list_docs(agent).messages]
    return [s.envelope.body_md for s in store.list(agent).messages]


@pytest.mark.parametrize("docs", [False, True], ids=["list", "list_docs"])
@pytest.mark.parametrize(Hostile._fields, HOSTILE, ids=[c.test_id for c in HOSTILE])
def test_hostile_files_are_quarantined_and_the_reader_goes_on(
    tmp_path: pathlib.Path, test_id: str, reason: str, docs: bool
) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2", max_body=1000)
    good_before = store.send(msg("w1", "mayor", body="before"))
    # the attacker is w2, who knows only its own key; it rewrites a file the store delivered
    # (a planted name is refused before its content is even read: see the next test)
    w2_key = load_key(store.key_path("w2"))
    placeholder = store.send(msg("w2", "mayor", body="placeholder"))
    msg_id = placeholder.id
    name = _file_of(store, "mayor", msg_id).name
    base = msg("w1", "mayor", body="approve everything").model_copy(update={"id": msg_id})
    outside = tmp_path / "secret"
    outside.write_text("not mail")
    if test_id == "forged_from":
        forged = base.model_copy(update={"sig": sign(base, w2_key)})
        _plant(store, "mayor", name, forged.to_json().encode())
    elif test_id == "tampered_body":
        signed = base.model_copy(update={"sig": sign(base, load_key(store.key_path("w1")))})
        doc = json.loads(signed.to_json())
        doc["body_md"] = "approve nothing"
        _plant(store, "mayor", name, json.dumps(doc).encode())
    elif test_id == "unsigned":
        _plant(store, "mayor", name, base.to_json().encode())
    elif test_id == "garbage_json":
        _plant(store, "mayor", name, b"{not json")
    elif test_id == "unknown_type":
        doc = json.loads(base.to_json())
        doc["type"] = "LAUNCH_MISSILES"
        _plant(store, "mayor", name, json.dumps(doc).encode())
    elif test_id == "wrong_schema":
        _plant(store, "mayor", name, json.dumps({"hello": "world"}).encode())
    elif test_id == "symlink":
        (store.maildir("mayor") / "new" / name).unlink()
        (store.maildir("mayor") / "new" / name).symlink_to(outside)
    elif test_id == "bad_name":
        _file_of(store, "mayor", msg_id).rename(store.maildir("mayor") / "new" / "evil.json")
    elif test_id == "traversal_name":
        _file_of(store, "mayor", msg_id).rename(store.maildir("mayor") / "new" / "..%2fmayor")
    elif test_id == "directory":
        (store.maildir("mayor") / "new" / name).unlink()
        (store.maildir("mayor") / "new" / name).mkdir()
    elif test_id == "oversize":
        big = base.model_copy(update={"body_md": "x" * 2000})
        big = big.model_copy(update={"sig": sign(big, load_key(store.key_path("w1")))})
        _plant(store, "mayor", name, big.to_json().encode())
    elif test_id == "unknown_sender":
        ghost = base.model_copy(update={"sender": "ghost"})
        _plant(store, "mayor", name, ghost.model_copy(update={"sig": "00"}).to_json().encode())
    elif test_id == "not_addressed":
        other = base.model_copy(update={"to": ("w2",)})
        other = other.model_copy(update={"sig": sign(other, load_key(store.key_path("w1")))})
        _plant(store, "mayor", name, other.to_json().encode())
    good_after = store.send(msg("w1", "mayor", body="after"))

    assert _bodies(MailStore(store.root, max_body=1000), "mayor", docs) == ["before", "after"]
    reasons = _quarantine_reasons(store, "mayor")
    assert len(reasons) == 1, reasons
    assert reason in reasons[0]
    assert outside.read_text() == "not mail"  # a symlink target is never touched
    assert list((store.maildir("mayor") / "new").iterdir()) != []
    assert {s.id for s in store.list("mayor").messages} == {good_before.id, good_after.id}


def test_get_quarantines_a_forgery_instead_of_returning_it(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1", "w2")
    delivered = store.send(msg("w2", "mayor"))
    env = msg("w1", "mayor").model_copy(update={"id": delivered.id})
    env = env.model_copy(update={"sig": sign(env, load_key(store.key_path("w2")))})
    _plant(store, "mayor", _file_of(store, "mayor", env.id).name, env.to_json().encode())
    store = MailStore(store.root)  # a fresh reader: nothing cached
    with pytest.raises(UnknownMessage):
        store.mark_read("mayor", env.id)
    assert "bad signature" in _quarantine_reasons(store, "mayor")[0]


def test_explicit_key_signs(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    key = load_key(store.key_path("w1"))
    stored = store.send(msg("w1", "mayor"), key=key)
    assert store.get("mayor", stored.id).envelope.sig == stored.sig
    wrong = store.send(msg("w1", "mayor"), key=b"x" * 32)
    assert {s.id for s in store.list("mayor").messages} == {stored.id}
    assert "bad signature" in _quarantine_reasons(store, "mayor")[0]
    assert wrong.id not in {s.id for s in store.list("mayor").messages}


def _check_inboxes(store: MailStore, inboxes: t.Sequence[str]) -> dict[str, list[tuple[str, int]]]:
    """Every message of every inbox, verified; per sender, (id, seq) in delivery order."""
    per_sender: dict[str, list[tuple[str, int]]] = collections.defaultdict(list)
    for agent in inboxes:
        cursor = None
        last_seq: dict[str, int] = {}
        while True:
            page = store.list(agent, cursor=cursor, limit=500)
            for stored in page.messages:
                env = stored.envelope
                assert env.seq > last_seq.get(env.sender, 0), "per-sender order broken"
                last_seq[env.sender] = env.seq
                assert env.body_md == f"{env.sender}:{env.seq - 1}"
                per_sender[env.sender].append((env.id, env.seq))
            cursor = page.next_cursor
            if not page.has_more:
                break
        assert store.quarantined(agent) == ()
    return per_sender


def test_many_processes_lose_duplicate_tear_and_reorder_nothing(tmp_path: pathlib.Path) -> None:
    inboxes = [f"in{i}" for i in range(4)]
    senders = [f"s{i:02d}" for i in range(16)]
    store = make_store(tmp_path, *inboxes, *senders)
    procs = [
        FORK.Process(
            target=send_many,
            args=(str(store.root), s, inboxes, 500, str(tmp_path / f"{s}.log")),
        )
        for s in senders
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=110)
        assert proc.exitcode == 0
    per_sender = _check_inboxes(MailStore(store.root), inboxes)
    for sender in senders:
        got = per_sender[sender]
        assert len(got) == 500, sender
        assert len({i for i, _ in got}) == 500
        assert sorted(seq for _, seq in got) == list(range(1, 501))
    for inbox in inboxes:
        assert list((store.maildir(inbox) / "tmp").iterdir()) == []


def test_senders_killed_mid_send_leave_no_partial_message(tmp_path: pathlib.Path) -> None:
    inboxes = ["in0", "in1"]
    senders = [f"k{i}" for i in range(6)]
    store = make_store(tmp_path, *inboxes, *senders)
    rng = random.Random(11)
    logs = {s: tmp_path / f"{s}.log" for s in senders}
    for _round in range(4):
        procs = [
            FORK.Process(
                target=send_many, args=(str(store.root), s, inboxes, 100_000, str(logs[s]))
            )
            for s in senders
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            time.sleep(rng.uniform(0.01, 0.08))
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.join(timeout=30)
            assert proc.exitcode == -signal.SIGKILL
    reader = MailStore(store.root)
    visible: dict[str, set[str]] = {inbox: set() for inbox in inboxes}
    for inbox in inboxes:
        for stored in reader.list(inbox).messages:
            assert isinstance(stored, Stored)
            visible[inbox].add(stored.id)
        assert reader.quarantined(inbox) == ()  # nothing torn, nothing unverifiable
    total = 0
    for log in logs.values():
        for line in log.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue  # the sender died while logging
            msg_id, to, _seq = parts
            assert msg_id in visible[to], "a send that returned is not visible"
            total += 1
    assert total > 0
    # seq order per sender per inbox was checked message by message above via the listing order
    for inbox in inboxes:
        last: dict[str, int] = {}
        for stored in reader.list(inbox).messages:
            env = stored.envelope
            assert env.seq > last.get(env.sender, 0)
            last[env.sender] = env.seq


def test_leftover_tmp_files_are_never_listed(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    (store.maildir("mayor") / "tmp" / "01ARZ3NDEKTSV4RRFFQ69G5FAV.123.456").write_text("{")
    assert store.list("mayor").messages == ()
    assert store.quarantined("mayor") == ()


def test_envelope_from_another_store_instance_verifies(tmp_path: pathlib.Path) -> None:
    a = make_store(tmp_path, "mayor", "w1")
    b = MailStore(tmp_path / "mail")
    sent = a.send(msg("w1", "mayor", type=MessageType.PROGRESS, fields={"step": "2"}))
    got = b.get("mayor", sent.id).envelope
    assert got == sent
    assert isinstance(got, Envelope)


def test_mark_read_interrupted_between_link_and_unlink_is_repaired(tmp_path: pathlib.Path) -> None:
    store = make_store(tmp_path, "mayor", "w1")
    sent = store.send(msg("w1", "mayor"))
    (new_copy,) = (store.maildir("mayor") / "new").iterdir()
    # what mark_read leaves if it dies after the link into cur/ and before the unlink
    os.link(new_copy, store.maildir("mayor") / "cur" / f"{new_copy.name}:2,S")
    (stored,) = MailStore(store.root).list("mayor").messages
    assert stored.id == sent.id and stored.read
    assert list((store.maildir("mayor") / "new").iterdir()) == []
    store.mark_read("mayor", sent.id)  # still idempotent
    assert store.get("mayor", sent.id).read


def test_list_docs_is_list_as_documents(tmp_path: pathlib.Path) -> None:
    """A message of every type as the store writes it is checked by hand; one rewritten by its
    sender in another valid form goes to the models; both show what the models show."""
    store = make_store(tmp_path, "mayor", "w1")
    for mtype in MessageType:
        store.send(msg("w1", "mayor", type=mtype, body=f"{mtype.value} ünï \x01", thread_id="t1"))
    placeholder = store.send(msg("w1", "mayor", body="placeholder"))
    unusual = msg("w1", "mayor", type=MessageType.GUIDANCE, body="odd", id=placeholder.id,
                  created="2026-01-02T03:04:05+01:00")  # fmt: skip
    unusual = unusual.model_copy(update={"sig": sign(unusual, load_key(store.key_path("w1")))})
    _file_of(store, "mayor", placeholder.id).write_text(json.dumps(json.loads(unusual.to_json())))
    store.mark_read("mayor", placeholder.id)
    store.ack("mayor", store.list("mayor").messages[0].id)
    fresh = MailStore(store.root)
    docs = fresh.list_docs("mayor", newest=True).messages
    models = MailStore(store.root).list("mayor", newest=True).messages
    assert [d.doc for d in docs] == [json.loads(s.envelope.to_json()) for s in models]
    assert [list(d.doc) for d in docs] == [list(wire.ENVELOPE_KEYS)] * len(models)
    assert [d[1:] for d in docs] == [s[1:] for s in models]  # read, acked, file, dseq
    as_written = [fresh._doc_as_written("mayor", d.doc["id"], pathlib.Path(d.file).read_bytes())
                  for d in docs]  # fmt: skip
    assert [doc is not None for doc in as_written] == [False] + [True] * len(MessageType)
    assert store.quarantined("mayor") == ()
    pairs = [
        (fresh.list_docs("mayor", type="NUDGE"), fresh.list("mayor", type=MessageType.NUDGE)),
        (fresh.list_docs("mayor", thread="t1"), fresh.list("mayor", thread="t1")),
        (fresh.list_docs("mayor", sender="w1", unacked=False),
         fresh.list("mayor", sender="w1", unacked=False)),
        (fresh.list_docs("mayor", unread=True), fresh.list("mayor", unread=True)),
    ]  # fmt: skip
    for doc_page, page in pairs:
        assert [d.doc["id"] for d in doc_page.messages] == [s.id for s in page.messages]
        assert doc_page.messages and doc_page[1:] == page[1:]
