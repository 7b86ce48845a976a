"""beads: the importer selects what ``bd ready`` selects, by beads' own rules.

Checked on the beads repository's own export (tests/fixtures/upstream/beads/issues.jsonl), and
on small cases ported from beads' Go tests (``internal/storage/dolt/is_blocked_test.go`` and
``queries_test.go``): each case is the issues a Go test creates, in ``issues.jsonl`` form, and
the ready set ``bd ready`` gives for them.
"""

from __future__ import annotations

import json
import pathlib
import typing as t
from datetime import UTC, datetime

import pytest

from runner.plan.importers import PlanImportError, import_plan
from runner.plan.importers.beads import import_beads
from runner.plan.importers.common import Problems
from runner.plan.load import check_plan

UPSTREAM = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "upstream"
EXPORT = UPSTREAM / "beads" / "issues.jsonl"
NOW = datetime(2026, 6, 1, tzinfo=UTC)
PAST = "2026-05-31T23:00:00Z"
FUTURE = "2026-06-02T00:00:00Z"

# What `bd ready` (default: status open, --sort priority, no --include-ephemeral/-deferred)
# lists for the export, in its order: priority, then newest first, then id.
BD_READY_ON_EXPORT: t.Final = [
    "offlinebrew-3d0",
    "offlinebrew-3d0.1",
    "aap-4ar",
    "bd-abc12",
    "bd-xyz99",
    "cr-xyz99",
    "hq-abc12",
    "hq-cv-d46qe",
    "hq-cv-ivmue",
    "bd-1lc",
    "bd-019",
    "bd-o4c",
    "bd-17p",
]


def ready_ids(text: str, bead_ids: t.Sequence[str] = ()) -> list[str]:
    plan = import_beads(text, Problems("issues.jsonl"), bead_ids, now=NOW)
    return [task["id"] for task in plan["tasks"]]


def problems_of(text: str, bead_ids: t.Sequence[str] = ()) -> list[str]:
    with pytest.raises(PlanImportError) as info:
        import_beads(text, Problems("issues.jsonl"), bead_ids, now=NOW)
    return info.value.problems


def export_rows() -> dict[str, dict[str, t.Any]]:
    rows = [json.loads(line) for line in EXPORT.read_text().splitlines()]
    return {row["id"]: row for row in rows}


# --- the beads repository's own export ----------------------------------------------------


def test_the_beads_export_selects_what_bd_ready_lists() -> None:
    assert ready_ids(EXPORT.read_text()) == BD_READY_ON_EXPORT


def test_the_beads_export_leaves_out_each_kind_of_non_work() -> None:
    rows = export_rows()
    chosen = set(ready_ids(EXPORT.read_text()))
    open_ephemeral = [r for r in rows.values() if r.get("ephemeral") and r["status"] == "open"]
    assert len(open_ephemeral) == 278  # wisps, merge requests, messages: not work
    assert not chosen & {r["id"] for r in open_ephemeral}
    assert rows["bd-pr-sheriff"]["pinned"] is True and "bd-pr-sheriff" not in chosen
    not_open = {r["id"] for r in rows.values() if r["status"] in ("in_progress", "hooked")}
    assert not_open and not chosen & not_open
    # the convoys' `tracks` dependencies point outside the export and never block
    assert {"hq-cv-d46qe", "hq-cv-ivmue"} <= chosen


def test_the_beads_export_has_dangling_dependencies_that_do_not_matter() -> None:
    rows = export_rows()
    dangling = {
        row["id"]
        for row in rows.values()
        for dep in row.get("dependencies") or []
        if dep["depends_on_id"] not in rows
    }
    # closed issues waiting on unexported wisps, convoys tracking other rigs, one wisp
    assert len(dangling) == 23
    assert "bd-o23" in dangling and rows["bd-o23"]["status"] == "closed"
    ready_ids(EXPORT.read_text())  # no problem raised


def test_the_beads_export_imports_into_a_valid_plan_with_carried_fields() -> None:
    plan = import_plan(EXPORT.read_text(), source=".beads/issues.jsonl")
    checked, problems = check_plan(plan, "imported")
    assert checked is not None, problems
    convoy = checked.task("hq-cv-d46qe")
    assert convoy.issue_type == "convoy"
    assert convoy.metadata == {"bead_id": "hq-cv-d46qe", "owner": "steve.yegge@gmail.com"}
    assert convoy.files == ("**",) and convoy.concurrency == "write-shared"


# --- cases ported from beads' Go tests ----------------------------------------------------


def bead(bead_id: str, *deps: dict[str, t.Any], status: str = "open", **extra: t.Any) -> str:
    row: dict[str, t.Any] = {"id": bead_id, "title": bead_id, "status": status, "priority": 2}
    if deps:
        row["dependencies"] = [{"issue_id": bead_id, **dep} for dep in deps]
    return json.dumps(row | extra)


def dep(target: str, kind: str = "blocks", gate: str | None = None) -> dict[str, t.Any]:
    meta = json.dumps({"gate": gate}) if gate else "{}"
    return {"depends_on_id": target, "type": kind, "metadata": meta}


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


class Ready(t.NamedTuple):
    test_id: str
    """The Go test it comes from, and the state it checks."""
    text: str
    ready: set[str]


def _inactive_parent(status: str, kind: str) -> list[str]:
    # TestGetReadyWork_LimitMatchesUnboundedForChildrenOfInactiveParents, one scenario
    p = f"{status}-{kind}"
    rows = [
        bead(f"{p}-parent", dep(f"{p}-blocker", kind), status=status),
        bead(f"{p}-child", dep(f"{p}-parent", "parent-child")),
        bead(f"{p}-blocker"),
    ]
    if kind == "waits-for":
        rows.append(bead(f"{p}-spawned", dep(f"{p}-blocker", "parent-child")))
    return rows


READY_CASES: t.Final = [
    Ready("FreshIssueIsNotBlocked", lines(bead("a")), {"a"}),
    Ready(
        "AddRemoveBlocksDepFlips/added",
        lines(bead("blocker"), bead("blocked", dep("blocker"))),
        {"blocker"},
    ),
    Ready(
        "CloseReopenBlockerFlipsDepender/closed",
        lines(bead("blocker", status="closed"), bead("blocked", dep("blocker"))),
        {"blocked"},
    ),
    Ready(
        "CloseReopenBlockerFlipsDepender/reopened",
        lines(bead("blocker"), bead("blocked", dep("blocker"))),
        {"blocker"},
    ),
    Ready(
        "PinStatusBehavesLikeClose/pinned",
        lines(bead("blocker", status="pinned"), bead("blocked", dep("blocker"))),
        {"blocked"},
    ),
    Ready(
        "ParentChildTransitivePropagation/blocked",
        lines(
            bead("gp-blocker"),
            bead("gp", dep("gp-blocker")),
            bead("parent", dep("gp", "parent-child")),
            bead("child", dep("parent", "parent-child")),
        ),
        {"gp-blocker"},
    ),
    Ready(
        "ParentChildTransitivePropagation/blocker-closed",
        lines(
            bead("gp-blocker", status="closed"),
            bead("gp", dep("gp-blocker")),
            bead("parent", dep("gp", "parent-child")),
            bead("child", dep("parent", "parent-child")),
        ),
        {"gp", "parent", "child"},
    ),
    Ready(
        "CascadeDeleteClearsDepender/tombstone",
        lines(bead("blocker", status="tombstone"), bead("blocked", dep("blocker"))),
        {"blocked"},
    ),
    Ready(
        "BatchedCreateWithDepsInOneTxn",
        lines(
            bead("blocker"),
            bead("parent", dep("blocker")),
            bead("child", dep("parent", "parent-child")),
        ),
        {"blocker"},
    ),
    Ready(
        "ConditionalBlocksAndWaitsFor",
        lines(bead("target"), bead("source", dep("target", "conditional-blocks"))),
        {"target"},
    ),
    Ready(
        "WaitsForDefaultGate/child-open",
        lines(
            bead("waiter", dep("spawner", "waits-for")),
            bead("spawner"),
            bead("kid", dep("spawner", "parent-child")),
        ),
        {"spawner", "kid"},
    ),
    Ready(
        "WaitsForDefaultGate/child-closed",
        lines(
            bead("waiter", dep("spawner", "waits-for")),
            bead("spawner"),
            bead("kid", dep("spawner", "parent-child"), status="closed"),
        ),
        {"waiter", "spawner"},
    ),
    Ready(
        "WaitsForAnyChildrenGate/none-closed",
        lines(
            bead("waiter", dep("spawner", "waits-for", "any-children")),
            bead("spawner"),
            bead("kid-1", dep("spawner", "parent-child")),
            bead("kid-2", dep("spawner", "parent-child")),
        ),
        {"spawner", "kid-1", "kid-2"},
    ),
    Ready(
        "WaitsForAnyChildrenGate/one-closed",
        lines(
            bead("waiter", dep("spawner", "waits-for", "any-children")),
            bead("spawner"),
            bead("kid-1", dep("spawner", "parent-child"), status="closed"),
            bead("kid-2", dep("spawner", "parent-child")),
        ),
        {"waiter", "spawner", "kid-2"},
    ),
    Ready(
        "WaitsFor/target-status-is-irrelevant",
        lines(bead("waiter", dep("spawner", "waits-for")), bead("spawner", status="closed")),
        {"waiter"},
    ),
    Ready(
        "ClosedDependerNotRemarkedActive",
        lines(bead("blocker"), bead("depender", dep("blocker"), status="closed")),
        {"blocker"},
    ),
    Ready("ExcludesPinnedIssues", lines(bead("pinned", pinned=True), bead("a")), {"a"}),
    Ready(
        "ExcludesBlockedIssues/in-progress-blocker-blocks",
        lines(bead("blocker", status="in_progress"), bead("blocked", dep("blocker"))),
        set(),
    ),
    Ready(
        "CustomStatusBlockerStillBlocks",
        lines(bead("blocker", status="review"), bead("blocked", dep("blocker"))),
        set(),
    ),
    Ready(
        "ready-is-status-open-only",
        lines(*(bead(s, status=s) for s in ("in_progress", "blocked", "deferred", "hooked"))),
        set(),
    ),
    Ready(
        "PastDeferredIssueIsReady",
        lines(bead("past", defer_until=PAST), bead("normal")),
        {"past", "normal"},
    ),
    Ready("FutureDeferredIssueExcluded", lines(bead("future", defer_until=FUTURE)), set()),
    Ready(
        "children-of-a-future-deferred-parent",
        lines(
            bead("later", defer_until=FUTURE, status="closed"),
            bead("kid", dep("later", "parent-child")),
            bead("grandkid", dep("kid", "parent-child")),
        ),
        {"grandkid"},  # beads leaves out the direct children only
    ),
    Ready(
        "excluded-types",
        lines(
            *(
                bead(kind, issue_type=kind)
                for kind in ("merge-request", "gate", "molecule", "message", "agent", "role", "rig")
            ),
            *(bead(kind, issue_type=kind) for kind in ("epic", "convoy", "event", "chore")),
        ),
        {"epic", "convoy", "event", "chore"},
    ),
    Ready(
        "ephemeral-is-not-work",
        lines(bead("wisp", ephemeral=True), bead("a")),
        {"a"},
    ),
    Ready(
        "non-blocking-dependency-types",
        lines(
            bead("other"),
            bead(
                "a",
                dep("other", "related"),
                dep("other", "discovered-from"),
                dep("external:x:y", "tracks"),
            ),
        ),
        {"other", "a"},
    ),
    *(
        Ready(
            f"LimitMatchesUnboundedForChildrenOfInactiveParents/{status}-{kind}",
            lines(*_inactive_parent(status, kind)),
            {f"{status}-{kind}-child", f"{status}-{kind}-blocker"}
            | ({f"{status}-{kind}-spawned"} if kind == "waits-for" else set()),
        )
        for status in ("closed", "pinned")
        for kind in ("blocks", "conditional-blocks", "waits-for")
    ),
]


@pytest.mark.parametrize("case", READY_CASES, ids=[c.test_id for c in READY_CASES])
def test_ready_like_beads(case: Ready) -> None:
    if not case.ready:
        assert any("no open, unblocked issues" in p for p in problems_of(case.text))
        return
    assert set(ready_ids(case.text)) == case.ready


def test_ready_order_is_priority_then_newest_then_id() -> None:
    # TestProtocol_ReadyOrderingIsPriorityAsc, plus bd's tie-breaks (created_at DESC, id ASC)
    text = lines(
        bead("p4", priority=4),
        bead("p0", priority=0),
        bead("p2-old", priority=2, created_at="2026-01-01T00:00:00Z"),
        bead("p2-new", priority=2, created_at="2026-02-01T00:00:00Z"),
        bead("p2-b", priority=2, created_at="2026-01-01T00:00:00Z"),
    )
    assert ready_ids(text) == ["p0", "p2-new", "p2-b", "p2-old", "p4"]


# --- missing dependencies: abort only when it matters -------------------------------------


class Missing(t.NamedTuple):
    test_id: str
    text: str
    expected: str
    """A problem line fragment, or "" when the import must succeed."""


MISSING: t.Final = [
    Missing("closed-dependent", lines(bead("done", dep("wisp-x"), status="closed"), bead("a")), ""),
    Missing("ephemeral-dependent", lines(bead("w", dep("wisp-x"), ephemeral=True), bead("a")), ""),
    Missing(
        "message-dependent", lines(bead("m", dep("wisp-x"), issue_type="message"), bead("a")), ""
    ),
    Missing("non-blocking-type", lines(bead("a", dep("gone", "discovered-from"))), ""),
    Missing(
        "open-work-blocks",
        lines(bead("a", dep("wisp-x")), bead("b")),
        "bead a: cannot tell whether bd ready lists it: it depends on blocks wisp-x, which is "
        "not in the export",
    ),
    Missing(
        "open-work-missing-parent",
        lines(bead("a", dep("epic-x", "parent-child")), bead("b")),
        "bead a: cannot tell whether bd ready lists it: it depends on parent epic-x",
    ),
    Missing(
        "blocked-anyway",
        lines(bead("blocker"), bead("a", dep("wisp-x"), dep("blocker"))),
        "",
    ),
]


@pytest.mark.parametrize("case", MISSING, ids=[c.test_id for c in MISSING])
def test_missing_dependencies(case: Missing) -> None:
    if not case.expected:
        assert ready_ids(case.text)
        return
    problems = problems_of(case.text)
    assert any(case.expected in p for p in problems), problems


def test_a_bd_ready_document_is_trusted_about_targets_it_does_not_list() -> None:
    doc = [{"id": "a", "title": "a", "dependencies": [{"id": "gone", "dependency_type": "blocks"}]}]
    assert ready_ids(json.dumps(doc)) == ["a"]


# --- --bead-ids ----------------------------------------------------------------------------


def test_bead_ids_take_the_blockers_of_blocked_ancestors_as_dependencies() -> None:
    text = lines(
        bead("gp-blocker"),
        bead("gp", dep("gp-blocker")),
        bead("child", dep("gp", "parent-child")),
    )
    plan = import_beads(text, Problems("x"), ["child", "gp-blocker"], now=NOW)
    tasks = {task["id"]: task for task in plan["tasks"]}
    assert tasks["child"]["blocked_by"] == ["gp-blocker"]
    problems = problems_of(text, ["child"])
    assert problems == [
        "issues.jsonl: bead child: blocked by gp-blocker (open); add gp-blocker to --bead-ids "
        "or finish it first"
    ]


def test_bead_ids_accept_epics_and_refuse_what_is_never_work() -> None:
    text = lines(
        bead("e", issue_type="epic"),
        bead("kid", dep("e", "parent-child")),
        bead("pin", pinned=True),
        bead("msg", issue_type="message"),
    )
    plan = import_beads(text, Problems("x"), ["e", "kid"], now=NOW)
    tasks = {task["id"]: task for task in plan["tasks"]}
    assert tasks["e"]["blocked_by"] == ["kid"]  # an epic runs after its selected children
    assert tasks["kid"]["metadata"] == {
        "bead_id": "kid",
        "parent": "e",
        "epic": "e",
        "epic_title": "e",
    }
    problems = problems_of(text, ["pin", "msg"])
    assert problems == [
        "issues.jsonl: bead pin: is pinned (a context marker), not work; bd ready never lists it",
        "issues.jsonl: bead msg: is a message, not work; bd ready never lists it",
    ]


# --- what a task carries -------------------------------------------------------------------


def test_labels_people_links_and_the_validation_block_are_kept() -> None:
    description = (
        "Implement it.\n\n```validation\n"
        '{"files_exist": ["src/auth.go"], "content_check": {"file": "src/auth.go", '
        '"pattern": "func Authenticate"}, "test_levels": {"required": ["L2"]}}\n```\n'
    )
    text = lines(
        bead("ep", issue_type="epic", title="Auth"),
        bead(
            "ep.1",
            dep("ep", "parent-child"),
            labels=["planned", "backend"],
            assignee="alice",
            external_ref="gh-12",
            description=description,
            metadata=json.dumps(
                {"files": ["src/auth.go"], "validation": {"tests": "go test ./..."}}
            ),
        ),
    )
    plan = import_beads(text, Problems("x"), ["ep.1"], now=NOW)
    (task,) = plan["tasks"]
    assert task["files"] == ["src/auth.go"]
    assert task["validation"] == {
        "files_exist": ["src/auth.go"],
        "content_check": {"file": "src/auth.go", "pattern": "func Authenticate"},
        "tests": "go test ./...",
    }
    assert task["metadata"] == {
        "bead_id": "ep.1",
        "labels": ["planned", "backend"],
        "assignee": "alice",
        "external_ref": "gh-12",
        "parent": "ep",
        "epic": "ep",
        "epic_title": "Auth",
        "test_levels": {"required": ["L2"]},
    }
    checked, problems = check_plan(plan, "imported")
    assert checked is not None, problems
