"""The decisions that add tasks to a run, for :func:`runner.decide.decide`: each new scope
escape is spawned as a follow-up task or rejected (the policy in :mod:`runner.escapes`), and a
failing final gate may spawn one remediation task. Pure, like the rest of ``decide``."""

from __future__ import annotations

import typing as t

from protocol.messages import (
    HelpRequestFields,
)
from protocol.plan import GateFamily, Plan, Task
from protocol.state import (
    RunState,
)
from runner import escapes
from runner.actions import (
    Decisions,
    Ev,
    Observations,
    PlanView,
    ask_human,
)


def escapes_decided(out: Decisions, plan: PlanView, obs: Observations) -> None:
    """Decide each new line of scope-escapes.jsonl exactly once (the decision records the byte
    offset after it, so a restarted mayor reads on where this one stopped)."""
    ledger = escapes.EscapeLedger.from_state(out.state)
    ids = set(out.state.tasks)
    for offset, entry in obs.escapes:
        if isinstance(entry, str):
            data: dict[str, t.Any] = {
                "offset": offset,
                "key": None,
                "spawn": False,
                "code": "malformed",
                "reason": entry,
            }
            out.record("escape_decided", **data)
            ledger = ledger.record(data)
            continue
        if entry.run_id is not None and entry.run_id != out.state.run_id:
            continue  # another run's escape
        family: GateFamily = "I"  # an escape counts against the implementation family
        decision = escapes.decide_spawn(
            escapes.SpawnPolicyInput(
                escape=entry,
                policy=out.state.auto_spawn,
                budgets=plan.plan.budgets,
                spawned_total=ledger.spawned_total,
                spawned_by_family=ledger.spawned_by_family,
                seen_keys=ledger.seen_keys,
                gate_failed=family in out.state.failed_gate_families,
                family=family,
            )
        )
        source = entry.task_id if entry.task_id in out.state.tasks else None
        tid = escapes.next_auto_id(ids) if decision.spawn else None
        data = {
            "offset": offset,
            "key": escapes.dedup_key(entry),
            "spawn": decision.spawn,
            "code": decision.code,
            "reason": decision.reason,
            "family": family,
            "task": tid,
            "pause": decision.pause,
            "source": source,
            "finding": entry.finding[:200],
        }
        if tid is not None:
            task = escapes.follow_up_task(entry, tid, source or "")
            if source is None:
                task = task.model_copy(update={"blocked_by": ()})
            data["task_def"] = task.model_dump(mode="json")
            ids.add(tid)
        pause = decision.pause and not out.paused
        out.record("escape_decided", source, **data)
        ledger = ledger.record(data)
        if pause:  # the escape_decided event itself paused dispatch (one event: atomic)
            problem = f"Critical scope escape: {entry.finding}"
            question = "Dispatch is paused. Resume it with `swarm unpause`."
            help_fields = HelpRequestFields(
                issue_type="BLOCKED",
                problem=problem,
                files_touched=tuple(entry.suggested_files),
                question=question,
            )
            out.add(ask_human(source or "run", help_fields, importance="urgent"))


def remediation(
    state: RunState, plan: Plan, check: str, reason: str, output: str, family: GateFamily
) -> Ev | None:
    """A failing final gate spawns one remediation task within its family's budget: the
    ``escape_decided`` event that does it (or refuses it), None when it was tried before."""
    key = f"{check}|remediate"
    ledger = escapes.EscapeLedger.from_state(state)
    budgets = plan.budgets
    if key in ledger.seen_keys:
        return None
    used = ledger.spawned_by_family.get(family, 0)
    if ledger.spawned_total >= budgets.spawns or used >= budgets.family.get(family, 0):
        return Ev(
            "escape_decided",
            None,
            {
                "key": key,
                "spawn": False,
                "family": family,
                "code": "budget",
                "reason": f"no budget left to remediate {check}",
            },
        )
    tid = escapes.next_auto_id(state.tasks)
    task = Task(
        id=tid,
        subject=f"Make {check} pass",
        description=f"The final {reason}. Output:\n\n{output}",
        files=("**",),
        concurrency="write-shared",
        issue_type="remediation",
        blocked_by=(),
    )
    return Ev(
        "escape_decided",
        None,
        {
            "key": key,
            "spawn": True,
            "family": family,
            "task": tid,
            "code": "spawned",
            "reason": f"remediation of {check}",
            "task_def": task.model_dump(mode="json"),
        },
    )
