"""The agentops markdown format: the Go parser's test list, our deliberate changes, the exact
templates, and render/parse round trips for every message type (hypothesis)."""

from __future__ import annotations

import typing as t
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.agentops import (
    CHECKPOINT_REASONS,
    FAILURE_TYPES,
    HELP_ISSUE_TYPES,
    TEXT_TYPES,
    ParsedMessage,
    ParseError,
    RawMessage,
    bead_id_from_subject,
    check_pass_fail,
    extract_field,
    extract_section,
    filter_by_bead_id,
    filter_by_type,
    filter_completions,
    filter_pending,
    filter_successes,
    parse,
    parse_batch,
    parse_body,
    parse_file_list,
    parse_markdown_list,
    parse_raw,
    render_body,
    render_subject,
    type_from_subject,
)
from protocol.messages import (
    FIELDS_BY_TYPE,
    AssignFields,
    BeadAcceptedFields,
    CheckpointFields,
    FailedFields,
    Fields,
    GuidanceFields,
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
    TerminateFields,
    TextFields,
)

M = MessageType

# -- the Go parser's tests (parser_test.go), one named case each ------------------------------

HELP_BODY = """Bead: ol-527.2
Issue Type: STUCK

## Problem
Cannot find the existing auth module to integrate with.

## What I Tried
- Searched for auth.py, authentication.py
- Checked imports in main.py
- Looked in lib/ directory

## Files Touched
- src/main.py
- lib/utils.py

## Question
Where is the existing authentication module located?"""

OFFERING_BODY = """Bead: ol-527.1
Status: DONE

## Changes
- Commit: abc123def
- Files: src/auth.py, tests/test_auth.py, src/middleware.py

## Self-Validation
- Tests: PASS
- Lint: PASS
- Build: PASS

## Summary
Added JWT authentication middleware with token validation and refresh logic."""

DONE_BODY = """Bead: ol-527.3
Status: DONE

## Changes
- Commit: def456abc
- Files: docs/api.md

## Self-Validation
- Tests: PASS
- Lint: PASS
- Build: PASS

## Summary
Updated API documentation with new endpoints."""

FAILED_BODY = """Bead: ol-527.4
Status: FAILED

## Failure
Type: TESTS_FAIL
Reason: Integration tests fail due to missing database connection
Internal Attempts: 3

## Partial Progress
- Commit: ghi789
- Files: src/db.py, tests/test_db.py

## Recommendation
Check database configuration and ensure test fixtures are properly set up."""

CHECKPOINT_BODY = """Bead: ol-527.5
Reason: CONTEXT_HIGH

## Progress
- Commit: jkl012
- Description: Steps 1-3 complete, Step 4 in progress
- Context usage: 85%

## Next Steps for Successor
1. Complete Step 4 - finish implementing the rate limiter
2. Run remaining tests
3. Update documentation"""


class GoCase(t.NamedTuple):
    test_id: str
    raw: RawMessage
    mtype: MessageType
    expected: dict[str, object]  # attribute of the parsed fields -> value


GO_CASES = [
    GoCase(
        "bead_accepted",
        RawMessage(
            id="msg-001",
            sender_name="demigod-ol-527-1",
            to="crank-ol527",
            subject="BEAD_ACCEPTED",
            body_md="Accepted bead: ol-527.1\nTitle: Add authentication middleware\n"
            "Starting implementation at: 2026-01-31T10:00:00Z",
            thread_id="ol-527.1",
            timestamp="2026-01-31T10:00:00Z",
        ),
        M.BEAD_ACCEPTED,
        {"bead_id": "ol-527.1", "title": "Add authentication middleware"},
    ),
    GoCase(
        "bead_accepted_with_bracket_subject",
        RawMessage(
            subject="[ol-527.1] BEAD_ACCEPTED",
            body_md="Starting work on authentication middleware",
            thread_id="ol-527.1",
        ),
        M.BEAD_ACCEPTED,
        {"bead_id": "ol-527.1", "title": ""},  # the bead id comes from the subject
    ),
    GoCase(
        "progress",
        RawMessage(
            subject="PROGRESS",
            body_md="Bead: ol-527.1\nStep: Step 4 - implementing auth middleware\n"
            "Status: Writing middleware handler\nContext usage: 45%\n"
            "Files touched: src/auth.py, tests/test_auth.py",
        ),
        M.PROGRESS,
        {
            "bead_id": "ol-527.1",
            "step": "Step 4 - implementing auth middleware",
            "status": "Writing middleware handler",
            "context_usage": 45,
            "files_touched": ("src/auth.py", "tests/test_auth.py"),
        },
    ),
    GoCase(
        "help_request",
        RawMessage(subject="HELP_REQUEST", body_md=HELP_BODY, ack_required=True),
        M.HELP_REQUEST,
        {
            "bead_id": "ol-527.2",
            "issue_type": "STUCK",
            "problem": "Cannot find the existing auth module to integrate with.",
            "what_tried": "- Searched for auth.py, authentication.py\n"
            "- Checked imports in main.py\n- Looked in lib/ directory",
            "files_touched": ("src/main.py", "lib/utils.py"),
            "question": "Where is the existing authentication module located?",
        },
    ),
    GoCase(
        "offering_ready",
        RawMessage(subject="OFFERING_READY", body_md=OFFERING_BODY, ack_required=True),
        M.OFFERING_READY,
        {
            "bead_id": "ol-527.1",
            "status": "DONE",
            "commit_sha": "abc123def",
            "files": ("src/auth.py", "tests/test_auth.py", "src/middleware.py"),
            "tests_pass": True,
            "lint_pass": True,
            "build_pass": True,
            "summary": "Added JWT authentication middleware with token validation and refresh "
            "logic.",
        },
    ),
    GoCase(
        "done",
        RawMessage(subject="[ol-527.3] DONE", body_md=DONE_BODY),
        M.DONE,
        {"bead_id": "ol-527.3", "commit_sha": "def456abc", "files": ("docs/api.md",)},
    ),
    GoCase(
        "failed",
        RawMessage(subject="FAILED", body_md=FAILED_BODY),
        M.FAILED,
        {
            "bead_id": "ol-527.4",
            "status": "FAILED",
            "failure_type": "TESTS_FAIL",
            "reason": "Integration tests fail due to missing database connection",
            "internal_attempts": 3,
            "partial_commit_sha": "ghi789",
            "files": ("src/db.py", "tests/test_db.py"),
            "recommendation": "Check database configuration and ensure test fixtures are "
            "properly set up.",
        },
    ),
    GoCase(
        "checkpoint",
        RawMessage(subject="CHECKPOINT", body_md=CHECKPOINT_BODY),
        M.CHECKPOINT,
        {
            "bead_id": "ol-527.5",
            "checkpoint_reason": "CONTEXT_HIGH",
            "partial_commit_sha": "jkl012",
            "progress": "Steps 1-3 complete, Step 4 in progress",
            "context_usage": 85,
            "next_steps": "1. Complete Step 4 - finish implementing the rate limiter\n"
            "2. Run remaining tests\n3. Update documentation",
        },
    ),
    GoCase(
        "spawn_request",
        RawMessage(
            subject="SPAWN_REQUEST",
            body_md="Issue: ol-527.6\nResume: true\nCheckpoint: jkl012\nOrchestrator: crank-ol527",
            ack_required=True,
        ),
        M.SPAWN_REQUEST,
        {
            "issue_id": "ol-527.6",
            "resume": True,
            "partial_commit_sha": "jkl012",
            "orchestrator": "crank-ol527",
        },
    ),
    GoCase(
        "spawn_ack",
        RawMessage(
            subject="SPAWN_ACK",
            body_md="Issue: ol-527.6\nStatus: spawned\nSession: demigod-ol-527-6",
        ),
        M.SPAWN_ACK,
        {"issue_id": "ol-527.6", "status": "spawned"},
    ),
    GoCase(
        "unknown_type",
        RawMessage(id="msg-011", subject="RANDOM_MESSAGE", body_md="Some content"),
        M.UNKNOWN,
        {"bead_id": "", "text": "Some content"},
    ),
    GoCase(
        "help_response",
        RawMessage(
            subject="HELP_RESPONSE",
            body_md="The authentication module is located at lib/auth/middleware.py",
            thread_id="ol-527.2",
        ),
        M.HELP_RESPONSE,
        {"text": "The authentication module is located at lib/auth/middleware.py"},
    ),
    GoCase(
        "validation_failures",
        RawMessage(
            subject="OFFERING_READY",
            body_md="Bead: test-fail\nStatus: DONE\n\n## Self-Validation\n"
            "- Tests: FAIL\n- Lint: PASS\n- Build: FAIL",
        ),
        M.OFFERING_READY,
        {"tests_pass": False, "lint_pass": True, "build_pass": False},
    ),
]


@pytest.mark.parametrize("case", GO_CASES, ids=lambda c: c.test_id)
def test_go_parse(case: GoCase) -> None:
    msg = parse_raw(case.raw)
    assert msg.type == case.mtype
    assert isinstance(msg.fields, FIELDS_BY_TYPE[case.mtype])
    got = {name: getattr(msg.fields, name) for name in case.expected}
    assert got == case.expected
    assert (msg.id, msg.sender, msg.to, msg.thread_id) == (
        case.raw.id,
        case.raw.sender_name,
        case.raw.to,
        case.raw.thread_id,
    )
    assert (msg.subject, msg.body) == (case.raw.subject, case.raw.body_md)
    assert msg.ack_required == case.raw.ack_required


class KindCase(t.NamedTuple):
    test_id: str
    mtype: MessageType
    completion: bool
    success: bool


KIND_CASES = [
    KindCase("offering_ready", M.OFFERING_READY, True, True),
    KindCase("done", M.DONE, True, True),
    KindCase("failed", M.FAILED, True, False),
    KindCase("checkpoint", M.CHECKPOINT, True, False),
    KindCase("progress", M.PROGRESS, False, False),
    KindCase("bead_accepted", M.BEAD_ACCEPTED, False, False),
]


@pytest.mark.parametrize("case", KIND_CASES, ids=lambda c: c.test_id)
def test_completion_and_success_types(case: KindCase) -> None:
    assert case.mtype.is_completion == case.completion
    assert case.mtype.is_success == case.success


@pytest.mark.parametrize("issue_type", HELP_ISSUE_TYPES)
def test_help_request_issue_types(issue_type: str) -> None:
    raw = RawMessage(
        subject="HELP_REQUEST",
        body_md=f"Bead: test-123\nIssue Type: {issue_type}\n\n## Problem\nTest",
    )
    fields = parse_raw(raw).fields
    assert isinstance(fields, HelpRequestFields)
    assert (fields.issue_type, fields.problem) == (issue_type, "Test")


@pytest.mark.parametrize("failure_type", FAILURE_TYPES)
def test_failed_failure_types(failure_type: str) -> None:
    raw = RawMessage(
        subject="FAILED",
        body_md=f"Bead: test-123\n\n## Failure\nType: {failure_type}\nReason: Test failure",
    )
    fields = parse_raw(raw).fields
    assert isinstance(fields, FailedFields)
    assert (fields.failure_type, fields.reason) == (failure_type, "Test failure")


def test_parse_nil_message_is_an_error() -> None:
    with pytest.raises(ParseError, match="nil message"):
        parse_raw(None)


class TimestampCase(t.NamedTuple):
    test_id: str
    timestamp: str
    expected: datetime | None


TIMESTAMP_CASES = [
    TimestampCase("utc", "2026-01-31T10:30:00Z", datetime(2026, 1, 31, 10, 30, tzinfo=UTC)),
    TimestampCase(
        "offset_and_fraction",
        "2026-01-31T12:30:00.5+02:00",
        datetime(2026, 1, 31, 12, 30, 0, 500000, tzinfo=timezone(timedelta(hours=2))),
    ),
    # Go leaves the zero time, silently, for anything that is not strict RFC 3339
    TimestampCase("space_separator", "2026-01-31 10:30:00Z", None),
    TimestampCase("no_zone", "2026-01-31T10:30:00", None),
    TimestampCase("date_only", "2026-01-31", None),
    TimestampCase("out_of_range", "2026-13-31T10:30:00Z", None),
    TimestampCase("garbage", "yesterday", None),
    TimestampCase("empty", "", None),
]


@pytest.mark.parametrize("case", TIMESTAMP_CASES, ids=lambda c: c.test_id)
def test_parse_timestamp(case: TimestampCase) -> None:
    msg = parse_raw(
        RawMessage(subject="PROGRESS", body_md="Bead: test-123", timestamp=case.timestamp)
    )
    assert msg.timestamp == case.expected
    assert msg.fields.bead_id == "test-123"


def test_parse_batch() -> None:
    raws = [
        RawMessage(subject="BEAD_ACCEPTED", body_md="Accepted bead: test-1"),
        RawMessage(subject="PROGRESS", body_md="Bead: test-1\nStep: Working"),
        RawMessage(subject="OFFERING_READY", body_md="Bead: test-1\nStatus: DONE"),
    ]
    msgs, errors = parse_batch(raws)
    assert errors == []
    assert [m.type for m in msgs] == [M.BEAD_ACCEPTED, M.PROGRESS, M.OFFERING_READY]
    assert {m.fields.bead_id for m in msgs} == {"test-1"}


def test_parse_batch_collects_errors_and_keeps_the_rest() -> None:
    msgs, errors = parse_batch([None, RawMessage(subject="DONE"), None])
    assert [m.type for m in msgs] == [M.DONE]
    assert [str(e) for e in errors] == ["parse error: nil message"] * 2


class FilterCase(t.NamedTuple):
    test_id: str
    messages: list[ParsedMessage]
    apply: t.Callable[[list[ParsedMessage]], list[ParsedMessage]]
    expected: int


def _msg(
    mtype: MessageType, bead_id: str = "", *, ack: bool = False, acked: bool = False
) -> ParsedMessage:
    return ParsedMessage(
        type=mtype, fields=Fields(bead_id=bead_id), ack_required=ack, acknowledged=acked
    )


FILTER_CASES = [
    FilterCase(
        "by_type",
        [_msg(M.BEAD_ACCEPTED), _msg(M.PROGRESS), _msg(M.PROGRESS), _msg(M.OFFERING_READY)],
        lambda ms: filter_by_type(ms, M.PROGRESS),
        2,
    ),
    FilterCase(
        "by_bead_id",
        [
            _msg(M.PROGRESS, "test-1"),
            _msg(M.PROGRESS, "test-2"),
            _msg(M.OFFERING_READY, "test-1"),
        ],
        lambda ms: filter_by_bead_id(ms, "test-1"),
        2,
    ),
    FilterCase(
        "completions",
        [
            _msg(M.PROGRESS),
            _msg(M.OFFERING_READY),
            _msg(M.DONE),
            _msg(M.FAILED),
            _msg(M.CHECKPOINT),
            _msg(M.BEAD_ACCEPTED),
        ],
        filter_completions,
        4,
    ),
    FilterCase(
        "successes",
        [_msg(M.OFFERING_READY), _msg(M.DONE), _msg(M.FAILED), _msg(M.CHECKPOINT)],
        filter_successes,
        2,
    ),
    FilterCase(
        "pending",
        [
            _msg(M.OFFERING_READY, ack=True),
            _msg(M.PROGRESS),
            _msg(M.HELP_REQUEST, ack=True, acked=True),
            _msg(M.DONE, ack=True),
        ],
        filter_pending,
        2,
    ),
]


@pytest.mark.parametrize("case", FILTER_CASES, ids=lambda c: c.test_id)
def test_filters(case: FilterCase) -> None:
    kept = case.apply(case.messages)
    assert len(kept) == case.expected
    assert all(m in case.messages for m in kept)


class SubjectIdCase(t.NamedTuple):
    test_id: str
    subject: str
    expected: str


SUBJECT_ID_CASES = [
    SubjectIdCase("bracket", "[ol-527.1] PROGRESS", "ol-527.1"),
    SubjectIdCase("bracket_done", "[test-123] DONE", "test-123"),
    SubjectIdCase("bracket_offering", "[ag-p43.13] OFFERING_READY", "ag-p43.13"),
    SubjectIdCase("colon", "ol-527.1: PROGRESS", "ol-527.1"),
    SubjectIdCase("none", "PROGRESS", ""),
    SubjectIdCase("plain_text", "Just a message", ""),
    SubjectIdCase("colon_needs_a_dash", "task1: PROGRESS", ""),
    SubjectIdCase("bracket_not_at_start", "Re: [t1] DONE", ""),
]


@pytest.mark.parametrize("case", SUBJECT_ID_CASES, ids=lambda c: c.test_id)
def test_bead_id_from_subject(case: SubjectIdCase) -> None:
    assert bead_id_from_subject(case.subject) == case.expected


class FileListCase(t.NamedTuple):
    test_id: str
    text: str
    expected: tuple[str, ...]


FILE_LIST_CASES = [
    FileListCase(
        "comma_separated",
        "src/auth.py, tests/test_auth.py, lib/utils.py",
        ("src/auth.py", "tests/test_auth.py", "lib/utils.py"),
    ),
    FileListCase(
        "newline_separated",
        "src/auth.py\ntests/test_auth.py",
        ("src/auth.py", "tests/test_auth.py"),
    ),
    FileListCase(
        "markdown_list",
        "- src/auth.py\n- tests/test_auth.py",
        ("src/auth.py", "tests/test_auth.py"),
    ),
    FileListCase("comma_wins_over_lines", "- a, b\n- c", ("- a", "b\n- c")),
    FileListCase("empty_items_dropped", "a,, ,b", ("a", "b")),
    FileListCase("blank", "  \n ", ()),
    FileListCase("single_dash_stripped", "-x", ("x",)),
]


@pytest.mark.parametrize("case", FILE_LIST_CASES, ids=lambda c: c.test_id)
def test_parse_file_list(case: FileListCase) -> None:
    assert parse_file_list(case.text) == case.expected


def test_parse_markdown_list_keeps_only_bullets() -> None:
    text = "intro\n- a.py\n* b.py\n  -   c.py  \n-\nnot a bullet\n- *d.py"
    assert parse_markdown_list(text) == ("a.py", "b.py", "c.py", "*d.py")


# -- the helpers, exactly as Go ---------------------------------------------------------------


class FieldCase(t.NamedTuple):
    test_id: str
    text: str
    label: str
    expected: str


FIELD_CASES = [
    FieldCase("plain", "Bead: x\nStep: y", "Step:", "y"),
    FieldCase("bullet", "- Commit: abc \n", "Commit:", "abc"),
    FieldCase("first_line_wins", "Status: a\nStatus: b", "Status:", "a"),
    FieldCase("contained_anywhere", "Build Status: red\nStatus: green", "Status:", "red"),
    FieldCase("case_sensitive", "bead: x", "Bead:", ""),
    FieldCase("missing", "nothing here", "Bead:", ""),
    FieldCase("value_with_colon", "Reason: db: gone", "Reason:", "db: gone"),
    FieldCase("only_newline_splits", "Step: a\rStatus: b", "Status:", "b"),
    # Go's TrimSpace keeps the ASCII separators that Python's strip() would drop
    FieldCase("go_whitespace", "Step: \x1cx\x1c\u3000", "Step:", "\x1cx\x1c"),
]


@pytest.mark.parametrize("case", FIELD_CASES, ids=lambda c: c.test_id)
def test_extract_field(case: FieldCase) -> None:
    assert extract_field(case.text, case.label) == case.expected


class SectionCase(t.NamedTuple):
    test_id: str
    text: str
    header: str
    expected: str


SECTION_CASES = [
    SectionCase("plain", "## Summary\nDid it.\n", "## Summary", "Did it."),
    SectionCase("case_insensitive", "## SUMMARY\nDid it.", "## Summary", "Did it."),
    SectionCase("ends_at_next_header", "## A\none\n\n## B\ntwo", "## A", "one"),
    SectionCase("ends_at_hashes_anywhere", "## A\none ## two\n", "## A", "one"),
    SectionCase("missing", "## A\none", "## B", ""),
    SectionCase("header_at_end", "x\n## A", "## A", ""),
    SectionCase("rest_of_header_line_skipped", "## Summary of it\nbody", "## Summary", "body"),
    SectionCase("multi_line_trimmed", "## A\n\n  one\n  two  \n\n", "## A", "one\n  two"),
]


@pytest.mark.parametrize("case", SECTION_CASES, ids=lambda c: c.test_id)
def test_extract_section(case: SectionCase) -> None:
    assert extract_section(case.text, case.header) == case.expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PASS", True),
        ("pass", True),
        (" True ", True),
        ("yes", True),
        ("OK", True),
        ("FAIL", False),
        ("PASS/FAIL", False),  # the literal template text
        ("PASS | FAIL", False),
        ("", False),
        ("1", False),
    ],
)
def test_check_pass_fail(value: str, expected: bool) -> None:
    assert check_pass_fail(value) is expected


class BodyCase(t.NamedTuple):
    test_id: str
    mtype: MessageType
    body: str
    subject: str
    expected: Fields


BODY_CASES = [
    BodyCase(
        "context_usage_atoi_rules",
        M.PROGRESS,
        "Bead: b-1\nContext usage: +7%",
        "",
        ProgressFields(bead_id="b-1", context_usage=7),
    ),
    BodyCase(
        "context_usage_underscore_is_not_a_number",
        M.PROGRESS,
        "Context usage: 1_000%",
        "",
        ProgressFields(),
    ),
    BodyCase(
        "context_usage_space_before_percent",
        M.PROGRESS,
        "Context usage: 45 %",
        "",
        ProgressFields(),
    ),
    BodyCase(
        "context_usage_overflows_int64",
        M.PROGRESS,
        "Context usage: 9223372036854775808%",
        "",
        ProgressFields(),
    ),
    BodyCase(
        "status_inside_build_status",  # reference 2.6.4: kept as Go has it
        M.PROGRESS,
        "Bead: b-1\nBuild Status: green\nStatus: red",
        "",
        ProgressFields(bead_id="b-1", status="green"),
    ),
    BodyCase(
        "failed_forces_status",
        M.FAILED,
        "Bead: b-1\nStatus: DONE\n\n## Failure\nType: error\nInternal Attempts: three",
        "",
        FailedFields(bead_id="b-1", status="FAILED", failure_type="ERROR"),
    ),
    BodyCase(
        "checkpoint_reason_upper_cased",
        M.CHECKPOINT,
        "Bead: b-1\nReason: manual",
        "",
        CheckpointFields(bead_id="b-1", checkpoint_reason="MANUAL"),
    ),
    BodyCase(
        "spawn_issue_falls_back_to_bead",
        M.SPAWN_REQUEST,
        "Bead: b-9\nResume: YES",
        "[b-9] SPAWN_REQUEST",
        SpawnRequestFields(bead_id="b-9", issue_id="b-9", resume=True),
    ),
    BodyCase(
        "spawn_resume_false_for_anything_else",
        M.SPAWN_REQUEST,
        "Issue: b-9\nResume: 1",
        "",
        SpawnRequestFields(issue_id="b-9"),
    ),
    BodyCase(
        "spawn_ack_session_not_parsed",
        M.SPAWN_ACK,
        "Bead: b-9\nStatus: failed\nSession: s-1",
        "",
        SpawnAckFields(issue_id="b-9", status="failed"),
    ),
    BodyCase(
        "help_request_issue_type_not_checked",
        M.HELP_REQUEST,
        "Issue Type: confused",
        "",
        HelpRequestFields(issue_type="CONFUSED"),
    ),
    BodyCase(
        "body_bead_id_wins_over_subject",
        M.PROGRESS,
        "Bead: from-body",
        "[from-subject] PROGRESS",
        ProgressFields(bead_id="from-body"),
    ),
    BodyCase(
        "bead_id_from_colon_subject",
        M.PROGRESS,
        "Step: s",
        "ol-527.1: PROGRESS",
        ProgressFields(bead_id="ol-527.1", step="s"),
    ),
    BodyCase(
        "text_types_keep_the_trimmed_body",
        M.GUIDANCE,
        "\n  Bead: not-parsed\n## Look at lib/\n\n",
        "[t-1] GUIDANCE",
        GuidanceFields(bead_id="t-1", text="Bead: not-parsed\n## Look at lib/"),
    ),
    BodyCase(
        "empty_body",
        M.OFFERING_READY,
        "",
        "",
        OfferingFields(),
    ),
    BodyCase(
        "assign_bad_attempt_keeps_default",
        M.ASSIGN,
        "Bead: t-1\nAttempt: soon",
        "",
        AssignFields(bead_id="t-1", attempt=1),
    ),
]


@pytest.mark.parametrize("case", BODY_CASES, ids=lambda c: c.test_id)
def test_parse_body(case: BodyCase) -> None:
    assert parse_body(case.mtype, case.body, case.subject) == case.expected


# -- subjects: whole words (deliberate change from Go's substrings) ----------------------------


class TypeCase(t.NamedTuple):
    test_id: str
    subject: str
    expected: MessageType


TYPE_CASES = [
    TypeCase("plain", "PROGRESS", M.PROGRESS),
    TypeCase("bracket", "[ol-527.1] OFFERING_READY", M.OFFERING_READY),
    TypeCase("colon", "ol-527.1: CHECKPOINT", M.CHECKPOINT),
    TypeCase("lower_case", "[t1] help_request", M.HELP_REQUEST),
    TypeCase("abandoned_is_not_done", "ABANDONED", M.UNKNOWN),
    TypeCase("substring_is_not_a_word", "PROGRESSING", M.UNKNOWN),
    TypeCase("random", "RANDOM_MESSAGE", M.UNKNOWN),
    TypeCase("empty", "", M.UNKNOWN),
    TypeCase("accepted_alias", "[ol-527.1] ACCEPTED", M.BEAD_ACCEPTED),
    TypeCase("offering_accepted_not_bead_accepted", "[t1] OFFERING_ACCEPTED", M.OFFERING_ACCEPTED),
    TypeCase("merge_failed_not_failed", "[t1] MERGE_FAILED", M.MERGE_FAILED),
    TypeCase("merged_not_merge_failed", "[t1] MERGED", M.MERGED),
    TypeCase("spawn_ack_not_ack", "SPAWN_ACK", M.SPAWN_ACK),
    TypeCase("go_precedence", "Progress: done", M.PROGRESS),
    TypeCase("go_precedence_failed_before_done", "DONE or FAILED?", M.FAILED),
    TypeCase("go_types_before_ours", "[t1] NUDGE: still PROGRESS?", M.PROGRESS),
    TypeCase("bead_id_looked_past", "[done-1] PROGRESS", M.PROGRESS),
    TypeCase("colon_bead_id_looked_past", "failed-2: OFFERING_READY", M.OFFERING_READY),
    TypeCase("bracket_alone_still_typed", "[DONE]", M.DONE),
    TypeCase("prefix_not_at_start", "Re: [t1] SCOPE_ESCAPE", M.SCOPE_ESCAPE),
    TypeCase("punctuation_separates_words", "[t1] TERMINATE!", M.TERMINATE),
    TypeCase("ours_assign", "[t1] ASSIGN", M.ASSIGN),
    TypeCase("ours_retry", "[t1] RETRY_REQUIRED", M.RETRY_REQUIRED),
    TypeCase("ours_guidance", "[t1] GUIDANCE", M.GUIDANCE),
]


@pytest.mark.parametrize("case", TYPE_CASES, ids=lambda c: c.test_id)
def test_type_from_subject(case: TypeCase) -> None:
    assert type_from_subject(case.subject) == case.expected


def test_render_subject() -> None:
    assert render_subject(M.PROGRESS, "ol-527.1") == "[ol-527.1] PROGRESS"
    assert render_subject(M.DONE, "") == "DONE"


# -- rendering: the agentops templates, exactly ------------------------------------------------

NOW = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)


class RenderCase(t.NamedTuple):
    test_id: str
    mtype: MessageType
    fields: Fields
    expected: str


RENDER_CASES = [
    RenderCase(
        "bead_accepted",
        M.BEAD_ACCEPTED,
        BeadAcceptedFields(bead_id="ol-527.1", title="Add authentication middleware"),
        "Accepted bead: ol-527.1\nTitle: Add authentication middleware\n"
        "Starting implementation at: 2026-01-31T10:00:00Z",
    ),
    RenderCase(
        "progress",
        M.PROGRESS,
        ProgressFields(
            bead_id="ol-527.1",
            step="Step 4 - implementing auth middleware",
            status="Writing middleware handler",
            context_usage=45,
            files_touched=("src/auth.py", "tests/test_auth.py"),
        ),
        "Bead: ol-527.1\nStep: Step 4 - implementing auth middleware\n"
        "Status: Writing middleware handler\nContext usage: 45%\n"
        "Files touched: src/auth.py, tests/test_auth.py",
    ),
    RenderCase(
        "help_request",
        M.HELP_REQUEST,
        HelpRequestFields(
            bead_id="ol-527.2",
            issue_type="STUCK",
            problem="Cannot find the existing auth module to integrate with.",
            what_tried="- Searched for auth.py, authentication.py\n"
            "- Checked imports in main.py\n- Looked in lib/ directory",
            files_touched=("src/main.py", "lib/utils.py"),
            question="Where is the existing authentication module located?",
        ),
        HELP_BODY,
    ),
    RenderCase(
        "offering_ready",
        M.OFFERING_READY,
        OfferingFields(
            bead_id="ol-527.1",
            status="DONE",
            commit_sha="abc123def",
            files=("src/auth.py", "tests/test_auth.py", "src/middleware.py"),
            tests_pass=True,
            lint_pass=True,
            build_pass=True,
            summary="Added JWT authentication middleware with token validation and refresh logic.",
        ),
        OFFERING_BODY,
    ),
    RenderCase(
        "done",
        M.DONE,
        OfferingFields(
            bead_id="ol-527.3",
            status="DONE",
            commit_sha="def456abc",
            files=("docs/api.md",),
            tests_pass=True,
            lint_pass=True,
            build_pass=True,
            summary="Updated API documentation with new endpoints.",
        ),
        DONE_BODY,
    ),
    RenderCase(
        "failed",
        M.FAILED,
        FailedFields(
            bead_id="ol-527.4",
            failure_type="TESTS_FAIL",
            reason="Integration tests fail due to missing database connection",
            internal_attempts=3,
            partial_commit_sha="ghi789",
            files=("src/db.py", "tests/test_db.py"),
            recommendation="Check database configuration and ensure test fixtures are "
            "properly set up.",
        ),
        FAILED_BODY,
    ),
    RenderCase(
        "checkpoint",
        M.CHECKPOINT,
        CheckpointFields(
            bead_id="ol-527.5",
            checkpoint_reason="CONTEXT_HIGH",
            partial_commit_sha="jkl012",
            progress="Steps 1-3 complete, Step 4 in progress",
            context_usage=85,
            next_steps="1. Complete Step 4 - finish implementing the rate limiter\n"
            "2. Run remaining tests\n3. Update documentation",
        ),
        CHECKPOINT_BODY,
    ),
    RenderCase(
        "spawn_request",
        M.SPAWN_REQUEST,
        SpawnRequestFields(
            issue_id="ol-527.6",
            resume=True,
            partial_commit_sha="jkl012",
            orchestrator="crank-ol527",
        ),
        "Issue: ol-527.6\nResume: true\nCheckpoint: jkl012\nOrchestrator: crank-ol527",
    ),
    RenderCase(
        "spawn_ack",
        M.SPAWN_ACK,
        SpawnAckFields(issue_id="ol-527.6", status="spawned"),
        "Issue: ol-527.6\nStatus: spawned",
    ),
    RenderCase(
        "help_response",
        M.HELP_RESPONSE,
        TextFields(bead_id="ol-527.2", text="Look in lib/auth/."),
        "Look in lib/auth/.",
    ),
    RenderCase(
        "empty_values_leave_bare_labels",
        M.MERGED,
        MergedFields(bead_id="t-1"),
        "Bead: t-1\nCommit:\nMerge:",
    ),
    RenderCase(
        "empty_sections_leave_bare_headers",
        M.MERGE_FAILED,
        MergeFailedFields(bead_id="t-1"),
        "Bead: t-1\n\n## Reason\n\n## Files",
    ),
    RenderCase(
        "newline_in_a_label_value_cannot_forge_a_field",
        M.PROGRESS,
        ProgressFields(bead_id="t-1", step="one\nBead: evil"),
        "Bead: t-1\nStep: one Bead: evil\nStatus:\nContext usage: 0%\nFiles touched:",
    ),
    RenderCase(
        "bare_fields_take_the_type_defaults",
        M.ASSIGN,
        Fields(bead_id="t-1"),
        "Bead: t-1\nTitle:\nAttempt: 1\nWorktree:\nBranch:\nBase:\n\n## Brief",
    ),
]


@pytest.mark.parametrize("case", RENDER_CASES, ids=lambda c: c.test_id)
def test_render_body(case: RenderCase) -> None:
    assert render_body(case.mtype, case.fields, now=NOW) == case.expected


def test_render_body_refuses_fields_of_another_type() -> None:
    with pytest.raises(ValueError, match="PROGRESS body from AssignFields"):
        render_body(M.PROGRESS, AssignFields(bead_id="t-1"))


def test_bead_accepted_time_defaults_to_now() -> None:
    body = render_body(M.BEAD_ACCEPTED, BeadAcceptedFields(bead_id="t-1"))
    started = extract_field(body, "Starting implementation at:")
    assert datetime.fromisoformat(started).tzinfo is not None


def test_our_types_round_trip_by_example() -> None:
    examples: list[tuple[MessageType, Fields]] = [
        (
            M.ASSIGN,
            AssignFields(
                bead_id="t-1",
                title="Add login",
                attempt=2,
                brief="Implement /login.\n\nFiles: src/login.py",
                worktree="/tmp/wt/t-1",
                branch="swarm/r1/t-1",
                base_sha="0a1b2c",
            ),
        ),
        (
            M.OFFERING_ACCEPTED,
            OfferingAcceptedFields(bead_id="t-1", commit_sha="abc", summary="ok"),
        ),
        (
            M.RETRY_REQUIRED,
            RetryRequiredFields(
                bead_id="t-1",
                attempt=2,
                failure_type="SCOPE_VIOLATION",
                reason="changed files outside the manifest:\n  docs/x.md",
                files=("docs/x.md", "a,b.txt"),
                rebase_onto="deadbeef",
            ),
        ),
        (
            M.SCOPE_ESCAPE,
            ScopeEscapeFields(
                bead_id="t-1",
                finding="config loader ignores env",
                files=("src/config.py",),
                intent="read SWARM_* variables",
                severity="high",
            ),
        ),
        (M.MERGED, MergedFields(bead_id="t-1", commit_sha="abc", merge_sha="def")),
        (
            M.MERGE_FAILED,
            MergeFailedFields(bead_id="t-1", reason="conflict", files=("src/a.py", "src/b.py")),
        ),
    ]
    for mtype, fields in examples:
        subject = render_subject(mtype, fields.bead_id)
        assert parse(subject, render_body(mtype, fields)) == (mtype, fields), mtype


# -- round trips for every type (hypothesis) -------------------------------------------------

# Go's unicode.IsSpace: what strings.TrimSpace strips at both ends of every value it reads.
GO_SPACE = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# Every `Label:` the formats read. extract_field takes the first line that *contains* a label,
# so a value must not hold one (it would be read in place of the real line).
LABELS = (
    "Accepted bead:", "Title:", "Starting implementation at:", "Bead:", "Step:", "Status:",
    "Context usage:", "Files touched:", "Issue Type:", "Commit:", "Files:", "Tests:", "Lint:",
    "Build:", "Type:", "Reason:", "Internal Attempts:", "Description:", "Issue:", "Resume:",
    "Checkpoint:", "Orchestrator:", "Attempt:", "Worktree:", "Branch:", "Base:",
    "Failure Type:", "Rebase onto:", "Severity:", "Merge:",
)  # fmt: skip


def _no_label(value: str) -> bool:
    return not any(label in value for label in LABELS)


# Any text hypothesis makes (no surrogates), trimmed the way the parser trims.
_text = st.text(max_size=40).map(lambda s: s.strip(GO_SPACE))

# `Label: value` lines: one line (a newline ends the value), trimmed, no "##" (a section header
# is searched anywhere in the body), and no label inside.
label_values = _text.filter(lambda s: "\n" not in s and "##" not in s and _no_label(s))

# `## Section` text: any lines, trimmed, but no "##" (a section ends at the next "##" anywhere).
section_texts = _text.filter(lambda s: "##" not in s)

# Values the parser upper-cases (issue type, failure type, checkpoint reason): upper case.
upper_values = st.sampled_from(HELP_ISSUE_TYPES + FAILURE_TYPES + CHECKPOINT_REASONS) | (
    label_values.filter(lambda s: s == s.upper())
)

# File names: non-empty label values with no comma (comma lists split on it) and not starting
# with "-" (a lone file is read as a "-" bullet line).
file_names = label_values.filter(lambda s: s != "" and "," not in s and not s.startswith("-"))
file_lists = st.lists(file_names, max_size=4).map(tuple)

# Task ids (protocol.base.Id) and the empty id.
bead_ids = st.just("") | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda s: ".." not in s
)
# Go's Atoi range.
ints = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def fields_for(mtype: MessageType, bead_id: st.SearchStrategy[str]) -> st.SearchStrategy[Fields]:
    """Fields of ``mtype`` that its body format can carry, with ``bead_id`` as the bead id."""
    model = FIELDS_BY_TYPE[mtype]
    b = bead_id
    if model is BeadAcceptedFields:
        return st.builds(BeadAcceptedFields, bead_id=b, title=label_values)
    if model is ProgressFields:
        return st.builds(
            ProgressFields,
            bead_id=b,
            step=label_values,
            status=label_values,
            context_usage=ints,
            files_touched=file_lists,
        )
    if model is HelpRequestFields:
        return st.builds(
            HelpRequestFields,
            bead_id=b,
            issue_type=upper_values,
            problem=section_texts,
            what_tried=section_texts,
            question=section_texts,
            files_touched=file_lists,
        )
    if model is OfferingFields:
        return st.builds(
            OfferingFields,
            bead_id=b,
            status=label_values,
            commit_sha=label_values,
            files=file_lists,
            tests_pass=st.booleans(),
            lint_pass=st.booleans(),
            build_pass=st.booleans(),
            summary=section_texts,
        )
    if model is FailedFields:
        return st.builds(
            FailedFields,
            bead_id=b,
            status=st.just("FAILED"),  # the parser forces it
            failure_type=upper_values,
            reason=label_values,
            internal_attempts=ints,
            partial_commit_sha=label_values,
            files=file_lists,
            recommendation=section_texts,
        )
    if model is CheckpointFields:
        return st.builds(
            CheckpointFields,
            bead_id=b,
            checkpoint_reason=upper_values,
            partial_commit_sha=label_values,
            progress=label_values,
            context_usage=ints,
            next_steps=section_texts,
        )
    if model is SpawnRequestFields:
        return st.builds(
            SpawnRequestFields,
            bead_id=b,
            issue_id=label_values,
            resume=st.booleans(),
            partial_commit_sha=label_values,
            orchestrator=label_values,
        )
    if model is SpawnAckFields:
        return st.builds(SpawnAckFields, bead_id=b, issue_id=label_values, status=label_values)
    if model in (TextFields, GuidanceFields, TerminateFields):
        # any trimmed text, "##" included; a control signal or kill flag is not in the body
        return st.builds(model, bead_id=b, text=_text)
    if model is AssignFields:
        return st.builds(
            AssignFields,
            bead_id=b,
            title=label_values,
            attempt=ints,
            brief=section_texts,
            worktree=label_values,
            branch=label_values,
            base_sha=label_values,
        )
    if model is OfferingAcceptedFields:
        return st.builds(
            OfferingAcceptedFields, bead_id=b, commit_sha=label_values, summary=section_texts
        )
    if model is RetryRequiredFields:
        return st.builds(
            RetryRequiredFields,
            bead_id=b,
            attempt=ints,
            failure_type=label_values,
            reason=section_texts,
            files=file_lists,
            rebase_onto=label_values,
        )
    if model is ScopeEscapeFields:
        return st.builds(
            ScopeEscapeFields,
            bead_id=b,
            finding=section_texts,
            files=file_lists,
            intent=section_texts,
            severity=label_values,
        )
    if model is MergedFields:
        return st.builds(MergedFields, bead_id=b, commit_sha=label_values, merge_sha=label_values)
    if model is MergeFailedFields:
        return st.builds(MergeFailedFields, bead_id=b, reason=section_texts, files=file_lists)
    raise AssertionError(f"no strategy for {model.__name__}")


# Spawn and free-text bodies carry no bead id (it travels in the subject), so parse_body alone
# gives it back only when it is empty.
NO_BODY_BEAD_ID = TEXT_TYPES | {M.SPAWN_REQUEST, M.SPAWN_ACK}


@pytest.mark.parametrize("mtype", list(MessageType), ids=str)
@given(data=st.data())
def test_parse_body_inverts_render_body(mtype: MessageType, data: st.DataObject) -> None:
    fields = data.draw(fields_for(mtype, st.just("") if mtype in NO_BODY_BEAD_ID else bead_ids))
    assert parse_body(mtype, render_body(mtype, fields)) == fields


@pytest.mark.parametrize("mtype", [m for m in MessageType if m != M.UNKNOWN], ids=str)
@given(data=st.data())
def test_parse_inverts_render(mtype: MessageType, data: st.DataObject) -> None:
    fields = data.draw(fields_for(mtype, bead_ids))
    subject = render_subject(mtype, fields.bead_id)
    assert parse(subject, render_body(mtype, fields)) == (mtype, fields)


# Ids that are themselves type words must not type the subject.
subject_ids = bead_ids | st.sampled_from([m.value for m in MessageType] + ["ACCEPTED", "done-1"])


@pytest.mark.parametrize("mtype", [m for m in MessageType if m != M.UNKNOWN], ids=str)
@given(bead_id=subject_ids)
def test_type_from_subject_inverts_render_subject(mtype: MessageType, bead_id: str) -> None:
    subject = render_subject(mtype, bead_id)
    assert type_from_subject(subject) == mtype
    assert bead_id_from_subject(subject) == bead_id
