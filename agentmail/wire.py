"""Envelope documents without pydantic: what ``Envelope.model_dump(mode="json")`` gives, built by
hand for the send path of ``swarm worker`` (a fresh process per report, where importing pydantic
and building the models would cost several times the interpreter's start-up).

The document has the envelope's keys in the model's order and every field of the type's fields
model with its default, so :func:`agentmail.delivery.send_doc` signs exactly the bytes the
pydantic path signs (``tests/agentmail/test_wire.py`` proves it type by type, and that the
receiving store verifies and parses what this module writes). The receiving side is unchanged:
every message is still parsed and checked by the pydantic models when it is read.
"""

from __future__ import annotations

import time
import typing as t

from protocol.agentops_text import render_doc

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
}
"""``Fields`` of each type this module builds, as ``model_dump(mode="json")`` of the default
model (the test compares them with ``protocol.messages.FIELDS_BY_TYPE``)."""
FIELD_DEFAULTS["DONE"] = FIELD_DEFAULTS["OFFERING_READY"]

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
