"""decide's use of what the agent layer observed: exit reasons (last lines, no blind retry of
a quick exit) and pane reports (a dialog to the human, a nudge typed into the pane)."""

from __future__ import annotations

from protocol.messages import MessageType
from protocol.plan import Plan
from protocol.state import RunState
from runner.actions import Observations, PlanView, Record, Send
from runner.agents.panes import PaneReport
from runner.decide import decide
from tests.runner.test_decide import ALIVE, DEAD, NOW, _dispatched, _run, _task


def _state() -> tuple[RunState, PlanView]:
    tasks = [_task("A")]
    plan = Plan(name="p", tasks=tuple(tasks))
    return _run(tasks, [_dispatched("A")]), PlanView.build(plan, case_sensitive=True)


def test_a_quick_exit_seen_twice_fails_with_its_last_lines() -> None:
    state, plan = _state()
    obs = Observations(
        now=NOW, sessions={"s-A": DEAD}, exits={"A": ("exited at once: error: bad flag", True)}
    )
    actions = decide(state, plan, obs)
    (event,) = [a.ev for a in actions if isinstance(a, Record) and a.ev.task_id == "A"][:1]
    assert event.kind == "task_failed"
    assert event.data["reason"] == "exited at once: error: bad flag"


def test_a_dialog_goes_to_the_human_with_the_pane() -> None:
    state, plan = _state()
    report = PaneReport("blocked", "dialog", "the folder-trust dialog", "Trust this folder?")
    obs = Observations(now=NOW, sessions={"s-A": ALIVE}, panes={"A": report})
    actions = decide(state, plan, obs)
    nudged = [a.ev for a in actions if isinstance(a, Record) and a.ev.kind == "task_nudged"]
    assert nudged and nudged[0].data["pane"] == "dialog"
    (help_,) = [a for a in actions if isinstance(a, Send)]
    assert help_.to == "human" and help_.type is MessageType.HELP_REQUEST
    assert "Trust this folder?" in help_.fields.model_dump()["problem"]


def test_an_idle_agent_gets_the_nudge_typed_into_its_pane() -> None:
    state, plan = _state()
    report = PaneReport("nudge", "idle", "idle at its prompt", "❯", "run swarm worker offer")
    obs = Observations(now=NOW, sessions={"s-A": ALIVE}, panes={"A": report})
    (nudge,) = [a for a in decide(state, plan, obs) if isinstance(a, Send)]
    assert nudge.to == "A" and nudge.type is MessageType.NUDGE
    assert nudge.type_into == "s-A"


def test_a_pane_state_is_recorded_when_it_changes_only() -> None:
    """What the pane shows goes into the run state (status, watch) once per change."""
    state, plan = _state()
    obs = Observations(now=NOW, sessions={"s-A": ALIVE}, pane_states={"A": "permission"})
    recorded = [a.ev for a in decide(state, plan, obs) if isinstance(a, Record)]
    assert [(e.kind, e.data["pane"]) for e in recorded] == [("task_pane", "permission")]
    seen = state.model_copy(
        update={"tasks": {"A": state.tasks["A"].model_copy(update={"pane": "permission"})}}
    )
    assert not [a for a in decide(seen, plan, obs) if isinstance(a, Record)]


def test_the_pane_state_folds_and_clears_when_the_task_leaves_running() -> None:
    tasks = [_task("A")]
    shown = _run(tasks, [_dispatched("A"), ("task_pane", "A", {"pane": "idle"})])
    assert shown.tasks["A"].pane == "idle" and shown.tasks["A"].nudges == 0
    offered = _run(
        tasks,
        [_dispatched("A"), ("task_pane", "A", {"pane": "idle"}), ("task_offered", "A", {})],
    )
    assert offered.tasks["A"].pane == ""


def test_a_worker_gone_with_its_host_crashed_once() -> None:
    """A task whose host is lost (or whose start there failed) crashed, with the reason, even
    while its session still looks alive (the host cannot say), and only once; a task not
    running is left alone. (The rework path starts it again at the next ask.)"""
    state, plan = _state()
    why = "host b1 unreachable for 61s: re-placed"
    obs = Observations(now=NOW, sessions={"s-A": ALIVE}, lost={"A": why, "Z": "not running"})
    actions = decide(state, plan, obs)
    crashed = [a.ev for a in actions if isinstance(a, Record) and a.ev.kind == "task_crashed"]
    assert [(e.task_id, e.data["reason"]) for e in crashed] == [("A", why)]
