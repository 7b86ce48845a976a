"""The agentops Agent Mail markdown format: subjects, bodies, and a port of its Go parser.

An agentops worker types a message only by its subject (``[<bead>] TYPE``) and writes a markdown
body of ``Label: value`` lines and ``## Section`` blocks. :func:`parse` turns such a pair into the
:class:`~protocol.messages.MessageType` and typed :class:`~protocol.messages.Fields` of our
envelope; :func:`render_subject` and :func:`render_body` write the same format back, so a mayor
built on this package and an agentops worker read each other's mail.

The field and section helpers port ``cli/internal/agentmail/parser.go`` exactly (first line
*containing* a label, sections that end at the next ``##`` anywhere, comma-or-newline file
lists, PASS/TRUE/YES/OK checks). Deliberate changes from the Go parser:

- the type is matched on **whole words** of the subject, not substrings, so ``ABANDONED`` is
  UNKNOWN rather than DONE, ``MERGE_FAILED`` is not FAILED and ``OFFERING_ACCEPTED`` is not
  BEAD_ACCEPTED; a bare ``ACCEPTED`` (what the agentops swarm skill watches for) is
  BEAD_ACCEPTED; a leading bead id (``[<id>]`` or ``<id>:``) is looked past first, so a task
  called ``done-1`` does not type its own subject;
- the types agentops skills send but its parser does not know, and our own types, are typed and
  (for the structured ones) parsed too;
- the free-text types (HELP_RESPONSE, GUIDANCE, NUDGE, TERMINATE, UNKNOWN) keep their trimmed
  body in ``TextFields.text``.

Everything here is pure: no I/O, no clock except the optional ``now`` of :func:`render_body`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import typing as t
from datetime import datetime

from protocol.agentops_text import render_doc, trim
from protocol.messages import (
    FIELDS_BY_TYPE,
    AssignFields,
    BeadAcceptedFields,
    CheckpointFields,
    FailedFields,
    Fields,
    HelpRequestFields,
    MergedFields,
    MergeFailedFields,
    MessageType,
    OfferingAcceptedFields,
    OfferingFields,
    ProgressFields,
    RetryRequiredFields,
    ScopeEscapeFields,
    SpawnAckFields,
    SpawnRequestFields,
    TextFields,
)

if t.TYPE_CHECKING:
    from collections.abc import Iterable

logger = logging.getLogger(__name__)

__all__ = (
    "CHECKPOINT_REASONS",
    "FAILURE_TYPES",
    "HELP_ISSUE_TYPES",
    "TEXT_TYPES",
    "ParseError",
    "ParsedMessage",
    "RawMessage",
    "bead_id_from_subject",
    "check_pass_fail",
    "extract_field",
    "extract_section",
    "filter_by_bead_id",
    "filter_by_type",
    "filter_completions",
    "filter_pending",
    "filter_successes",
    "parse",
    "parse_batch",
    "parse_body",
    "parse_file_list",
    "parse_markdown_list",
    "parse_raw",
    "render_body",
    "render_subject",
    "type_from_subject",
)

# The agentops enumerations. The Go parser upper-cases these values but never checks them, and
# neither do we: they are documented, not enforced.
HELP_ISSUE_TYPES: t.Final = ("STUCK", "SPEC_UNCLEAR", "BLOCKED", "TECHNICAL")
FAILURE_TYPES: t.Final = ("TESTS_FAIL", "BUILD_FAIL", "SPEC_IMPOSSIBLE", "CONTEXT_HIGH", "ERROR")
CHECKPOINT_REASONS: t.Final = ("CONTEXT_HIGH", "MANUAL", "TIMEOUT")

TEXT_TYPES: t.Final = frozenset(
    {
        MessageType.HELP_RESPONSE,
        MessageType.GUIDANCE,
        MessageType.NUDGE,
        MessageType.TERMINATE,
        MessageType.UNKNOWN,
    }
)
"""Types whose body is free text (``TextFields.text``), not parsed into fields."""

# -- Go string semantics ---------------------------------------------------------------------

_INT64_MIN: t.Final = -(2**63)
_INT64_MAX: t.Final = 2**63 - 1
_ATOI_RE: t.Final = re.compile(r"[+-]?[0-9]+")
_RFC3339_RE: t.Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.,][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
_BRACKET_ID_RE: t.Final = re.compile(r"^\[([^\]]+)\]")
_COLON_ID_RE: t.Final = re.compile(r"^([a-zA-Z0-9]+-[a-zA-Z0-9.]+):")
_WORD_RE: t.Final = re.compile(r"[A-Z0-9_]+")


def _go_upper(s: str) -> str:
    """Go ``strings.ToUpper``: rune by rune, never expanding (Python maps ``ß`` to ``SS``)."""
    upper = s.upper()
    if len(upper) == len(s):  # no character expanded: the same as rune by rune
        return upper
    return "".join(u if len(u := c.upper()) == 1 else c for c in s)


def _go_lower(s: str) -> str:
    """Go ``strings.ToLower``, rune by rune and length-preserving.

    Go searches the lower-cased text and slices the original with that index, which goes wrong
    when lower-casing changes a rune's UTF-8 length; keeping one character per character makes
    the index valid in the original, which is what the Go code means to do. (Python's final-sigma
    rule may differ from Go there; it cannot affect the ASCII headers and words we look for.)
    """
    lower = s.lower()
    if len(lower) == len(s):
        return lower
    return "".join(lo if len(lo := c.lower()) == 1 else c for c in s)


def _atoi(s: str) -> int | None:
    """Go ``strconv.Atoi`` on a 64-bit platform: ASCII digits, optional sign, no ``_``."""
    if not _ATOI_RE.fullmatch(s):
        return None
    n = int(s)
    return n if _INT64_MIN <= n <= _INT64_MAX else None


def _parse_rfc3339(s: str) -> datetime | None:
    """Go ``time.Parse(time.RFC3339, s)``; None where Go leaves the zero time."""
    if not _RFC3339_RE.fullmatch(s):
        return None
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


# -- the Go parser's helpers -----------------------------------------------------------------


def extract_field(text: str, label: str) -> str:
    """The trimmed rest of the first line that *contains* ``label`` (case-sensitive), or ""."""
    for line in text.split("\n"):
        idx = line.find(label)
        if idx != -1:
            return trim(line[idx + len(label) :])
    return ""


def extract_section(text: str, header: str) -> str:
    """The trimmed text after the line holding ``header`` (case-insensitive) up to the next
    ``##`` anywhere, or "" when the header is absent."""
    start = _go_lower(text).find(_go_lower(header))
    if start == -1:
        return ""
    start += len(header)
    newline = text.find("\n", start)
    if newline != -1:
        start = newline + 1
    remaining = text[start:]
    end = remaining.find("##")
    if end != -1:
        remaining = remaining[:end]
    return trim(remaining)


def parse_file_list(s: str) -> tuple[str, ...]:
    """Comma-separated if there is a comma, else one per line with ``-`` bullets stripped."""
    s = trim(s)
    if not s:
        return ()
    if "," in s:
        return tuple(f for part in s.split(",") if (f := trim(part)))
    files: list[str] = []
    for line in s.split("\n"):
        f = trim(line)
        if f.startswith("-"):
            f = trim(f[1:])
        if f:
            files.append(f)
    return tuple(files)


def parse_markdown_list(s: str) -> tuple[str, ...]:
    """The items of the ``-`` or ``*`` bullet lines of ``s``; other lines are ignored."""
    items: list[str] = []
    for raw in s.split("\n"):
        line = trim(raw)
        if line.startswith(("-", "*")):
            item = trim(line.removeprefix("-").removeprefix("*"))
            if item:
                items.append(item)
    return tuple(items)


def check_pass_fail(s: str) -> bool:
    """True for PASS, TRUE, YES or OK (any case); so the template text ``PASS/FAIL`` is False."""
    return _go_upper(trim(s)) in ("PASS", "TRUE", "YES", "OK")


def _percent(s: str) -> int | None:
    """``Context usage: 45%`` -> 45 (Go trims one ``%``, then Atoi)."""
    return _atoi(trim(s).removesuffix("%")) if s else None


# -- subjects --------------------------------------------------------------------------------

# Go's precedence order; ours come after, so a subject an agentops worker wrote types as Go
# types it. Every name is matched as a whole word, so the order only matters for subjects that
# hold several type words ("Progress: done" is PROGRESS, as in Go).
_PRECEDENCE: t.Final[tuple[tuple[str, MessageType], ...]] = (
    ("BEAD_ACCEPTED", MessageType.BEAD_ACCEPTED),
    ("ACCEPTED", MessageType.BEAD_ACCEPTED),  # the agentops swarm skill's "[<bead>] ACCEPTED"
    ("OFFERING_READY", MessageType.OFFERING_READY),
    ("HELP_REQUEST", MessageType.HELP_REQUEST),
    ("HELP_RESPONSE", MessageType.HELP_RESPONSE),
    ("SPAWN_REQUEST", MessageType.SPAWN_REQUEST),
    ("SPAWN_ACK", MessageType.SPAWN_ACK),
    ("CHECKPOINT", MessageType.CHECKPOINT),
    ("PROGRESS", MessageType.PROGRESS),
    ("FAILED", MessageType.FAILED),
    ("DONE", MessageType.DONE),
    ("OFFERING_ACCEPTED", MessageType.OFFERING_ACCEPTED),
    ("RETRY_REQUIRED", MessageType.RETRY_REQUIRED),
    ("GUIDANCE", MessageType.GUIDANCE),
    ("NUDGE", MessageType.NUDGE),
    ("TERMINATE", MessageType.TERMINATE),
    ("ASSIGN", MessageType.ASSIGN),
    ("SCOPE_ESCAPE", MessageType.SCOPE_ESCAPE),
    ("MERGED", MessageType.MERGED),
    ("MERGE_FAILED", MessageType.MERGE_FAILED),
)


def _type_from_words(text: str) -> MessageType | None:
    words = set(_WORD_RE.findall(_go_upper(text)))
    for word, mtype in _PRECEDENCE:
        if word in words:
            return mtype
    return None


def type_from_subject(subject: str) -> MessageType:
    """The message type named in ``subject`` (``TYPE``, ``[<id>] TYPE`` or ``<id>: TYPE``).

    Whole words only (letters, digits and ``_`` make a word), case-insensitive, in the Go
    parser's precedence order. The words after a leading bead id are tried first, then the
    whole subject (so ``[DONE]`` is still DONE); UNKNOWN when no type word is found.
    """
    prefix = _BRACKET_ID_RE.match(subject) or _COLON_ID_RE.match(subject)
    if prefix is not None:
        found = _type_from_words(subject[prefix.end() :])
        if found is not None:
            return found
    return _type_from_words(subject) or MessageType.UNKNOWN


def bead_id_from_subject(subject: str) -> str:
    """``[ol-527.1] PROGRESS`` or ``ol-527.1: PROGRESS`` -> ``ol-527.1``; else ""."""
    m = _BRACKET_ID_RE.match(subject) or _COLON_ID_RE.match(subject)
    return m.group(1) if m is not None else ""


def render_subject(mtype: MessageType, bead_id: str) -> str:
    """``[<bead_id>] TYPE``, or ``TYPE`` when there is no bead id."""
    return f"[{bead_id}] {mtype.value}" if bead_id else mtype.value


# -- bodies: parsing ---------------------------------------------------------------------------


def _int_or(value: str, default: int) -> int:
    n = _atoi(value)
    return default if n is None else n


def _parse_bead_accepted(body: str) -> BeadAcceptedFields:
    # "Starting implementation at:" is informational; Go ignores it.
    return BeadAcceptedFields(
        bead_id=extract_field(body, "Accepted bead:"), title=extract_field(body, "Title:")
    )


def _parse_progress(body: str) -> ProgressFields:
    usage = _percent(extract_field(body, "Context usage:"))
    return ProgressFields(
        bead_id=extract_field(body, "Bead:"),
        step=extract_field(body, "Step:"),
        status=extract_field(body, "Status:"),
        context_usage=usage or 0,
        files_touched=parse_file_list(extract_field(body, "Files touched:")),
    )


def _parse_help_request(body: str) -> HelpRequestFields:
    return HelpRequestFields(
        bead_id=extract_field(body, "Bead:"),
        issue_type=_go_upper(extract_field(body, "Issue Type:")),
        problem=extract_section(body, "## Problem"),
        what_tried=extract_section(body, "## What I Tried"),
        question=extract_section(body, "## Question"),
        files_touched=parse_markdown_list(extract_section(body, "## Files Touched")),
    )


def _parse_offering(body: str) -> OfferingFields:
    changes = extract_section(body, "## Changes")
    validation = extract_section(body, "## Self-Validation")
    return OfferingFields(
        bead_id=extract_field(body, "Bead:"),
        status=extract_field(body, "Status:"),
        commit_sha=extract_field(changes, "Commit:"),
        files=parse_file_list(extract_field(changes, "Files:")),
        tests_pass=check_pass_fail(extract_field(validation, "Tests:")),
        lint_pass=check_pass_fail(extract_field(validation, "Lint:")),
        build_pass=check_pass_fail(extract_field(validation, "Build:")),
        summary=extract_section(body, "## Summary"),
    )


def _parse_failed(body: str) -> FailedFields:
    failure = extract_section(body, "## Failure")
    partial = extract_section(body, "## Partial Progress")
    return FailedFields(
        bead_id=extract_field(body, "Bead:"),
        status="FAILED",  # Go forces it, whatever the body says
        failure_type=_go_upper(extract_field(failure, "Type:")),
        reason=extract_field(failure, "Reason:"),
        internal_attempts=_int_or(extract_field(failure, "Internal Attempts:"), 0),
        partial_commit_sha=extract_field(partial, "Commit:"),
        files=parse_file_list(extract_field(partial, "Files:")),
        recommendation=extract_section(body, "## Recommendation"),
    )


def _parse_checkpoint(body: str) -> CheckpointFields:
    progress = extract_section(body, "## Progress")
    usage = _percent(extract_field(progress, "Context usage:"))
    return CheckpointFields(
        bead_id=extract_field(body, "Bead:"),
        checkpoint_reason=_go_upper(extract_field(body, "Reason:")),
        partial_commit_sha=extract_field(progress, "Commit:"),
        progress=extract_field(progress, "Description:"),
        context_usage=usage or 0,
        next_steps=extract_section(body, "## Next Steps for Successor"),
    )


def _issue(body: str) -> str:
    return extract_field(body, "Issue:") or extract_field(body, "Bead:")


def _parse_spawn_request(body: str) -> SpawnRequestFields:
    # Go reads no bead id from a spawn body (the bead is the Issue); it comes from the subject.
    return SpawnRequestFields(
        issue_id=_issue(body),
        resume=_go_lower(extract_field(body, "Resume:")) in ("true", "yes"),
        partial_commit_sha=extract_field(body, "Checkpoint:"),
        orchestrator=extract_field(body, "Orchestrator:"),
    )


def _parse_spawn_ack(body: str) -> SpawnAckFields:
    # "Session:" is not parsed (as in Go); the fields have no place for it.
    return SpawnAckFields(issue_id=_issue(body), status=extract_field(body, "Status:"))


def _parse_assign(body: str) -> AssignFields:
    return AssignFields(
        bead_id=extract_field(body, "Bead:"),
        title=extract_field(body, "Title:"),
        attempt=_int_or(extract_field(body, "Attempt:"), AssignFields().attempt),
        worktree=extract_field(body, "Worktree:"),
        branch=extract_field(body, "Branch:"),
        base_sha=extract_field(body, "Base:"),
        brief=extract_section(body, "## Brief"),
    )


def _parse_offering_accepted(body: str) -> OfferingAcceptedFields:
    return OfferingAcceptedFields(
        bead_id=extract_field(body, "Bead:"),
        commit_sha=extract_field(body, "Commit:"),
        summary=extract_section(body, "## Summary"),
    )


def _parse_retry_required(body: str) -> RetryRequiredFields:
    return RetryRequiredFields(
        bead_id=extract_field(body, "Bead:"),
        attempt=_int_or(extract_field(body, "Attempt:"), 0),
        failure_type=extract_field(body, "Failure Type:"),
        rebase_onto=extract_field(body, "Rebase onto:"),
        reason=extract_section(body, "## Reason"),
        files=parse_markdown_list(extract_section(body, "## Files")),
    )


def _parse_scope_escape(body: str) -> ScopeEscapeFields:
    return ScopeEscapeFields(
        bead_id=extract_field(body, "Bead:"),
        severity=extract_field(body, "Severity:"),
        finding=extract_section(body, "## Finding"),
        files=parse_markdown_list(extract_section(body, "## Files")),
        intent=extract_section(body, "## Intent"),
    )


def _parse_merged(body: str) -> MergedFields:
    return MergedFields(
        bead_id=extract_field(body, "Bead:"),
        commit_sha=extract_field(body, "Commit:"),
        merge_sha=extract_field(body, "Merge:"),
    )


def _parse_merge_failed(body: str) -> MergeFailedFields:
    return MergeFailedFields(
        bead_id=extract_field(body, "Bead:"),
        reason=extract_section(body, "## Reason"),
        files=parse_markdown_list(extract_section(body, "## Files")),
    )


def _parse_fields(mtype: MessageType, body: str) -> Fields:
    match mtype:
        case MessageType.BEAD_ACCEPTED:
            return _parse_bead_accepted(body)
        case MessageType.PROGRESS:
            return _parse_progress(body)
        case MessageType.HELP_REQUEST:
            return _parse_help_request(body)
        case MessageType.OFFERING_READY | MessageType.DONE:
            return _parse_offering(body)
        case MessageType.FAILED:
            return _parse_failed(body)
        case MessageType.CHECKPOINT:
            return _parse_checkpoint(body)
        case MessageType.SPAWN_REQUEST:
            return _parse_spawn_request(body)
        case MessageType.SPAWN_ACK:
            return _parse_spawn_ack(body)
        case MessageType.ASSIGN:
            return _parse_assign(body)
        case MessageType.OFFERING_ACCEPTED:
            return _parse_offering_accepted(body)
        case MessageType.RETRY_REQUIRED:
            return _parse_retry_required(body)
        case MessageType.SCOPE_ESCAPE:
            return _parse_scope_escape(body)
        case MessageType.MERGED:
            return _parse_merged(body)
        case MessageType.MERGE_FAILED:
            return _parse_merge_failed(body)
        case _:
            assert mtype in TEXT_TYPES, mtype
            return t.cast(type[TextFields], FIELDS_BY_TYPE[mtype])(text=trim(body))


def parse_body(mtype: MessageType, body: str, subject: str = "") -> Fields:
    """The typed fields of ``body`` read as a ``mtype`` message (an instance of
    ``FIELDS_BY_TYPE[mtype]``). Lenient like Go: a missing field keeps its default.

    The bead id comes from the body (``Bead:``, ``Accepted bead:``), else from ``subject``
    (``[<id>] ...``, then ``<id>: ...``).
    """
    fields = _parse_fields(mtype, body)
    if not fields.bead_id:
        bead_id = bead_id_from_subject(subject)
        if bead_id:
            fields = fields.model_copy(update={"bead_id": bead_id})
    return fields


def parse(subject: str, body: str) -> tuple[MessageType, Fields]:
    """The type named by ``subject`` and the typed fields of ``body``."""
    mtype = type_from_subject(subject)
    return mtype, parse_body(mtype, body, subject)


# -- bodies: rendering -------------------------------------------------------------------------


def _coerce(mtype: MessageType, fields: Fields) -> Fields:
    model = FIELDS_BY_TYPE[mtype]
    if isinstance(fields, model):
        return fields
    if type(fields) is Fields:  # only a bead id: every other field takes its default
        return model(bead_id=fields.bead_id)
    raise ValueError(
        f"cannot render a {mtype.value} body from {type(fields).__name__}: "
        f"pass a {model.__name__} (protocol.messages.FIELDS_BY_TYPE)"
    )


def render_body(mtype: MessageType, fields: Fields, *, now: datetime | None = None) -> str:
    """The agentops markdown body of a ``mtype`` message carrying ``fields``.

    The agentops types follow the templates of the agentops ``agent-mail-protocol.md``; our own
    types use the same style. ``now`` is the BEAD_ACCEPTED ``Starting implementation at:``
    time (default: the current UTC time). The bead id of a spawn or free-text message is not in
    its body: it travels in the subject (:func:`render_subject`).
    """
    return render_doc(mtype.value, _coerce(mtype, fields).model_dump(), now=now)


# -- the Go parser's message surface ---------------------------------------------------------


class ParseError(ValueError):
    """Go ``ParseError``: the only error Parse reports is a nil message."""

    def __init__(self, message: str, *, field: str = "", raw: str = "") -> None:
        self.field = field
        self.message = message
        self.raw = raw
        where = f" in {field}" if field else ""
        super().__init__(f"parse error{where}: {message}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RawMessage:
    """Go ``RawMessage``: one message as the MCP Agent Mail server returns it."""

    id: str = ""
    project_key: str = ""
    sender_name: str = ""
    to: str = ""
    subject: str = ""
    body_md: str = ""
    thread_id: str = ""
    timestamp: str = ""
    ack_required: bool = False
    acked: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class ParsedMessage:
    """Go ``Message``: a raw message with its type and typed fields (Go's ``Parsed``).

    ``sender`` is Go's ``From`` (``sender_name``); ``timestamp`` is None where Go keeps the zero
    time (missing or not strict RFC 3339).
    """

    type: MessageType = MessageType.UNKNOWN
    fields: Fields = dataclasses.field(default_factory=Fields)
    id: str = ""
    subject: str = ""
    sender: str = ""
    to: str = ""
    body: str = ""
    thread_id: str = ""
    timestamp: datetime | None = None
    ack_required: bool = False
    acknowledged: bool = False


def parse_raw(raw: RawMessage | None) -> ParsedMessage:
    """Go ``Parser.Parse``: type from the subject, fields from the body; ParseError on None."""
    if raw is None:
        raise ParseError("nil message")
    mtype, fields = parse(raw.subject, raw.body_md)
    return ParsedMessage(
        type=mtype,
        fields=fields,
        id=raw.id,
        subject=raw.subject,
        sender=raw.sender_name,
        to=raw.to,
        body=raw.body_md,
        thread_id=raw.thread_id,
        timestamp=_parse_rfc3339(raw.timestamp) if raw.timestamp else None,
        ack_required=raw.ack_required,
        acknowledged=raw.acked,
    )


def parse_batch(
    raws: Iterable[RawMessage | None],
) -> tuple[list[ParsedMessage], list[ParseError]]:
    """Go ``Parser.ParseBatch``: every message that parses, and the errors of the rest."""
    messages: list[ParsedMessage] = []
    errors: list[ParseError] = []
    for raw in raws:
        try:
            messages.append(parse_raw(raw))
        except ParseError as exc:
            errors.append(exc)
    return messages, errors


def filter_by_type(messages: Iterable[ParsedMessage], mtype: MessageType) -> list[ParsedMessage]:
    return [m for m in messages if m.type == mtype]


def filter_by_bead_id(messages: Iterable[ParsedMessage], bead_id: str) -> list[ParsedMessage]:
    return [m for m in messages if m.fields.bead_id == bead_id]


def filter_completions(messages: Iterable[ParsedMessage]) -> list[ParsedMessage]:
    """OFFERING_READY, DONE, FAILED and CHECKPOINT messages."""
    return [m for m in messages if m.type.is_completion]


def filter_successes(messages: Iterable[ParsedMessage]) -> list[ParsedMessage]:
    """OFFERING_READY and DONE messages."""
    return [m for m in messages if m.type.is_success]


def filter_pending(messages: Iterable[ParsedMessage]) -> list[ParsedMessage]:
    """Messages that require an acknowledgement and have not had one."""
    return [m for m in messages if m.ack_required and not m.acknowledged]
