"""The Agent Mail envelope: JSON round trips, typed fields, refused input, signed bytes."""

from __future__ import annotations

import json
import typing as t
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from protocol.messages import (
    ACK_REQUIRED_BY_DEFAULT,
    FIELDS_BY_TYPE,
    Envelope,
    Fields,
    MessageType,
    OfferingFields,
    ProgressFields,
    TextFields,
)

CREATED = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


def _sample_fields(mtype: MessageType) -> Fields:
    """Fields of ``mtype`` with every field set away from its default."""
    model = FIELDS_BY_TYPE[mtype]
    values: dict[str, object] = {}
    for name, info in model.model_fields.items():
        if info.annotation is bool:
            values[name] = True
        elif info.annotation is int:
            values[name] = 7
        elif name in ("files", "files_touched"):
            values[name] = ("src/a.py", "docs/b c.md")
        elif name == "tasks":
            values[name] = ("T01", "auth-2")
        elif name == "signal":
            values[name] = "resume-dispatch"
        else:
            values[name] = f"{name} of t-1"
    return model.model_validate(values)


def _envelope(mtype: MessageType = MessageType.PROGRESS, /, **overrides: t.Any) -> Envelope:
    doc: dict[str, t.Any] = {
        "id": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "thread_id": "t-1",
        "from": "worker-t-1",
        "to": ["mayor"],
        "cc": ["human"],
        "type": mtype.value,
        "subject": f"[t-1] {mtype.value}",
        "body_md": "Bead: t-1",
        "fields": _sample_fields(mtype).model_dump(),
        "created": CREATED.isoformat(),
        "importance": "high",
        "ack_required": mtype in ACK_REQUIRED_BY_DEFAULT,
        "in_reply_to": "01HYYYYYYYYYYYYYYYYYYYYYYY",
        "seq": 3,
        "run_id": "r-20260131",
        "idempotency_key": "t-1:offer:1",
        "sig": "c2lnbmF0dXJl",
    }
    doc.update(overrides)
    return Envelope.model_validate(doc)


@pytest.mark.parametrize("mtype", list(MessageType), ids=str)
def test_envelope_round_trips_through_json(mtype: MessageType) -> None:
    env = _envelope(mtype)
    text = env.to_json()
    back = Envelope.model_validate_json(text)
    assert back == env
    assert type(back.fields) is FIELDS_BY_TYPE[mtype]
    assert back.fields == _sample_fields(mtype)
    doc = json.loads(text)
    assert doc["from"] == "worker-t-1"  # the wire key is "from", not the attribute name
    assert "sender" not in doc
    assert doc["v"] == 1


class TypedFieldsCase(t.NamedTuple):
    test_id: str
    mtype: MessageType
    fields: t.Any
    expected: Fields


TYPED_FIELDS_CASES = [
    TypedFieldsCase(
        "dict_becomes_the_type_model",
        MessageType.PROGRESS,
        {"bead_id": "t-1", "context_usage": 40},
        ProgressFields(bead_id="t-1", context_usage=40),
    ),
    TypedFieldsCase("missing_gives_defaults", MessageType.DONE, None, OfferingFields()),
    TypedFieldsCase(
        "base_fields_coerced",
        MessageType.DONE,
        Fields(bead_id="t-1"),
        OfferingFields(bead_id="t-1"),
    ),
    TypedFieldsCase(
        "model_instance_kept",
        MessageType.NUDGE,
        TextFields(text="still there?"),
        TextFields(text="still there?"),
    ),
    TypedFieldsCase(
        "list_becomes_tuple",
        MessageType.PROGRESS,
        {"files_touched": ["a", "b"]},
        ProgressFields(files_touched=("a", "b")),
    ),
]


@pytest.mark.parametrize("case", TYPED_FIELDS_CASES, ids=lambda c: c.test_id)
def test_fields_are_typed_by_the_envelope_type(case: TypedFieldsCase) -> None:
    doc: dict[str, t.Any] = {"from": "mayor", "to": ["w-1"], "type": case.mtype.value}
    if case.fields is not None:
        doc["fields"] = case.fields
    env = Envelope.model_validate(doc)
    assert type(env.fields) is FIELDS_BY_TYPE[case.mtype]
    assert env.fields == case.expected


def test_every_type_has_a_fields_model() -> None:
    assert set(FIELDS_BY_TYPE) == set(MessageType)
    assert all(issubclass(model, Fields) for model in FIELDS_BY_TYPE.values())


class RefusedCase(t.NamedTuple):
    test_id: str
    overrides: dict[str, t.Any]
    loc: tuple[str | int, ...]  # where pydantic reports the error
    message: str


REFUSED_CASES = [
    RefusedCase("extra_envelope_key", {"priority": 1}, ("priority",), "Extra inputs"),
    RefusedCase(
        "extra_fields_key",
        {"fields": {"bead_id": "t-1", "mood": "ok"}},
        ("fields", "mood"),
        "Extra inputs",
    ),
    # PROGRESS fields have no commit_sha
    RefusedCase(
        "fields_of_another_type", {"fields": {"commit_sha": "a"}}, ("fields", "commit_sha"), "Extra"
    ),
    RefusedCase("unknown_type", {"type": "BOGUS"}, ("type",), "Input should be 'BEAD_ACCEPTED'"),
    RefusedCase("no_recipient", {"to": []}, ("to",), "at least one recipient"),
    RefusedCase("bad_importance", {"importance": "critical"}, ("importance",), "'urgent'"),
    RefusedCase("future_schema_version", {"v": 2}, ("v",), "Input should be 1"),
    RefusedCase("subject_too_long", {"subject": "x" * 1001}, ("subject",), "at most 1000"),
    RefusedCase("naive_created", {"created": "2026-01-31T10:00:00"}, ("created",), "timezone"),
    RefusedCase(
        "naive_datetime_object", {"created": datetime(2026, 1, 31, 10)}, ("created",), "timezone"
    ),
]


@pytest.mark.parametrize("case", REFUSED_CASES, ids=lambda c: c.test_id)
def test_envelope_refuses(case: RefusedCase) -> None:
    with pytest.raises(ValidationError) as info:
        _envelope(MessageType.PROGRESS, **case.overrides)
    errors = {err["loc"]: err["msg"] for err in info.value.errors()}
    assert case.loc in errors, errors
    assert case.message in errors[case.loc]


def test_envelope_requires_sender_recipients_and_type() -> None:
    with pytest.raises(ValidationError) as info:
        Envelope.model_validate({})
    missing = {err["loc"][0] for err in info.value.errors() if err["type"] == "missing"}
    assert missing == {"from", "to", "type"}


BAD_IDS = {
    "traversal": "../mayor",
    "slash": "a/b",
    "space": "a b",
    "tab": "a\tb",
    "newline": "mayor\n",
    "semicolon": "a;rm",
    "empty": "",
    "too_long": "a" * 65,
    "leading_dot": ".hidden",
    "leading_dash": "-rf",
    "dotdot_inside": "a..b",
}


class BadIdCase(t.NamedTuple):
    test_id: str
    key: str
    value: t.Any


BAD_ID_CASES = [
    *(BadIdCase(f"from_{name}", "from", bad) for name, bad in BAD_IDS.items()),
    *(BadIdCase(f"to_{name}", "to", ["mayor", bad]) for name, bad in BAD_IDS.items()),
    BadIdCase("cc_traversal", "cc", ["../mayor"]),
    BadIdCase("thread_slash", "thread_id", "a/b"),
    BadIdCase("run_whitespace", "run_id", "r 1"),
]


@pytest.mark.parametrize("case", BAD_ID_CASES, ids=lambda c: c.test_id)
def test_bad_ids_refused(case: BadIdCase) -> None:
    with pytest.raises(ValidationError, match="invalid id"):
        _envelope(**{case.key: case.value})


def test_longest_id_accepted() -> None:
    longest = "a" * 64
    env = _envelope(**{"from": longest, "thread_id": "T.1_x-2"})
    assert env.sender == longest


def test_created_is_normalized_to_utc() -> None:
    plus_two = datetime(2026, 1, 31, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    env = _envelope(created=plus_two.isoformat())
    assert env.created == CREATED
    assert env.created.utcoffset() == timedelta(0)
    assert json.loads(env.to_json())["created"].startswith("2026-01-31T10:00:00")


def test_created_defaults_to_now_in_utc() -> None:
    before = datetime.now(UTC)
    env = Envelope.model_validate({"from": "mayor", "to": ["w-1"], "type": "NUDGE"})
    assert before <= env.created <= datetime.now(UTC)
    assert env.created.tzinfo is not None


def test_recipients_are_to_then_cc_without_duplicates() -> None:
    env = _envelope(to=["mayor", "human"], cc=["human", "w-2", "mayor"])
    assert env.recipients == ("mayor", "human", "w-2")


def test_envelope_is_immutable() -> None:
    env = _envelope()
    with pytest.raises(ValidationError):
        env.seq = 4  # type: ignore[misc]


def test_canonical_bytes_are_stable() -> None:
    env = _envelope(MessageType.OFFERING_READY)
    again = Envelope.model_validate_json(env.to_json())
    assert env.canonical_bytes() == again.canonical_bytes()
    # independent of the key order of the input document
    shuffled = dict(reversed(list(json.loads(env.to_json()).items())))
    assert Envelope.model_validate(shuffled).canonical_bytes() == env.canonical_bytes()


def test_canonical_bytes_exclude_sig() -> None:
    env = _envelope(sig="one")
    other = env.model_copy(update={"sig": "two"})
    assert env.canonical_bytes() == other.canonical_bytes()
    doc = json.loads(env.canonical_bytes())
    assert "sig" not in doc
    assert set(doc) == set(json.loads(env.to_json())) - {"sig"}


def test_canonical_bytes_are_compact_sorted_utf8_json() -> None:
    env = _envelope(body_md="é ünïcode")
    raw = env.canonical_bytes()
    doc = json.loads(raw)
    assert (
        raw == json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert "é ünïcode".encode() in raw


class ChangeCase(t.NamedTuple):
    test_id: str
    overrides: dict[str, t.Any]


CHANGE_CASES = [
    ChangeCase("body", {"body_md": "Bead: t-2"}),
    ChangeCase("recipient", {"to": ["mayor", "w-9"]}),
    ChangeCase("fields", {"fields": {"bead_id": "t-2"}}),
    ChangeCase("seq", {"seq": 4}),
    ChangeCase("created", {"created": (CREATED + timedelta(seconds=1)).isoformat()}),
]


@pytest.mark.parametrize("case", CHANGE_CASES, ids=lambda c: c.test_id)
def test_canonical_bytes_change_with_signed_content(case: ChangeCase) -> None:
    assert _envelope(**case.overrides).canonical_bytes() != _envelope().canonical_bytes()
