"""The brief shows what an importer carried from the source plan (labels, people, links,
test levels), so the agent sees it."""

from __future__ import annotations

import json
import pathlib

from protocol.plan import Task
from runner.brief import BriefContext, render_brief
from runner.plan.importers import import_plan
from runner.plan.load import check_plan


def brief_of(task: Task) -> str:
    ctx = BriefContext(
        run_id="r1",
        task=task,
        attempt=1,
        worktree=pathlib.Path("/tmp/wt"),
        branch="swarm/r1/t",
        base_sha="0" * 40,
    )
    return render_brief(ctx)


def test_brief_shows_carried_bead_fields() -> None:
    rows = [
        {"id": "ep", "title": "Auth", "issue_type": "epic", "status": "closed"},
        {
            "id": "ep.1",
            "title": "Login",
            "labels": ["planned", "backend"],
            "assignee": "alice",
            "external_ref": "gh-12",
            "dependencies": [{"issue_id": "ep.1", "depends_on_id": "ep", "type": "parent-child"}],
            "metadata": {"validation": {"test_levels": {"required": ["L2"]}}},
        },
    ]
    raw = import_plan("".join(json.dumps(r) + "\n" for r in rows), source="issues.jsonl")
    plan, problems = check_plan(raw, "issues.jsonl")
    assert plan is not None, problems
    text = brief_of(plan.task("ep.1"))
    section = text[text.index("## From the source plan") :].split("\n\n")[1]
    assert section.splitlines() == [
        "- beads issue: ep.1",
        "- external ref: gh-12",
        "- epic: ep",
        "- epic title: Auth",
        "- parent: ep",
        "- labels: planned, backend",
        "- assignee: alice",
        '- test levels: {"required": ["L2"]}',
    ]


def test_brief_without_carried_fields_has_no_section() -> None:
    assert "## From the source plan" not in brief_of(Task(id="t1", files=("a.py",)))
