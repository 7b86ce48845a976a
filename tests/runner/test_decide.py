"""Table tests of the mayor's policy, :func:`runner.decide.decide`: pure, no tmux, no git."""

from __future__ import annotations

import itertools
import typing as t
from datetime import UTC, datetime

import pytest

from protocol.messages import Envelope, MessageType
from protocol.plan import Budgets, Gate, Plan, Task
from protocol.results import ScopeEscape
from protocol.state import Event, RunState
from runner.actions import (
    Action,
    Drop,
    Finish,
    Integrate,
    Kill,
    Launch,
    Observations,
    PlanView,
    Ratchet,
    Record,
    Send,
    StartWave,
)
from runner.decide import decide, stop_actions
from runner.sessions import SessionStatus
from runner.spawning import remediation
from runner.state import apply

T0: t.Final = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NOW: t.Final = T0.timestamp()
RUN: t.Final = "r1"
ALIVE: t.Final = SessionStatus(exists=True, alive=True, exit_status=None, pid=1)
DEAD: t.Final = SessionStatus(exists=True, alive=False, exit_status=2, pid=None)


def _task(tid: str, *deps: str, **extra: t.Any) -> Task:
    return Task(id=tid, subject=f"task {tid}", files=(f"{tid.lower()}/",), blocked_by=deps, **extra)


def _run(
    tasks: list[Task], events: list[tuple[str, str | None, dict[str, t.Any]]], **settings: t.Any
) -> RunState:
    """A run state folded (through the lifecycle table) from events."""
    state = apply(
        None,
        Event(
            seq=1,
            ts=T0,
            run_id=RUN,
            kind="run_created",
            data={"tasks": [x.id for x in tasks], **settings},
        ),
    )
    for seq, (kind, tid, data) in enumerate(events, 2):
        state = apply(state, Event(seq=seq, ts=T0, run_id=RUN, kind=kind, task_id=tid, data=data))
    return state


def _dispatched(tid: str, attempt: int = 1) -> tuple[str, str, dict[str, t.Any]]:
    return ("task_dispatched", tid, {"attempt": attempt, "session": f"s-{tid}"})


_IDS = itertools.count(1)


def _mail(sender: str, mtype: MessageType, thread: str | None, **fields: t.Any) -> Envelope:
    data = {
        "id": f"m{next(_IDS)}",
        "from": sender,
        "to": ["mayor"],
        "type": mtype,
        "thread_id": thread,
        "run_id": RUN,
    }
    return Envelope.model_validate({**data, "fields": fields})


def _kinds(actions: list[Action]) -> list[str]:
    """Each action as a short word: the event kind of a Record, else the action's name."""
    words: list[str] = []
    for action in actions:
        match action:
            case Record(ev):
                words.append(f"{ev.kind}:{ev.task_id}" if ev.task_id else ev.kind)
            case Launch(tid, attempt, resumed):
                words.append(f"launch:{tid}#{attempt}{'r' if resumed else ''}")
            case Send(to, mtype, tid):
                words.append(f"send:{mtype.value}>{to}")
            case Kill(session):
                words.append(f"kill:{session}")
            case Ratchet(tid, bead):
                words.append(f"ratchet:{bead}")
            case StartWave(tasks):
                words.append(f"wave:{','.join(tasks)}")
            case Integrate():
                words.append("integrate")
            case Drop():
                words.append("drop")
            case Finish():
                words.append("finish")
    return words


A, B, C = _task("A"), _task("B", "A"), _task("C")


class Case(t.NamedTuple):
    test_id: str
    tasks: list[Task]
    events: list[tuple[str, str | None, dict[str, t.Any]]]
    obs: Observations
    expected: list[str]
    settings: t.Mapping[str, t.Any] = {}
    budgets: Budgets = Budgets()


CASES = [
    Case("start-what-is-ready", [A, B, C], [], Observations(NOW), ["launch:A#1", "launch:C#1"]),
    Case("max-workers", [A, C], [], Observations(NOW), ["launch:A#1"], {"max_workers": 1}),
    Case(
        "offer-then-integrate-first",
        [A, B],
        [_dispatched("A")],
        Observations(
            NOW,
            mail=(_mail("A", MessageType.OFFERING_READY, "A", commit_sha="abc"),),
            sessions={"s-A": ALIVE},
        ),
        ["task_offered:A", "integrate"],
    ),
    Case(
        "merged-unblocks-then-answers",
        [A, B],
        [_dispatched("A"), ("task_offered", "A", {}), ("task_merged", "A", {"merge_sha": "m1"})],
        Observations(NOW, merged=("A",), integrated=True),
        ["launch:B#1", "send:OFFERING_ACCEPTED>A", "kill:s-A"],
    ),
    Case(
        "ol-bead-ratchets",
        [_task("A", metadata={"ol_bead_id": "ol-1"})],
        [_dispatched("A"), ("task_offered", "A", {}), ("task_merged", "A", {})],
        Observations(NOW, merged=("A",), integrated=True),
        ["send:OFFERING_ACCEPTED>A", "kill:s-A", "ratchet:ol-1", "finish"],
    ),
    Case(
        "dead-pane-crashes-then-retries",
        [A],
        [_dispatched("A")],
        Observations(NOW, sessions={"s-A": DEAD}),
        ["task_crashed:A"],
    ),  # the retry comes at the next ask, with the record up to date
    Case(
        "last-words-beat-the-dead-pane",
        [A],
        [_dispatched("A")],
        Observations(NOW, mail=(_mail("A", MessageType.DONE, "A"),), sessions={"s-A": DEAD}),
        ["task_offered:A", "integrate"],
    ),
    Case(
        "reported-failure-is-a-crash",
        [A],
        [_dispatched("A")],
        Observations(
            NOW, mail=(_mail("A", MessageType.FAILED, "A", reason="no"),), sessions={"s-A": ALIVE}
        ),
        ["task_crashed:A"],
    ),
    Case(
        "crashed-task-retries-at-the-next-ask",
        [A],
        [_dispatched("A"), ("task_crashed", "A", {})],
        Observations(NOW).consumed(),
        ["launch:A#2"],
    ),
    Case(
        "adopt-restarts-a-lost-session-in-place",
        [A],
        [_dispatched("A", 2)],
        Observations(NOW, sessions={}, adopting=True),
        ["launch:A#2r"],
    ),
    Case(
        "retries-run-out",
        [A, B],
        [_dispatched("A", 3), ("task_crashed", "A", {"reason": "boom"})],
        Observations(NOW),
        ["task_failed:A", "task_skipped:B", "finish"],
    ),
    Case(
        "check-limit-fails-sooner",
        [A],
        [
            _dispatched("A"),
            ("task_offered", "A", {}),
            ("validation_started", "A", {}),
            ("validation_failed", "A", {"attempt_limit": 1, "reason": "lint"}),
        ],
        Observations(NOW),
        ["task_failed:A", "finish"],
    ),
    Case(
        "conflict-is-a-fixup",
        [A],
        [_dispatched("A"), ("task_offered", "A", {}), ("merge_refused", "A", {"kind": "conflict"})],
        Observations(NOW),
        ["launch:A#2"],
    ),
    Case(
        "fixups-run-out-block-and-ask",
        [A],
        [_dispatched("A"), ("task_offered", "A", {}), ("merge_refused", "A", {"kind": "scope"})],
        Observations(NOW),
        ["task_blocked:A", "send:HELP_REQUEST>human", "finish"],
        budgets=Budgets(max_fixups=0),
    ),
    Case(
        "help-is-forwarded",
        [A],
        [_dispatched("A")],
        Observations(
            NOW,
            mail=(_mail("A", MessageType.HELP_REQUEST, "A", problem="?"),),
            sessions={"s-A": ALIVE},
        ),
        ["help_requested:A", "send:HELP_REQUEST>human"],
    ),
    Case(
        "spoofed-sender-is-ignored",
        [A, C],
        [_dispatched("A"), _dispatched("C")],
        Observations(
            NOW, mail=(_mail("C", MessageType.DONE, "A"),), sessions={"s-A": ALIVE, "s-C": ALIVE}
        ),
        ["mail_ignored"],
    ),
    Case(
        "progress-is-a-message",
        [A],
        [_dispatched("A")],
        Observations(
            NOW, mail=(_mail("A", MessageType.PROGRESS, "A", step="x"),), sessions={"s-A": ALIVE}
        ),
        ["task_message:A"],
    ),
    Case(
        "progress-is-coalesced-per-sender",
        [A, C],
        [_dispatched("A"), _dispatched("C")],
        Observations(
            NOW,
            mail=(
                _mail("A", MessageType.PROGRESS, "A", step="1"),
                _mail("C", MessageType.PROGRESS, "C", step="1"),
                _mail("A", MessageType.PROGRESS, "A", step="2"),
                _mail("A", MessageType.PROGRESS, "A", step="3"),
            ),
            sessions={"s-A": ALIVE, "s-C": ALIVE},
        ),
        ["drop", "task_message:C", "drop", "task_message:A"],
    ),
    Case(
        "escape-report-is-recorded",
        [A],
        [_dispatched("A")],
        Observations(
            NOW,
            mail=(_mail("A", MessageType.SCOPE_ESCAPE, "A", finding="f"),),
            sessions={"s-A": ALIVE},
        ),
        ["escape_reported:A"],
    ),
    Case(
        "terminate-kill",
        [A, C],
        [_dispatched("A")],
        Observations(NOW, mail=(_mail("human", MessageType.TERMINATE, None, kill=True),)),
        ["task_cancelled:A", "kill:s-A", "task_cancelled:C", "run_finished"],
    ),
    Case(
        "terminate-lets-running-work-finish",
        [A, C],
        [_dispatched("A")],
        Observations(NOW, mail=(_mail("human", MessageType.TERMINATE, None),)),
        ["task_cancelled:C", "run_finished"],
    ),
    Case(
        "deadline-stops-and-kills",
        [A],
        [_dispatched("A")],
        Observations(NOW + 11),
        ["task_cancelled:A", "kill:s-A", "run_finished"],
        {"deadline": NOW + 10},
    ),
    Case(
        "task-timeout",
        [_task("A", timeout=5)],
        [_dispatched("A")],
        Observations(NOW + 6),
        ["task_crashed:A", "kill:s-A"],
    ),
    Case(
        "stall-nudges-first",
        [A],
        [_dispatched("A")],
        Observations(NOW, idle={"A": 11}),
        ["task_nudged:A", "send:NUDGE>A"],
        {"stall_after": 10},
    ),
    Case(
        "stall-then-asks-and-restarts",
        [A],
        [_dispatched("A"), ("task_nudged", "A", {})],
        Observations(NOW, idle={"A": 21}),
        ["task_nudged:A", "send:HELP_REQUEST>human", "task_crashed:A", "kill:s-A"],
        {"stall_after": 10},
    ),
    Case(
        "paused-starts-nothing-until-resumed",
        [A],
        [("escape_decided", None, {"pause": True, "key": "k"})],
        Observations(
            NOW, mail=(_mail("human", MessageType.GUIDANCE, None, signal="resume-dispatch"),)
        ),
        ["dispatch_resumed", "launch:A#1"],
    ),
    Case(
        "guidance-text-alone-is-no-signal",
        [A],
        [("escape_decided", None, {"pause": True, "key": "k"})],
        Observations(
            NOW, mail=(_mail("human", MessageType.GUIDANCE, None, text="resume-dispatch"),)
        ),
        ["mail_ignored"],
    ),
    Case(
        "waves-commit-between-waves",
        [A, B],
        [_dispatched("A"), ("task_offered", "A", {}), ("task_merged", "A", {})],
        Observations(NOW, integrated=True),
        ["wave:B", "launch:B#1"],
        {"waves": True, "commit_policy": "wave"},
    ),
    Case(
        "critical-escape-spawns-and-pauses",
        [A],
        [_dispatched("A")],
        Observations(
            NOW,
            sessions={"s-A": ALIVE},
            escapes=(
                (
                    100,
                    ScopeEscape(
                        task_id="A",
                        worker="A",
                        finding="secret in logs",
                        suggested_files=("log/x.py",),
                        severity="critical",
                    ),
                ),
            ),
        ),
        ["escape_decided:A", "send:HELP_REQUEST>human"],
    ),
    Case(
        "malformed-escape-line-is-decided-once",
        [A],
        [_dispatched("A")],
        Observations(NOW, sessions={"s-A": ALIVE}, escapes=((7, "line 1: not JSON"),)),
        ["escape_decided"],
    ),
    Case(
        "all-settled-finishes",
        [A],
        [_dispatched("A"), ("task_offered", "A", {}), ("task_merged", "A", {})],
        Observations(NOW, integrated=True),
        ["finish"],
    ),
    Case(
        "ended-run-decides-nothing",
        [A],
        [("run_finished", None, {"status": "stopped"})],
        Observations(NOW),
        [],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_decide(case: Case) -> None:
    plan = Plan(tasks=tuple(case.tasks), budgets=case.budgets)
    state = _run(case.tasks, case.events, **case.settings)
    actions = decide(state, PlanView.build(plan, case_sensitive=True), case.obs)
    assert _kinds(actions) == case.expected
    # every event decided is one the lifecycle allows, in order
    for action in actions:
        if isinstance(action, Record):
            ev = action.ev
            state = apply(
                state,
                Event(
                    seq=state.last_seq + 1,
                    run_id=RUN,
                    kind=ev.kind,
                    task_id=ev.task_id,
                    data=dict(ev.data),
                ),
            )
        elif isinstance(action, Launch):
            state = apply(
                state,
                Event(
                    seq=state.last_seq + 1,
                    run_id=RUN,
                    kind="task_dispatched",
                    task_id=action.task_id,
                    data={"attempt": action.attempt},
                ),
            )


def test_every_action_kind_is_covered_by_a_case() -> None:
    seen = {type(a) for case in CASES for a in _decided(case)}
    assert seen == set(t.get_args(Action))


def _decided(case: Case) -> list[Action]:
    plan = Plan(tasks=tuple(case.tasks), budgets=case.budgets)
    state = _run(case.tasks, case.events, **case.settings)
    return decide(state, PlanView.build(plan, case_sensitive=True), case.obs)


def test_decide_is_idempotent_over_the_recorded_state() -> None:
    """Asking again after the actions ran (and were recorded) never repeats them."""
    plan = Plan(tasks=(A, B, C))
    view = PlanView.build(plan, case_sensitive=True)
    state = _run([A, B, C], [])
    actions = decide(state, view, Observations(NOW))
    for action in actions:
        assert isinstance(action, Launch)
        state = apply(
            state,
            Event(
                seq=state.last_seq + 1,
                run_id=RUN,
                kind="task_dispatched",
                task_id=action.task_id,
                data={"attempt": 1, "session": f"s-{action.task_id}"},
            ),
        )
    assert decide(state, view, Observations(NOW).consumed()) == []


def test_remediation_spawns_once_within_budget() -> None:
    plan = Plan(tasks=(A,), gates=(Gate(name="tests", command="pytest"),))
    state = _run([A], [])
    ev = remediation(state, plan, "gate:tests", "gate tests failed", "out", "I")
    assert ev is not None and ev.data["spawn"] and ev.data["task_def"]["id"].startswith("T-AUTO")
    state = apply(state, Event(seq=2, run_id=RUN, kind=ev.kind, data=dict(ev.data)))
    assert remediation(state, plan, "gate:tests", "gate tests failed", "out", "I") is None
    broke = Plan(tasks=(A,), budgets=Budgets(spawns=0))
    refused = remediation(_run([A], []), broke, "gate:tests", "x", "out", "I")
    assert refused is not None and not refused.data["spawn"]


def test_stop_actions_are_the_same_for_mayor_and_cli() -> None:
    state = _run([A, C], [_dispatched("A")])
    assert _kinds(stop_actions(state, reason="r", kill=False)) == [
        "task_cancelled:C",
        "run_finished",
    ]
