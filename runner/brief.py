"""The brief: the file an agent reads to learn its task and how to report (never a shell string)."""

from __future__ import annotations

import json
import pathlib
import typing as t

from protocol.plan import Task


class BriefContext(t.NamedTuple):
    run_id: str
    task: Task
    attempt: int
    worktree: pathlib.Path
    branch: str
    base_sha: str
    retry_reason: str = ""
    retry_files: tuple[str, ...] = ()
    retry_output: str = ""
    """The failing check's last output lines, quoted (:func:`runner.why.brief_quote`)."""
    rebase_onto: str | None = None
    history: str = ""
    """What earlier attempts already did (commits in the worktree), for a restarted worker."""
    swarm: str = "swarm"
    """The absolute path of the ``swarm`` the agent reports with (a login shell's PATH may
    not have it)."""


_SHOWN_METADATA: t.Final = (
    ("bead_id", "beads issue"),
    ("ol_bead_id", "OL bead"),
    ("ol_spec_path", "spec"),
    ("external_ref", "external ref"),
    ("epic", "epic"),
    ("epic_title", "epic title"),
    ("parent", "parent"),
    ("labels", "labels"),
    ("assignee", "assignee"),
    ("owner", "owner"),
    ("test_levels", "test levels"),
)
"""What an importer carried from the source tracker that helps the agent (docs/importers.md)."""


def _metadata_section(metadata: t.Mapping[str, t.Any]) -> list[str]:
    lines: list[str] = []
    for key, label in _SHOWN_METADATA:
        value = metadata.get(key)
        if value is None or value == "" or value == []:
            continue
        if isinstance(value, list | tuple):
            shown = ", ".join(str(item) for item in value)
        elif isinstance(value, dict):
            shown = json.dumps(value, sort_keys=True)
        else:
            shown = str(value)
        lines.append(f"- {label}: {shown}")
    return ["## From the source plan", "", *lines, ""] if lines else []


def render_brief(ctx: BriefContext) -> str:
    task = ctx.task
    out: list[str] = [f"# Task {task.id}: {task.title}", ""]
    out += [
        f"Run `{ctx.run_id}`, attempt {ctx.attempt}. You work in the git worktree `{ctx.worktree}` "
        f"on branch `{ctx.branch}` (based on `{ctx.base_sha[:12]}`). Commit your work there; "
        "the mayor merges your branch after validating it.",
        "",
    ]
    if ctx.attempt > 1 and ctx.retry_reason:
        out += ["## Why the last attempt was refused", "", ctx.retry_reason, ""]
        if ctx.retry_output:
            out += [ctx.retry_output, ""]
        if ctx.retry_files:
            out += ["Files concerned:", "", *(f"- `{f}`" for f in ctx.retry_files), ""]
        if ctx.rebase_onto:
            out += [
                f"The integration branch moved on: rebase onto it first with "
                f"`git rebase {ctx.rebase_onto}` and resolve the conflicts, keeping both sides' "
                "intent.",
                "",
            ]
    if ctx.history:
        out += ["## Already done in this worktree", "", ctx.history, ""]
    if task.description:
        out += ["## Description", "", task.description.strip(), ""]
    if task.acceptance:
        out += ["## Acceptance", "", *(f"- {a}" for a in task.acceptance), ""]
    out += _metadata_section(task.metadata)
    out += ["## File manifest (you may change only these)", ""]
    if task.concurrency == "read-only":
        out += ["This task is read-only: your changes are never merged.", ""]
    out += [*(f"- `{f}`" for f in task.files), ""] if task.files else ["(none)", ""]
    out += [
        "Need a file outside the manifest? Do not edit it: report a scope escape",
        f'(`{ctx.swarm} worker escape --finding "..." --files a,b`).',
        "",
    ]
    validation = task.validation
    if not validation.empty:
        out += ["## Validation the mayor runs before merging", ""]
        out += [f"- file exists: `{f}`" for f in validation.files_exist]
        out += [f"- `{c.file}` matches `{c.pattern}`" for c in validation.content_check]
        for name in ("lint", "tests", "command"):
            if value := getattr(validation, name):
                out.append(f"- {name}: `{value}`")
        out += [f"- {c.name}: `{c.command}`" for c in validation.custom]
        out.append("")
    swarm = ctx.swarm
    out += [
        "## Report with these commands (from your worktree)",
        "",
        "```sh",
        f"{swarm} worker accepted                      # when you start",
        f'{swarm} worker progress "what you are doing" # after each major step',
        f'{swarm} worker help "what blocks you"        # when stuck (a human answers)',
        f'{swarm} worker offer "one-line summary"      # when done and committed',
        f'{swarm} worker fail "why" --type ERROR       # when it cannot be done',
        "```",
        "",
    ]
    if swarm != "swarm":
        out += [f"Use the absolute path `{swarm}`: your shell's PATH may not have `swarm`.", ""]
    return "\n".join(out)
