"""Agent Mail message envelope, the message types and a typed ``fields`` model per type.

Field names follow the agentops Go parser's ``ParsedContent`` (``bead_id``, ``commit_sha``,
``files``, ``tests_pass``, ``failure_type`` ...), so a message written by an agentops worker and
typed only by its subject parses into the same fields (see :mod:`protocol.agentops`).
"""

from __future__ import annotations

import enum
import json
import typing as t
from datetime import UTC, datetime

from pydantic import Field, SerializeAsAny, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails

from protocol.base import SCHEMA_VERSION, Id, Model


class MessageType(enum.StrEnum):
    # the agentops set
    BEAD_ACCEPTED = "BEAD_ACCEPTED"
    PROGRESS = "PROGRESS"
    HELP_REQUEST = "HELP_REQUEST"
    HELP_RESPONSE = "HELP_RESPONSE"
    OFFERING_READY = "OFFERING_READY"
    DONE = "DONE"
    FAILED = "FAILED"
    CHECKPOINT = "CHECKPOINT"
    SPAWN_REQUEST = "SPAWN_REQUEST"
    SPAWN_ACK = "SPAWN_ACK"
    # used by the agentops skills but unknown to its parser, and ours
    OFFERING_ACCEPTED = "OFFERING_ACCEPTED"
    RETRY_REQUIRED = "RETRY_REQUIRED"
    GUIDANCE = "GUIDANCE"
    NUDGE = "NUDGE"
    TERMINATE = "TERMINATE"
    ASSIGN = "ASSIGN"
    SCOPE_ESCAPE = "SCOPE_ESCAPE"
    MERGED = "MERGED"
    MERGE_FAILED = "MERGE_FAILED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_completion(self) -> bool:
        return self in _COMPLETION

    @property
    def is_success(self) -> bool:
        return self in (MessageType.OFFERING_READY, MessageType.DONE)


_COMPLETION: t.Final = frozenset(
    {MessageType.OFFERING_READY, MessageType.DONE, MessageType.FAILED, MessageType.CHECKPOINT}
)

Importance = t.Literal["low", "normal", "high", "urgent"]
Files = tuple[str, ...]


class Fields(Model):
    """Typed content of a message body. Every type has ``bead_id`` (the task id)."""

    bead_id: str = ""


class BeadAcceptedFields(Fields):
    title: str = ""


class ProgressFields(Fields):
    step: str = ""
    status: str = ""
    context_usage: int = 0
    files_touched: Files = ()


class HelpRequestFields(Fields):
    issue_type: str = ""
    problem: str = ""
    what_tried: str = ""
    question: str = ""
    files_touched: Files = ()


class OfferingFields(Fields):
    """OFFERING_READY and DONE share one shape."""

    status: str = ""
    commit_sha: str = ""
    files: Files = ()
    tests_pass: bool = False
    lint_pass: bool = False
    build_pass: bool = False
    summary: str = ""


class FailedFields(Fields):
    status: str = "FAILED"
    failure_type: str = ""
    reason: str = ""
    internal_attempts: int = 0
    partial_commit_sha: str = ""
    files: Files = ()
    recommendation: str = ""


class CheckpointFields(Fields):
    checkpoint_reason: str = ""
    partial_commit_sha: str = ""
    progress: str = ""
    context_usage: int = 0
    next_steps: str = ""


class SpawnRequestFields(Fields):
    issue_id: str = ""
    resume: bool = False
    partial_commit_sha: str = ""
    orchestrator: str = ""


class SpawnAckFields(Fields):
    issue_id: str = ""
    status: str = ""


class TextFields(Fields):
    """HELP_RESPONSE, GUIDANCE, NUDGE, TERMINATE, UNKNOWN: free text, no parsed structure."""

    text: str = ""


class GuidanceFields(TextFields):
    signal: t.Literal["resume-dispatch", "retry"] | None = None
    """A control signal to the mayor (``swarm unpause``, ``swarm retry``), besides the text for
    people."""
    tasks: tuple[str, ...] = ()
    """The tasks a ``retry`` signal runs again."""


class TerminateFields(TextFields):
    kill: bool = False
    """Kill the running workers too (``swarm stop --kill``), not only stop dispatching."""


class AssignFields(Fields):
    title: str = ""
    attempt: int = 1
    brief: str = ""
    worktree: str = ""
    branch: str = ""
    base_sha: str = ""


class OfferingAcceptedFields(Fields):
    commit_sha: str = ""
    summary: str = ""


class RetryRequiredFields(Fields):
    attempt: int = 0
    failure_type: str = ""
    reason: str = ""
    files: Files = ()
    rebase_onto: str = ""


class ScopeEscapeFields(Fields):
    finding: str = ""
    files: Files = ()
    intent: str = ""
    severity: str = ""


class MergedFields(Fields):
    commit_sha: str = ""
    merge_sha: str = ""


class MergeFailedFields(Fields):
    reason: str = ""
    files: Files = ()


FIELDS_BY_TYPE: t.Final[dict[MessageType, type[Fields]]] = {
    MessageType.BEAD_ACCEPTED: BeadAcceptedFields,
    MessageType.PROGRESS: ProgressFields,
    MessageType.HELP_REQUEST: HelpRequestFields,
    MessageType.HELP_RESPONSE: TextFields,
    MessageType.OFFERING_READY: OfferingFields,
    MessageType.DONE: OfferingFields,
    MessageType.FAILED: FailedFields,
    MessageType.CHECKPOINT: CheckpointFields,
    MessageType.SPAWN_REQUEST: SpawnRequestFields,
    MessageType.SPAWN_ACK: SpawnAckFields,
    MessageType.OFFERING_ACCEPTED: OfferingAcceptedFields,
    MessageType.RETRY_REQUIRED: RetryRequiredFields,
    MessageType.GUIDANCE: GuidanceFields,
    MessageType.NUDGE: TextFields,
    MessageType.TERMINATE: TerminateFields,
    MessageType.ASSIGN: AssignFields,
    MessageType.SCOPE_ESCAPE: ScopeEscapeFields,
    MessageType.MERGED: MergedFields,
    MessageType.MERGE_FAILED: MergeFailedFields,
    MessageType.UNKNOWN: TextFields,
}

ACK_REQUIRED_BY_DEFAULT: t.Final = frozenset(
    {
        MessageType.HELP_REQUEST,
        MessageType.OFFERING_READY,
        MessageType.SPAWN_REQUEST,
        MessageType.ASSIGN,
        MessageType.RETRY_REQUIRED,
    }
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Envelope(Model):
    """One message, as stored in a Maildir file (one JSON document per file).

    ``sig`` is HMAC-SHA256 over :meth:`canonical_bytes` with the sender's key; ``id`` (a ULID)
    and ``seq`` (per sender) are assigned by the store at send time.
    """

    v: t.Literal[1] = SCHEMA_VERSION
    id: str = ""
    thread_id: Id | None = None
    sender: Id = Field(alias="from")
    to: tuple[Id, ...]
    cc: tuple[Id, ...] = ()
    type: MessageType
    subject: str = Field(default="", max_length=1000)
    body_md: str = ""
    fields: SerializeAsAny[Fields] = Field(default_factory=Fields)
    created: datetime = Field(default_factory=utcnow)
    importance: Importance = "normal"
    ack_required: bool = False
    in_reply_to: str | None = None
    seq: int = 0
    run_id: Id | None = None
    idempotency_key: str | None = Field(default=None, max_length=200)
    sig: str = ""

    @model_validator(mode="before")
    @classmethod
    def _typed_fields(cls, data: t.Any) -> t.Any:
        """Parse ``fields`` into the model of the envelope's ``type``."""
        if isinstance(data, dict):
            mtype = data.get("type")
            try:
                model = FIELDS_BY_TYPE[MessageType(str(mtype))]
            except (ValueError, KeyError):
                return data  # the field validator reports the bad type
            raw = data.get("fields")
            if isinstance(raw, Fields) and not isinstance(raw, model):
                raw = raw.model_dump()
            if raw is None or isinstance(raw, dict):
                try:
                    data = {**data, "fields": model.model_validate(raw or {})}
                except ValidationError as exc:  # report errors under "fields.<key>"
                    errors = [
                        InitErrorDetails(
                            type=err["type"],
                            loc=("fields", *err["loc"]),
                            input=err["input"],
                            ctx=err.get("ctx", {}),
                        )
                        for err in exc.errors()
                    ]
                    raise ValidationError.from_exception_data(cls.__name__, errors) from None
        return data

    @field_validator("to")
    @classmethod
    def _nonempty_to(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("a message needs at least one recipient")
        return value

    @field_validator("created")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("created must carry a timezone (RFC 3339)")
        return value.astimezone(UTC)

    @property
    def recipients(self) -> tuple[str, ...]:
        """``to`` then ``cc``, without duplicates, in order."""
        return tuple(dict.fromkeys((*self.to, *self.cc)))

    def canonical_bytes(self) -> bytes:
        """The signed bytes: the envelope without ``sig`` as compact, key-sorted JSON."""
        doc = self.model_dump(mode="json", exclude={"sig"})
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def to_json(self) -> str:
        return self.model_dump_json()
