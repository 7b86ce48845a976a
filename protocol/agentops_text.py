"""The agentops markdown bodies, rendered from plain field mappings (no pydantic).

:func:`protocol.agentops.render_body` renders a typed :class:`~protocol.messages.Fields` through
:func:`render_doc`; the fast send path of ``swarm worker`` (which never imports pydantic, see
``agentmail.wire``) renders the same bodies from the dictionaries it builds. The templates follow
the agentops ``agent-mail-protocol.md``; our own types use the same style.
"""

from __future__ import annotations

import time
import typing as t

if t.TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime

# Go's unicode.IsSpace, which strings.TrimSpace uses. Python's str.strip() also strips
# \x1c-\x1f, which Go keeps; a faithful port trims exactly Go's set.
GO_SPACE: t.Final = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def trim(s: str) -> str:
    """Go ``strings.TrimSpace``."""
    return s.strip(GO_SPACE)


def _line(value: str) -> str:
    """A ``Label:`` value on one line: a newline would end the value (and could forge a field)."""
    return trim(value.replace("\n", " "))


def _rfc3339(moment: datetime | None) -> str:
    """``2026-01-31T10:00:00Z`` (None: now); a naive time is taken as UTC."""
    if moment is None:  # no datetime import: the fast send path renders BEAD_ACCEPTED too
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    from datetime import UTC

    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _kv(label: str, value: str) -> str:
    """``Label: value``, or a bare ``Label:`` (no trailing blank) when the value is empty."""
    value = _line(value)
    return f"{label} {value}" if value else label


def _pass_fail(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _comma_list(files: Sequence[str]) -> str:
    return ", ".join(_line(f) for f in files)


def _block(text: str) -> list[str]:
    """A section's text; nothing for an empty section (the header alone reads back as "")."""
    return [text] if text else []


def _bullets(files: Sequence[str]) -> list[str]:
    return [f"- {_line(f)}" for f in files]


def render_doc(mtype: str, f: Mapping[str, t.Any], *, now: datetime | None = None) -> str:
    """The body of a ``mtype`` message (a :class:`~protocol.messages.MessageType` value) whose
    fields are ``f`` (every key of the type's fields model). ``now`` is the BEAD_ACCEPTED
    ``Starting implementation at:`` time (default: the current UTC time)."""
    lines: list[str]
    match mtype:
        case "BEAD_ACCEPTED":
            started = _rfc3339(now)
            lines = [
                _kv("Accepted bead:", f["bead_id"]),
                _kv("Title:", f["title"]),
                f"Starting implementation at: {started}",
            ]
        case "PROGRESS":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Step:", f["step"]),
                _kv("Status:", f["status"]),
                f"Context usage: {f['context_usage']}%",
                _kv("Files touched:", _comma_list(f["files_touched"])),
            ]
        case "HELP_REQUEST":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Issue Type:", f["issue_type"]),
                "",
                "## Problem",
                *_block(f["problem"]),
                "",
                "## What I Tried",
                *_block(f["what_tried"]),
                "",
                "## Files Touched",
                *_bullets(f["files_touched"]),
                "",
                "## Question",
                *_block(f["question"]),
            ]
        case "OFFERING_READY" | "DONE":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Status:", f["status"]),
                "",
                "## Changes",
                _kv("- Commit:", f["commit_sha"]),
                _kv("- Files:", _comma_list(f["files"])),
                "",
                "## Self-Validation",
                f"- Tests: {_pass_fail(f['tests_pass'])}",
                f"- Lint: {_pass_fail(f['lint_pass'])}",
                f"- Build: {_pass_fail(f['build_pass'])}",
                "",
                "## Summary",
                *_block(f["summary"]),
            ]
        case "FAILED":
            lines = [
                _kv("Bead:", f["bead_id"]),
                "Status: FAILED",
                "",
                "## Failure",
                _kv("Type:", f["failure_type"]),
                _kv("Reason:", f["reason"]),
                f"Internal Attempts: {f['internal_attempts']}",
                "",
                "## Partial Progress",
                _kv("- Commit:", f["partial_commit_sha"]),
                _kv("- Files:", _comma_list(f["files"])),
                "",
                "## Recommendation",
                *_block(f["recommendation"]),
            ]
        case "CHECKPOINT":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Reason:", f["checkpoint_reason"]),
                "",
                "## Progress",
                _kv("- Commit:", f["partial_commit_sha"]),
                _kv("- Description:", f["progress"]),
                f"- Context usage: {f['context_usage']}%",
                "",
                "## Next Steps for Successor",
                *_block(f["next_steps"]),
            ]
        case "SPAWN_REQUEST":
            lines = [
                _kv("Issue:", f["issue_id"]),
                f"Resume: {'true' if f['resume'] else 'false'}",
                _kv("Checkpoint:", f["partial_commit_sha"]),
                _kv("Orchestrator:", f["orchestrator"]),
            ]
        case "SPAWN_ACK":
            # The template's "Session:" line is left out: no field carries it (Go ignores it).
            lines = [_kv("Issue:", f["issue_id"]), _kv("Status:", f["status"])]
        case "ASSIGN":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Title:", f["title"]),
                f"Attempt: {f['attempt']}",
                _kv("Worktree:", f["worktree"]),
                _kv("Branch:", f["branch"]),
                _kv("Base:", f["base_sha"]),
                "",
                "## Brief",
                *_block(f["brief"]),
            ]
        case "OFFERING_ACCEPTED":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Commit:", f["commit_sha"]),
                "",
                "## Summary",
                *_block(f["summary"]),
            ]
        case "RETRY_REQUIRED":
            lines = [
                _kv("Bead:", f["bead_id"]),
                f"Attempt: {f['attempt']}",
                _kv("Failure Type:", f["failure_type"]),
                _kv("Rebase onto:", f["rebase_onto"]),
                "",
                "## Reason",
                *_block(f["reason"]),
                "",
                "## Files",
                *_bullets(f["files"]),
            ]
        case "SCOPE_ESCAPE":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Severity:", f["severity"]),
                "",
                "## Finding",
                *_block(f["finding"]),
                "",
                "## Files",
                *_bullets(f["files"]),
                "",
                "## Intent",
                *_block(f["intent"]),
            ]
        case "MERGED":
            lines = [
                _kv("Bead:", f["bead_id"]),
                _kv("Commit:", f["commit_sha"]),
                _kv("Merge:", f["merge_sha"]),
            ]
        case "MERGE_FAILED":
            lines = [
                _kv("Bead:", f["bead_id"]),
                "",
                "## Reason",
                *_block(f["reason"]),
                "",
                "## Files",
                *_bullets(f["files"]),
            ]
        case _:  # the free-text types
            return str(f["text"])
    return "\n".join(lines)
