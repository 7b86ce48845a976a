"""Our message subjects as an agentops (Go) consumer types them.

agentops' ``cli/internal/agentmail/parser.go`` (rev044/agentops at 1b263884, the last commit
with it) types a message by *substring* of its upper-cased subject, in a fixed order. Ours is
read by whole words (protocol/agentops.py, kept exact for what agentops writes); this checks
the other direction: what a Go consumer makes of the subjects we write. docs/importers.md
lists the differences.
"""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from protocol.agentops import render_subject
from protocol.messages import MessageType

UPSTREAM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "upstream"

# parseMessageType: the first of these found anywhere in strings.ToUpper(subject)
GO_ORDER: t.Final = (
    "BEAD_ACCEPTED",
    "OFFERING_READY",
    "HELP_REQUEST",
    "HELP_RESPONSE",
    "SPAWN_REQUEST",
    "SPAWN_ACK",
    "CHECKPOINT",
    "PROGRESS",
    "FAILED",
    "DONE",
)
AGENTOPS_SET: t.Final = frozenset(GO_ORDER)


def go_type(subject: str) -> str:
    upper = subject.upper()
    return next((name for name in GO_ORDER if name in upper), "UNKNOWN")


# What a Go consumer reads for each of our types (subject "[t1] TYPE").
READ_AS: t.Final = {
    **{name: name for name in GO_ORDER},
    "MERGE_FAILED": "FAILED",
    "OFFERING_ACCEPTED": "UNKNOWN",
    "RETRY_REQUIRED": "UNKNOWN",
    "GUIDANCE": "UNKNOWN",
    "NUDGE": "UNKNOWN",
    "TERMINATE": "UNKNOWN",
    "ASSIGN": "UNKNOWN",
    "SCOPE_ESCAPE": "UNKNOWN",
    "MERGED": "UNKNOWN",
    "UNKNOWN": "UNKNOWN",
}


@pytest.mark.parametrize("mtype", list(MessageType), ids=[m.value for m in MessageType])
def test_how_a_go_consumer_types_our_subjects(mtype: MessageType) -> None:
    assert go_type(render_subject(mtype, "t1")) == READ_AS[mtype.value]


def test_every_type_is_in_the_table() -> None:
    assert set(READ_AS) == {m.value for m in MessageType}


def upstream_ids() -> list[str]:
    beads = [
        json.loads(line)["id"]
        for line in (UPSTREAM / "beads" / "issues.jsonl").read_text().splitlines()
    ]
    wave = json.loads((UPSTREAM / "agentops" / "ol-wave.json").read_text())["wave"]
    tasks = json.loads((UPSTREAM / "agentops" / "taskcreate-examples.json").read_text())
    return [*beads, *(entry["id"] for entry in wave), *(str(i + 1) for i in range(len(tasks)))]


def test_the_agentops_types_read_the_same_for_real_ids() -> None:
    """What an agentops consumer relies on (its own ten types) is typed the same for every id
    in the upstream fixtures; an id that itself holds a type word would be misread."""
    misread = {
        (tid, mtype.value)
        for tid in upstream_ids()
        for mtype in MessageType
        if mtype.value in AGENTOPS_SET and go_type(render_subject(mtype, tid)) != mtype.value
    }
    assert misread == set()


class Hazard(t.NamedTuple):
    test_id: str
    task_id: str
    mtype: MessageType
    read_as: str


HAZARDS: t.Final = [
    Hazard("id-with-progress", "fix-progress-bar", MessageType.DONE, "PROGRESS"),
    Hazard("id-with-checkpoint", "checkpoint-docs", MessageType.DONE, "CHECKPOINT"),
    Hazard("id-with-done-and-merge", "done-list", MessageType.MERGED, "DONE"),
]


@pytest.mark.parametrize("case", HAZARDS, ids=[c.test_id for c in HAZARDS])
def test_ids_holding_a_type_word_are_what_go_misreads(case: Hazard) -> None:
    assert go_type(render_subject(case.mtype, case.task_id)) == case.read_as
