"""Envelope documents without pydantic: what ``Envelope.model_dump(mode="json")`` gives, built by
hand for the send path of ``swarm worker`` (a fresh process per report, where importing pydantic
and building the models would cost several times the interpreter's start-up), and recognized
by hand on the listing path (:func:`normal_envelope`: ``swarm mail inbox``).

The document has the envelope's keys in the model's order and every field of the type's fields
model with its default, so :func:`agentmail.delivery.send_doc` signs exactly the bytes the
pydantic path signs (``tests/agentmail/test_wire.py`` proves it type by type, and that the
receiving store verifies and parses what this module writes). The receiving side is unchanged:
every message is still parsed and checked by the pydantic models when it is acted on; a
listing shows a message without them only when it is exactly in the form the models would give
back (anything else goes to them).
"""

from __future__ import annotations

import datetime
import functools
import operator
import re
import time
import typing as t

from protocol.agentops_text import render_doc
from protocol.ids import check_id

SCHEMA_VERSION: t.Final = 1

FIELD_DEFAULTS: t.Final[dict[str, dict[str, t.Any]]] = {
    "BEAD_ACCEPTED": {"bead_id": "", "title": ""},
    "PROGRESS": {
        "bead_id": "",
        "step": "",
        "status": "",
        "context_usage": 0,
        "files_touched": [],
    },
    "HELP_REQUEST": {
        "bead_id": "",
        "issue_type": "",
        "problem": "",
        "what_tried": "",
        "question": "",
        "files_touched": [],
    },
    "OFFERING_READY": {
        "bead_id": "",
        "status": "",
        "commit_sha": "",
        "files": [],
        "tests_pass": False,
        "lint_pass": False,
        "build_pass": False,
        "summary": "",
    },
    "FAILED": {
        "bead_id": "",
        "status": "FAILED",
        "failure_type": "",
        "reason": "",
        "internal_attempts": 0,
        "partial_commit_sha": "",
        "files": [],
        "recommendation": "",
    },
    "CHECKPOINT": {
        "bead_id": "",
        "checkpoint_reason": "",
        "partial_commit_sha": "",
        "progress": "",
        "context_usage": 0,
        "next_steps": "",
    },
    "SCOPE_ESCAPE": {"bead_id": "", "finding": "", "files": [], "intent": "", "severity": ""},
    "HELP_RESPONSE": {"bead_id": "", "text": ""},
    "GUIDANCE": {"bead_id": "", "text": "", "signal": None, "tasks": []},
    "NUDGE": {"bead_id": "", "text": ""},
    "TERMINATE": {"bead_id": "", "text": "", "kill": False},
    "UNKNOWN": {"bead_id": "", "text": ""},
    "SPAWN_REQUEST": {
        "bead_id": "",
        "issue_id": "",
        "resume": False,
        "partial_commit_sha": "",
        "orchestrator": "",
    },
    "SPAWN_ACK": {"bead_id": "", "issue_id": "", "status": ""},
    "OFFERING_ACCEPTED": {"bead_id": "", "commit_sha": "", "summary": ""},
    "RETRY_REQUIRED": {
        "bead_id": "",
        "attempt": 0,
        "failure_type": "",
        "reason": "",
        "files": [],
        "rebase_onto": "",
    },
    "ASSIGN": {
        "bead_id": "",
        "title": "",
        "attempt": 1,
        "brief": "",
        "worktree": "",
        "branch": "",
        "base_sha": "",
    },
    "MERGED": {"bead_id": "", "commit_sha": "", "merge_sha": ""},
    "MERGE_FAILED": {"bead_id": "", "reason": "", "files": []},
}
"""``Fields`` of every type, as ``model_dump(mode="json")`` of the default model (the test
compares them with ``protocol.messages.FIELDS_BY_TYPE``)."""
FIELD_DEFAULTS["DONE"] = FIELD_DEFAULTS["OFFERING_READY"]
FIELD_LITERALS: t.Final[dict[str, tuple[str | None, ...]]] = {"signal": (None, "resume-dispatch")}
"""Fields whose default is None: the values the model allows (``GuidanceFields.signal``)."""

ACK_REQUIRED_BY_DEFAULT: t.Final = frozenset(
    {"HELP_REQUEST", "OFFERING_READY", "SPAWN_REQUEST", "ASSIGN", "RETRY_REQUIRED"}
)
"""``protocol.messages.ACK_REQUIRED_BY_DEFAULT`` by value (the test compares them)."""


def created_now() -> str:
    """The current UTC time as pydantic writes an aware datetime: ``...T10:00:00.123456Z``,
    the fraction left out when it is zero."""
    now = time.time_ns()
    seconds, micros = divmod(now // 1000, 1_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z" if micros else f"{stamp}Z"


def fields_doc(mtype: str, **values: t.Any) -> dict[str, t.Any]:
    """The ``fields`` of a ``mtype`` message: the defaults, with ``values`` (which must name
    fields of the type: a typo is a bug, so it raises KeyError)."""
    doc = dict(FIELD_DEFAULTS[mtype])
    for name, value in values.items():
        if name not in doc:
            raise KeyError(f"{mtype} has no field {name!r}")
        doc[name] = list(value) if isinstance(value, tuple | list) else value
    return doc


def envelope_doc(
    *,
    sender: str,
    to: t.Sequence[str],
    mtype: str,
    fields: dict[str, t.Any],
    thread_id: str | None,
    run_id: str | None,
    subject: str | None = None,
    body_md: str | None = None,
    ack_required: bool | None = None,
) -> dict[str, t.Any]:
    """The JSON document of an unsent envelope (``id`` and ``seq`` are the store's to assign).
    The subject and body default to the agentops ones rendered from ``fields``."""
    if subject is None:
        bead = fields.get("bead_id") or ""
        subject = f"[{bead}] {mtype}" if bead else mtype
    return {
        "v": SCHEMA_VERSION,
        "id": "",
        "thread_id": thread_id,
        "from": sender,
        "to": list(to),
        "cc": [],
        "type": mtype,
        "subject": subject,
        "body_md": render_doc(mtype, fields) if body_md is None else body_md,
        "fields": fields,
        "created": created_now(),
        "importance": "normal",
        "ack_required": mtype in ACK_REQUIRED_BY_DEFAULT if ack_required is None else ack_required,
        "in_reply_to": None,
        "seq": 0,
        "run_id": run_id,
        "idempotency_key": None,
        "sig": "",
    }


ENVELOPE_KEYS: t.Final = (
    "v",
    "id",
    "thread_id",
    "from",
    "to",
    "cc",
    "type",
    "subject",
    "body_md",
    "fields",
    "created",
    "importance",
    "ack_required",
    "in_reply_to",
    "seq",
    "run_id",
    "idempotency_key",
    "sig",
)
"""The envelope's keys in the model's order (``model_dump`` gives them so)."""
_KEY_SET: t.Final = frozenset(ENVELOPE_KEYS)
IMPORTANCE: t.Final = frozenset({"low", "normal", "high", "urgent"})
_CREATED_RE: t.Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?Z"
)
_INT_LIMIT: t.Final = 2**63


@functools.lru_cache(maxsize=4096)
def _checked_id(value: str) -> bool:
    try:
        check_id(value)
    except ValueError:
        return False
    return True


def _is_id(value: t.Any) -> bool:
    """:func:`check_id` as a test; the answer is kept (an inbox names few senders, often)."""
    return type(value) is str and _checked_id(value)


def _is_int(value: t.Any) -> bool:
    return type(value) is int and -_INT_LIMIT <= value < _INT_LIMIT


def _is_created(value: t.Any) -> bool:
    """An aware UTC time exactly as pydantic writes one (see :func:`created_now`)."""
    if type(value) is not str:
        return False
    match = _CREATED_RE.fullmatch(value)
    if match is None or match.group(1) == ".000000":
        return False
    try:
        datetime.datetime.fromisoformat(value[:-1])
    except ValueError:
        return False
    return True


def _kind(default: t.Any) -> str:
    if default is None:
        return "literal"
    return {str: "str", bool: "bool", int: "int", list: "list"}[type(default)]


_FIELD_KINDS: t.Final = {
    mtype: (frozenset(defaults), tuple(defaults), tuple(_kind(v) for v in defaults.values()))
    for mtype, defaults in FIELD_DEFAULTS.items()
}
"""Per type: the field names as a set, in the model's order, and what each holds."""
_ENVELOPE_VALUES: t.Final = operator.itemgetter(*ENVELOPE_KEYS)


def _normal_fields(mtype: str, fields: t.Any) -> dict[str, t.Any] | None:
    kinds = _FIELD_KINDS.get(mtype)
    if kinds is None or type(fields) is not dict or fields.keys() != kinds[0]:
        return None
    names, what = kinds[1], kinds[2]
    for name, kind in zip(names, what, strict=True):
        value = fields[name]
        if kind == "str":
            if type(value) is not str:
                return None
        elif kind == "list":
            if type(value) is not list or any(type(item) is not str for item in value):
                return None
        elif kind == "bool":
            if type(value) is not bool:
                return None
        elif kind == "int":
            if not _is_int(value):
                return None
        elif value not in FIELD_LITERALS[name] or (value is not None and type(value) is not str):
            return None
    return {name: fields[name] for name in names}


def _are_ids(names: t.Any) -> bool:
    if type(names) is not list:
        return False
    for name in names:  # noqa: SIM110 - no generator per message
        if not _is_id(name):
            return False
    return True


def normal_envelope(doc: t.Any) -> dict[str, t.Any] | None:
    """``doc`` (a parsed message file) with its keys in the model's order if it is exactly what
    ``Envelope.model_validate(doc).model_dump(mode="json")`` gives back, else None.

    It is a check of the normal form, not a second validator: every document it accepts is a
    valid envelope that the models would return unchanged (``tests/agentmail/test_wire.py``
    holds it to that), and anything else, valid or not, is for the models to judge.
    """
    if type(doc) is not dict or doc.keys() != _KEY_SET:
        return None
    values = _ENVELOPE_VALUES(doc)
    (v, _id, thread, sender, to, cc, mtype, subject, body, _fields, created, importance, ack,
     reply, seq, run, idem, sig) = values  # fmt: skip
    if not (
        type(v) is int
        and v == SCHEMA_VERSION
        and type(_id) is str
        and (thread is None or _is_id(thread))
        and _is_id(sender)
        and to
        and _are_ids(to)
        and _are_ids(cc)
        and type(mtype) is str
        and type(subject) is str
        and len(subject) <= 1000
        and type(body) is str
        and _is_created(created)
        and type(importance) is str
        and importance in IMPORTANCE
        and type(ack) is bool
        and (reply is None or type(reply) is str)
        and _is_int(seq)
        and (run is None or _is_id(run))
        and (idem is None or (type(idem) is str and len(idem) <= 200))
        and type(sig) is str
    ):
        return None
    fields = _normal_fields(mtype, _fields)
    if fields is None:
        return None
    normal = dict(zip(ENVELOPE_KEYS, values, strict=True))
    normal["fields"] = fields
    return normal
