"""runner.escapes: JSONL reading, dedup keys, the spawn policy and budgets, the loop guard."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.plan import Budgets, GateFamily, Severity
from protocol.results import ScopeEscape
from protocol.state import Event
from runner.escapes import (
    ESCAPE_EVENT,
    AutoSpawn,
    EscapeLedger,
    LoopGuard,
    Progress,
    SpawnPolicyInput,
    check_loop,
    decide_spawn,
    dedup_key,
    follow_up_task,
    next_auto_id,
    progress_of,
    read_escapes,
)
from runner.state import RunLog


def escape(
    files: tuple[str, ...] = ("src/auth.py",),
    *,
    severity: Severity = "medium",
    intent: str = "",
    finding: str = "Type annotations are missing in the auth helpers",
) -> ScopeEscape:
    return ScopeEscape(
        worker="T01",
        finding=finding,
        suggested_files=files,
        intent=intent,
        severity=severity,
        task_id="T01",
    )


def line(esc: ScopeEscape) -> bytes:
    return esc.model_dump_json().encode() + b"\n"


# -- reading -----------------------------------------------------------------------------------


def test_read_escapes_returns_lines_with_offsets_and_resumes(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scope-escapes.jsonl"
    first, second = line(escape()), line(escape(("docs/a.md",)))
    path.write_bytes(first + second)
    entries, offset = read_escapes(path, 0)
    assert [pos for pos, _ in entries] == [0, len(first)]
    assert all(isinstance(item, ScopeEscape) for _, item in entries)
    assert offset == len(first) + len(second)
    assert read_escapes(path, offset) == ([], offset)  # each line is read once


def test_read_escapes_reports_garbage_and_goes_on(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scope-escapes.jsonl"
    good = line(escape())
    bad_json, bad_schema, bad_utf8 = b"{not json\n", b'{"worker": "x"}\n', b"\xff\xfe\n"
    path.write_bytes(bad_json + b"\n   \n" + bad_schema + bad_utf8 + good)
    entries, offset = read_escapes(path, 0)
    kinds = [type(item).__name__ for _, item in entries]
    assert kinds == ["str", "str", "str", "ScopeEscape"]
    errors = [item for _, item in entries if isinstance(item, str)]
    assert all(str(path) in err and "bad scope escape" in err for err in errors)
    assert "finding" in errors[1]  # names the missing field
    assert offset == path.stat().st_size


def test_read_escapes_leaves_a_torn_last_line_for_next_time(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scope-escapes.jsonl"
    first, second = line(escape()), line(escape(("docs/a.md",)))
    path.write_bytes(first + second[:10])  # a writer is mid-append
    entries, offset = read_escapes(path, 0)
    assert len(entries) == 1 and offset == len(first)
    with path.open("ab") as fh:
        fh.write(second[10:])
    entries, offset = read_escapes(path, offset)
    assert [pos for pos, _ in entries] == [len(first)]
    assert isinstance(entries[0][1], ScopeEscape)
    assert entries[0][1].suggested_files == ("docs/a.md",)


def test_read_escapes_missing_and_truncated_files(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "scope-escapes.jsonl"
    assert read_escapes(path, 0) == ([], 0)
    path.write_bytes(line(escape()))
    entries, offset = read_escapes(path, 10_000)  # the file was replaced by a shorter one
    assert len(entries) == 1 and offset == path.stat().st_size


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=30), st.just(line(escape()))), max_size=8))
def test_read_escapes_never_crashes_and_offsets_stay_on_line_starts(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("esc") / "scope-escapes.jsonl"
    raw = b"".join(chunks)
    path.write_bytes(raw)
    entries, offset = read_escapes(path, 0)
    assert offset == raw.rfind(b"\n") + 1
    for pos, _ in entries:
        assert pos == 0 or raw[pos - 1 : pos] == b"\n"


# -- dedup and follow-up tasks -----------------------------------------------------------------


class KeyCase(t.NamedTuple):
    test_id: str
    escape: ScopeEscape
    key: str


KEY_CASES = [
    KeyCase(
        "intent", escape(("./src//auth.py", "b.py"), intent="Type annot"), "src/auth.py|type-annot"
    ),
    KeyCase(
        "finding-words",
        escape(("src/auth.py",), finding="Missing TYPE hints, in auth.py helpers"),
        "src/auth.py|missing-type-hints-in",
    ),
    KeyCase(
        "bad-first-file-skipped", escape(("/etc/x", "../y", "lib/z.py"), intent="x"), "lib/z.py|x"
    ),
    KeyCase("no-files", escape((), intent="x"), "|x"),
]


@pytest.mark.parametrize("case", KEY_CASES, ids=[c.test_id for c in KEY_CASES])
def test_dedup_key(case: KeyCase) -> None:
    assert dedup_key(case.escape) == case.key


class AutoIdCase(t.NamedTuple):
    test_id: str
    existing: tuple[str, ...]
    expected: str


AUTO_ID_CASES = [
    AutoIdCase("first", ("T01", "T02"), "T-AUTO-01"),
    AutoIdCase("after-highest", ("T-AUTO-01", "T-AUTO-07", "T-AUTO-03"), "T-AUTO-08"),
    AutoIdCase("ignores-lookalikes", ("T-AUTO-x", "XT-AUTO-09", "T-AUTO-02b"), "T-AUTO-01"),
    AutoIdCase("past-99", ("T-AUTO-99",), "T-AUTO-100"),
]


@pytest.mark.parametrize("case", AUTO_ID_CASES, ids=[c.test_id for c in AUTO_ID_CASES])
def test_next_auto_id(case: AutoIdCase) -> None:
    assert next_auto_id(case.existing) == case.expected


def test_follow_up_task() -> None:
    esc = escape(("./src/auth.py", "src/auth.py", "/abs", "docs/"), severity="high", intent="")
    task = follow_up_task(esc, "T-AUTO-01", "T01")
    assert task.id == "T-AUTO-01"
    assert task.files == ("src/auth.py", "docs")
    assert task.blocked_by == ("T01",)
    assert task.description == esc.finding
    assert task.subject == esc.finding
    assert task.severity == "high"
    assert task.script is None and task.agent is None
    assert task.metadata["scope_escape"]["key"] == dedup_key(esc)
    long = follow_up_task(escape(intent="x" * 200), "T-AUTO-02", "T01")
    assert len(long.subject) <= 72
    with pytest.raises(ValueError, match="no usable suggested file"):
        follow_up_task(escape(("../x",)), "T-AUTO-03", "T01")


# -- the spawn policy --------------------------------------------------------------------------


class PolicyCase(t.NamedTuple):
    test_id: str
    policy: AutoSpawn
    severity: Severity
    gate_failed: bool
    requested: bool
    spawn: bool
    pause: bool
    reason: str


POLICY_CASES = [
    PolicyCase("off-critical", "off", "critical", True, False, False, False, "auto-spawn is off"),
    PolicyCase("off-requested", "off", "low", False, True, True, False, "on request"),
    PolicyCase("all-low", "all", "low", False, False, True, False, "--auto-spawn all"),
    PolicyCase("all-critical", "all", "critical", False, False, True, True, "critical"),
    PolicyCase("safe-critical", "safe", "critical", False, False, True, True, "critical"),
    PolicyCase("safe-high-gate", "safe", "high", True, False, True, False, "gate of family I"),
    PolicyCase("safe-high-nogate", "safe", "high", False, False, False, False, "after a gate"),
    PolicyCase("safe-high-asked", "safe", "high", False, True, True, False, "on request"),
    PolicyCase("safe-medium-gate", "safe", "medium", True, False, True, False, "failed"),
    PolicyCase("safe-medium-nogate", "safe", "medium", False, False, False, False, "after a gate"),
    PolicyCase("safe-low-gate", "safe", "low", True, False, False, False, "only on request"),
    PolicyCase("safe-low-asked", "safe", "low", False, True, True, False, "on request"),
]


def policy_input(
    esc: ScopeEscape,
    *,
    policy: AutoSpawn = "safe",
    budgets: Budgets | None = None,
    spawned_total: int = 0,
    spawned_by_family: t.Mapping[str, int] | None = None,
    seen_keys: t.Collection[str] = (),
    gate_failed: bool = True,
    requested: bool = False,
    family: GateFamily = "I",
) -> SpawnPolicyInput:
    return SpawnPolicyInput(
        escape=esc,
        policy=policy,
        budgets=budgets or Budgets(),
        spawned_total=spawned_total,
        spawned_by_family=spawned_by_family or {},
        seen_keys=seen_keys,
        gate_failed=gate_failed,
        requested=requested,
        family=family,
    )


@pytest.mark.parametrize("case", POLICY_CASES, ids=[c.test_id for c in POLICY_CASES])
def test_decide_spawn_policy(case: PolicyCase) -> None:
    decision = decide_spawn(
        policy_input(
            escape(severity=case.severity),
            policy=case.policy,
            gate_failed=case.gate_failed,
            requested=case.requested,
        )
    )
    assert (decision.spawn, decision.pause) == (case.spawn, case.pause), decision.reason
    assert case.reason in decision.reason


class RejectCase(t.NamedTuple):
    test_id: str
    inp: SpawnPolicyInput
    reason: str
    pause: bool


REJECT_CASES = [
    RejectCase(
        "duplicate", policy_input(escape(), seen_keys={dedup_key(escape())}), "duplicate", False
    ),
    RejectCase(
        "duplicate-critical-no-second-pause",
        policy_input(escape(severity="critical"), seen_keys={dedup_key(escape())}),
        "duplicate",
        False,
    ),
    RejectCase("no-files", policy_input(escape(("/abs",))), "no usable suggested file", False),
    RejectCase("total", policy_input(escape(), spawned_total=20), "spawn budget exhausted", False),
    RejectCase(
        "family-O",
        policy_input(escape(), family="O", spawned_total=9, spawned_by_family={"O": 8}),
        "family O budget exhausted",
        False,
    ),
    RejectCase(
        "critical-over-budget-still-pauses",
        policy_input(escape(severity="critical"), spawned_total=20),
        "spawn budget exhausted",
        True,
    ),
    RejectCase(
        "requested-within-budgets-only",
        policy_input(escape(severity="low"), requested=True, spawned_by_family={"I": 5}),
        "family I budget exhausted",
        False,
    ),
]


@pytest.mark.parametrize("case", REJECT_CASES, ids=[c.test_id for c in REJECT_CASES])
def test_decide_spawn_rejections(case: RejectCase) -> None:
    decision = decide_spawn(case.inp)
    assert not decision.spawn
    assert case.reason in decision.reason
    assert decision.pause == case.pause


FAMILIES: t.Final[tuple[GateFamily, ...]] = ("I", "O", "S", "M")
escapes_strategy = st.builds(
    escape,
    files=st.tuples(st.sampled_from(["a.py", "b.py", "src/c.py", "/abs", "d/"])),
    severity=st.sampled_from(["low", "medium", "high", "critical"]),
    intent=st.sampled_from(["", "fix", "types", "docs"]),
)


@settings(max_examples=150, deadline=None)
@given(
    spawns=st.integers(0, 6),
    family_budgets=st.fixed_dictionaries({f: st.integers(0, 4) for f in FAMILIES}),
    policy=st.sampled_from(["off", "safe", "all"]),
    stream=st.lists(
        st.tuples(escapes_strategy, st.sampled_from(FAMILIES), st.booleans(), st.booleans()),
        max_size=25,
    ),
)
def test_spawns_never_exceed_budgets_and_keys_spawn_once(
    spawns: int,
    family_budgets: dict[GateFamily, int],
    policy: AutoSpawn,
    stream: list[tuple[ScopeEscape, GateFamily, bool, bool]],
) -> None:
    budgets = Budgets(spawns=spawns, family=family_budgets)
    ledger = EscapeLedger()
    spawned_keys: list[str] = []
    first_seen: dict[str, int] = {}
    for index, (esc, family, gate_failed, requested) in enumerate(stream):
        key = dedup_key(esc)
        decision = decide_spawn(
            SpawnPolicyInput(
                escape=esc,
                policy=policy,
                budgets=budgets,
                spawned_total=ledger.spawned_total,
                spawned_by_family=ledger.spawned_by_family,
                seen_keys=ledger.seen_keys,
                gate_failed=gate_failed,
                requested=requested,
                family=family,
            )
        )
        first_seen.setdefault(key, index)
        if decision.spawn:
            assert first_seen[key] == index  # first wins: a later duplicate never spawns
            spawned_keys.append(key)
        if policy == "off" and not requested:
            assert not decision.spawn
        ledger = ledger.record(
            {"offset": index + 1, "key": key, "spawn": decision.spawn, "family": family}
        )
        assert ledger.spawned_total <= budgets.spawns
        for fam in FAMILIES:
            assert ledger.spawned_by_family.get(fam, 0) <= budgets.family[fam]
    assert len(spawned_keys) == len(set(spawned_keys))


def test_ledger_folds_escape_events(tmp_path: pathlib.Path) -> None:
    log = RunLog(tmp_path / "events.jsonl", tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["T01"])
    log.record(
        ESCAPE_EVENT, "T01", offset=120, key="a.py|x", spawn=True, family="O", task="T-AUTO-01"
    )
    log.record(ESCAPE_EVENT, "T01", offset=240, key="a.py|x", spawn=False, reason="duplicate")
    log.record(ESCAPE_EVENT, None, offset=300, key=None, spawn=False, reason="bad json")
    log.record(ESCAPE_EVENT, "T01", offset=400, key="b.py|y", spawn=True, pause=True)
    from runner.events import read_events

    ledger = EscapeLedger.from_events(read_events(log.events_path))
    assert ledger.offset == 400
    assert ledger.seen_keys == {"a.py|x", "b.py|y"}
    assert ledger.spawned_total == 2
    assert dict(ledger.spawned_by_family) == {"O": 1, "I": 1}
    assert ledger.spawned_tasks == ("T-AUTO-01",)
    assert ledger.rejected == (("a.py|x", "duplicate"), ("byte 300", "bad json"))
    assert ledger.paused


# -- the anti-loop guard -----------------------------------------------------------------------


def prog(settled: int, *active: tuple[str, int]) -> Progress:
    return Progress(settled, frozenset(active))


class LoopCase(t.NamedTuple):
    test_id: str
    steps: tuple[Progress, ...]
    iterations: int
    idle: int
    stop: str | None


LOOP_CASES = [
    LoopCase("nothing-started", (prog(0), prog(0), prog(0)), 0, 0, None),
    LoopCase(
        "idle-wakeups-do-not-count",
        (prog(0, ("A", 1)),) * 20,
        0,
        0,
        None,
    ),
    LoopCase(
        "merges-are-progress",
        (prog(0, ("A", 1), ("B", 1)), prog(1, ("B", 1), ("C", 1)), prog(2, ("C", 1)), prog(3)),
        2,
        0,
        None,
    ),
    LoopCase(
        "retries-without-progress-stop",
        (
            prog(0, ("A", 1)),
            prog(0, ("A", 2)),
            prog(0, ("A", 3)),
            prog(0, ("A", 4)),
        ),
        3,
        3,
        "without progress",
    ),
    LoopCase(
        "a-failure-resets-the-idle-count",
        (prog(0, ("A", 1)), prog(0, ("A", 2)), prog(0, ("A", 3)), prog(1, ("B", 1))),
        3,
        0,
        None,
    ),
    LoopCase(
        "one-retry-amid-long-work-is-not-a-loop",
        (prog(0, ("A", 1), ("B", 1)), prog(0, ("A", 2), ("B", 1)), prog(0, ("A", 3), ("B", 1))),
        0,
        0,
        None,
    ),
]


@pytest.mark.parametrize("case", LOOP_CASES, ids=[c.test_id for c in LOOP_CASES])
def test_loop_guard(case: LoopCase) -> None:
    guard = LoopGuard()
    for step in case.steps:
        guard = guard.observe(step)
    assert (guard.iterations, guard.idle) == (case.iterations, case.idle)
    reason = check_loop(guard)
    if case.stop is None:
        assert reason is None
    else:
        assert reason is not None and case.stop in reason


def test_loop_guard_iteration_budget_and_spawn_budget() -> None:
    guard = LoopGuard.for_budgets(Budgets(iterations=2))
    for settled, attempt in ((0, 1), (1, 1), (2, 1)):
        guard = guard.observe(prog(settled, (f"T{settled}", attempt)))
    assert guard.iterations == 2
    reason = check_loop(guard)
    assert reason is not None and "budgets.iterations" in reason
    assert check_loop(LoopGuard()) is None
    reason = check_loop(LoopGuard(), spawn_refused_by_budget=True)
    assert reason is not None and "spawn budget" in reason


def test_loop_guard_replays_a_run_log(tmp_path: pathlib.Path) -> None:
    log = RunLog(tmp_path / "events.jsonl", tmp_path / "state.json")
    log.record("run_created", run_id="r1", tasks=["A", "B"])
    guard = LoopGuard()
    for attempt in (1, 2, 3):
        log.record("task_dispatched", "A", attempt=attempt, session="s")
        guard = guard.observe(progress_of(log.state))
        log.record("task_crashed", "A", reason="boom")
        guard = guard.observe(progress_of(log.state))
    log.record("task_dispatched", "A", attempt=4, session="s")
    guard = guard.observe(progress_of(log.state))
    from runner.events import read_events

    events: list[Event] = read_events(log.events_path)
    assert LoopGuard().replay(events) == guard
    assert guard.idle == 3
    assert check_loop(guard) is not None


def test_escape_lines_written_like_a_worker_are_read(tmp_path: pathlib.Path) -> None:
    """An agentops worker writes only the four agentops keys: that is a valid escape."""
    path = tmp_path / "scope-escapes.jsonl"
    doc = {
        "worker": "demigod-3",
        "finding": "needs the parser",
        "suggested_files": ["pkg/parse.go"],
        "timestamp": "2026-01-01T00:00:00Z",
    }
    path.write_text(json.dumps(doc) + "\n")
    entries, _ = read_escapes(path, 0)
    esc = entries[0][1]
    assert isinstance(esc, ScopeEscape)
    assert esc.severity == "medium"
    assert dedup_key(esc) == "pkg/parse.go|needs-the-parser"
