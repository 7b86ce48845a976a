"""agentmail.wire and agentmail.delivery: the pydantic-free send path writes the very bytes the
pydantic one writes, and the receiving store verifies and parses them."""

from __future__ import annotations

import hmac
import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmail import wire
from agentmail.delivery import hmac_sha256, load_key, send_doc
from agentmail.store import MailStore
from protocol.agentops import render_body
from protocol.messages import ACK_REQUIRED_BY_DEFAULT, FIELDS_BY_TYPE, Envelope, MessageType
from tests.agentmail.helpers import make_store

ROOT: t.Final = pathlib.Path(__file__).resolve().parents[2]


def test_field_defaults_are_the_models_defaults() -> None:
    for name, defaults in wire.FIELD_DEFAULTS.items():
        model = FIELDS_BY_TYPE[MessageType(name)]
        assert defaults == model().model_dump(mode="json"), name
    assert {m.value for m in ACK_REQUIRED_BY_DEFAULT} == wire.ACK_REQUIRED_BY_DEFAULT


def test_created_is_written_as_pydantic_writes_it() -> None:
    stamp = wire.created_now()
    parsed = Envelope.model_validate({"from": "a", "to": ["b"], "type": "NUDGE", "created": stamp})
    assert parsed.model_dump(mode="json")["created"] == stamp


def test_hmac_is_the_standard_one() -> None:
    for key in (b"", b"k", os.urandom(32), os.urandom(64), os.urandom(65), os.urandom(200)):
        for msg in (b"", b"x", os.urandom(1000)):
            assert hmac_sha256(key, msg) == hmac.new(key, msg, "sha256").hexdigest()


class Case(t.NamedTuple):
    test_id: str
    mtype: str
    values: dict[str, t.Any]


CASES: t.Final = [
    Case("accepted", "BEAD_ACCEPTED", {"bead_id": "t1", "title": "Add ünïcode \u2028 login"}),
    Case("progress", "PROGRESS", {"bead_id": "t1", "status": 'a "quoted"\nline',
                                  "context_usage": 40, "files_touched": ("a.py", "b/c.py")}),
    Case("help", "HELP_REQUEST", {"bead_id": "t1", "issue_type": "STUCK", "problem": "p\x01",
                                  "question": "q?", "files_touched": ["x"]}),
    Case("offer", "OFFERING_READY", {"bead_id": "t1", "status": "DONE", "commit_sha": "abc",
                                     "files": ["a"], "tests_pass": True, "summary": "</script>"}),
    Case("done", "DONE", {"bead_id": "t1", "summary": "done"}),
    Case("fail", "FAILED", {"bead_id": "t1", "failure_type": "ERROR", "reason": "r",
                            "internal_attempts": 3}),
    Case("checkpoint", "CHECKPOINT", {"bead_id": "t1", "checkpoint_reason": "MANUAL",
                                      "context_usage": 99, "next_steps": "🚀"}),
    Case("escape", "SCOPE_ESCAPE", {"bead_id": "t1", "finding": "f", "files": ["a", "b"],
                                    "severity": "high"}),
    Case("guidance", "GUIDANCE", {"text": "merge t1 first"}),
    Case("terminate", "TERMINATE", {"text": ""}),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_the_hand_built_document_is_the_models_dump(case: Case) -> None:
    fields = wire.fields_doc(case.mtype, **case.values)
    doc = wire.envelope_doc(
        sender="w-t1",
        to=["mayor"],
        mtype=case.mtype,
        fields=fields,
        thread_id="t1",
        run_id="run-1",
    )
    model = Envelope.model_validate(doc)
    assert model.model_dump(mode="json") == doc
    assert list(model.model_dump(mode="json")) == list(doc)  # the same key order (--json)
    mtype = MessageType(case.mtype)
    if mtype is not MessageType.BEAD_ACCEPTED:  # its body carries the clock
        assert doc["body_md"] == render_body(mtype, FIELDS_BY_TYPE[mtype](**case.values))
    assert doc["ack_required"] == (mtype in ACK_REQUIRED_BY_DEFAULT)


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_the_same_message_signs_to_the_same_bytes_both_ways(
    case: Case, tmp_path: pathlib.Path
) -> None:
    """One document sent by the pydantic store and by the bare path, in two stores whose keys
    and counters are alike: the files in the inboxes are byte for byte the same."""
    doc = wire.envelope_doc(
        sender="w-t1",
        to=["mayor"],
        mtype=case.mtype,
        fields=wire.fields_doc(case.mtype, **case.values),
        thread_id="t1",
        run_id="run-1",
    )
    doc["id"] = "01JD7Q7K3M4S6V8X9Y0Z1A2B3C"
    files = []
    key = os.urandom(32)
    for name, send in (("models", _send_with_models), ("bare", _send_bare)):
        root = tmp_path / name / "mail"
        store = make_store(root.parent, "mayor", "w-t1")
        store.key_path("w-t1").write_text(key.hex() + "\n")
        send(store, dict(doc), key)
        (stored,) = store.list("mayor").messages  # verified and parsed with the models
        canonical = stored.envelope.canonical_bytes()
        assert stored.envelope.sig == hmac.new(key, canonical, "sha256").hexdigest()
        files.append(stored.path.read_bytes())
    assert files[0] == files[1]


def _send_with_models(store: MailStore, doc: dict[str, t.Any], key: bytes) -> None:
    store.send(Envelope.model_validate(doc), key=key)


def _send_bare(store: MailStore, doc: dict[str, t.Any], key: bytes) -> None:
    send_doc(store.root, doc, key, new_id=lambda: "unused", redeliver=store.redeliver)


def test_a_message_signed_with_another_key_is_still_refused(tmp_path: pathlib.Path) -> None:
    """The receiving side is unchanged: a bare send with a key that is not the sender's is
    quarantined, never listed."""
    store = make_store(tmp_path, "mayor", "w-t1")
    doc = wire.envelope_doc(
        sender="w-t1", to=["mayor"], mtype="NUDGE", fields=wire.fields_doc("NUDGE", text="x"),
        thread_id=None, run_id=None,
    )  # fmt: skip
    send_doc(store.root, doc, os.urandom(32), new_id=lambda: "01JD7Q7K3M4S6V8X9Y0Z1A2B3C",
             redeliver=store.redeliver)  # fmt: skip
    assert store.list("mayor").messages == ()
    ((_, reason),) = store.quarantined("mayor")
    assert "bad signature" in reason
    assert load_key(store.key_path("w-t1"))  # the real key was never touched


def test_the_send_path_imports_neither_pydantic_nor_click(tmp_path: pathlib.Path) -> None:
    """What ``swarm worker progress`` imports from a fresh process."""
    store = make_store(tmp_path, "mayor", "w-t1")
    env = {
        **os.environ,
        "SWARM_HOME": str(tmp_path),
        "SWARM_RUN": "run-1",
        "SWARM_TASK": "t1",
        "SWARM_WORKER": "w-t1",
        "SWARM_MAYOR": "mayor",
        "SWARM_KEY_FILE": str(store.key_path("w-t1")),
        "PYTHONPATH": str(ROOT),
    }
    code = (
        "import sys\n"
        "sys.argv = ['swarm', 'worker', 'progress', 'half way']\n"
        "from runner.cli import main\n"
        "try:\n"
        "    main.main()\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        "heavy = ('pydantic', 'click', 'logging', 'libtmux', 'rich', 'watchdog', 'hashlib')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    msg_id, modules = result.stdout.splitlines()
    assert modules == "[]"
    (stored,) = store.list("mayor").messages
    assert stored.id == msg_id
    assert json.loads(stored.path.read_bytes())["fields"]["status"] == "half way"


JSON_VALUES: t.Final = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.sampled_from(["", "t1", "mayor", "a..b", "x.lock", "-x", "NUDGE", "normal", "ok.",
                       "2026-01-02T03:04:05Z", "resume-dispatch", "é" * 3])
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=2),
    max_leaves=4,
)  # fmt: skip
CREATED: t.Final = st.sampled_from([
    "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05.000000Z",
    "2026-01-02T03:04:05.5Z", "2026-01-02T03:04:05+00:00", "2026-02-30T03:04:05Z",
    "2026-01-02 03:04:05Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
    "2026-01-02T03:04:60Z", "٢٠٢٦-01-02T03:04:05Z", "2026-01-02T03:04:05z", "2026-01-02",
])  # fmt: skip


@st.composite
def envelope_docs(draw: st.DrawFn) -> dict[str, t.Any]:
    """A valid envelope document in normal form, then up to three mutations of it."""
    mtype = draw(st.sampled_from(sorted(wire.FIELD_DEFAULTS)))
    values: dict[str, t.Any] = {}
    for name, default in wire.FIELD_DEFAULTS[mtype].items():
        if draw(st.booleans()):
            continue
        if isinstance(default, bool):
            values[name] = draw(st.booleans())
        elif isinstance(default, int):
            values[name] = draw(st.integers(-5, 5))
        elif isinstance(default, list):
            values[name] = draw(st.lists(st.text(max_size=3), max_size=2))
        elif default is None:
            values[name] = draw(st.sampled_from([None, "resume-dispatch"]))
        else:
            values[name] = draw(st.text(max_size=4))
    doc = wire.envelope_doc(
        sender=draw(st.sampled_from(["w1", "mayor"])), to=["mayor"], mtype=mtype,
        fields=wire.fields_doc(mtype, **values), thread_id=draw(st.sampled_from([None, "t1"])),
        run_id=draw(st.sampled_from([None, "r-1"])), body_md=draw(st.text(max_size=5)),
    )  # fmt: skip
    doc = Envelope.model_validate(doc).model_dump(mode="json")
    for _ in range(draw(st.integers(0, 3))):
        where = doc if draw(st.booleans()) else doc.get("fields")
        if not isinstance(where, dict) or not where:
            where = doc
        action = draw(st.sampled_from(["set", "set", "drop", "add", "created", "order"]))
        key = draw(st.sampled_from(sorted(where)))
        if action == "set":
            where[key] = draw(JSON_VALUES)
        elif action == "drop":
            del where[key]
        elif action == "add":
            where[draw(st.sampled_from(["extra", "sender", "text", "v"]))] = draw(JSON_VALUES)
        elif action == "created":
            doc["created"] = draw(CREATED)
        else:  # another key order: still the same document
            items = list(where.items())
            where.clear()
            where.update(reversed(items))
    return doc


@settings(max_examples=int(os.environ.get("WIRE_EXAMPLES", "600")), deadline=None)
@given(envelope_docs())
def test_a_normal_envelope_is_what_the_models_give_back(doc: dict[str, t.Any]) -> None:
    """What the listing accepts without the models is exactly what the models would show:
    every document ``normal_envelope`` accepts validates, and dumps to the same document in
    the same key order."""
    normal = wire.normal_envelope(json.loads(json.dumps(doc)))
    try:
        dumped = Envelope.model_validate(doc).model_dump(mode="json")
    except ValueError:
        assert normal is None, doc
        return
    if normal is not None:  # as JSON: in Python False == 0 and 1 == 1.0
        assert json.dumps(normal) == json.dumps(dumped)
    elif json.dumps(dumped, sort_keys=True) == json.dumps(doc, sort_keys=True):
        # a fixpoint of the models, whatever its key order: refused only out of caution
        assert any(isinstance(v, int) and abs(v) >= 2**63 for v in (doc["seq"],
                   *doc["fields"].values())), doc  # fmt: skip


def test_every_stored_form_of_every_type_is_normal() -> None:
    for mtype in MessageType:
        env = Envelope.model_validate({"from": "w1", "to": ["mayor"], "type": mtype})
        doc = env.model_dump(mode="json")
        assert wire.normal_envelope(json.loads(json.dumps(doc, sort_keys=True))) == doc
