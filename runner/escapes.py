"""Scope escapes: reading ``scope-escapes.jsonl``, dedup, auto-spawn policy, the anti-loop guard.

Pure functions of their inputs (no clock, no tmux, no git); the only I/O is :func:`read_escapes`.
The mayor performs what they decide and records it in the run log, so a restart neither reads an
escape twice nor forgets a dedup key (see ``docs/escapes-and-gates.md``).

Policy (``--auto-spawn``, default ``safe``):

- ``off`` never spawns; ``all`` spawns every escape within the budgets, whatever its severity;
- ``safe``: critical always spawns and pauses dispatch with an alert; high and medium spawn when a
  gate of their family has failed; low only on request.

Whatever the policy, a spawn never exceeds the total budget (``budgets.spawns``) or its gate
family's budget (``budgets.family``), a dedup key spawns at most once (first wins), and an escape
without a usable suggested file is rejected (a follow-up task needs a manifest).
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re
import typing as t
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError

from protocol import manifest
from protocol.plan import Budgets, GateFamily, Task
from protocol.results import ScopeEscape
from protocol.state import ACTIVE_TASK_STATES, TERMINAL_TASK_STATES, Event, RunState

logger = logging.getLogger(__name__)

AutoSpawn = t.Literal["off", "safe", "all"]
AUTO_SPAWN_POLICIES: t.Final[tuple[AutoSpawn, ...]] = t.get_args(AutoSpawn)
DEFAULT_AUTO_SPAWN: t.Final[AutoSpawn] = "safe"

AUTO_ID_PREFIX: t.Final = "T-AUTO-"
_AUTO_ID_RE: t.Final = re.compile(r"T-AUTO-(\d+)")
_INTENT_WORDS: t.Final = 4
_SUBJECT_MAX: t.Final = 72

ESCAPE_EVENT: t.Final = "escape_decided"
"""The run-log event the mayor records once per ingested escape line (:class:`EscapeLedger`)."""


# -- reading ---------------------------------------------------------------------------------


def read_escapes(
    path: pathlib.Path, offset: int
) -> tuple[list[tuple[int, ScopeEscape | str]], int]:
    """The escape lines of ``path`` from byte ``offset`` on, and the offset to read from next.

    Each entry is ``(byte offset of its line, escape)``, or an error string naming the file, the
    byte offset and the problem for a malformed line (bad UTF-8, bad JSON, wrong schema): the
    reader never raises on content. Blank lines are skipped. A torn last line (no ``"\\n"`` yet:
    a writer is mid-append) is not consumed, so it is read whole next time. A missing file reads
    as empty; a file shorter than ``offset`` was truncated or replaced and is read from the start.
    """
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, 2)
            if size < offset:
                logger.warning(
                    "scope escapes file shrank below offset %d; reading it from the start",
                    offset,
                    extra={"path": str(path)},
                )
                offset = 0
            fh.seek(offset)
            raw = fh.read()
    except FileNotFoundError:
        return [], offset
    entries: list[tuple[int, ScopeEscape | str]] = []
    position = offset
    while True:
        end = raw.find(b"\n", position - offset)
        if end < 0:
            break  # a torn last line, or nothing more
        line = raw[position - offset : end]
        if line.strip():
            entries.append((position, _parse_line(path, position, line)))
        position = offset + end + 1
    return entries, position


def _parse_line(path: pathlib.Path, position: int, line: bytes) -> ScopeEscape | str:
    try:
        return ScopeEscape.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        problem = f"{where}: {first['msg']}" if where else first["msg"]
        return f"{path}: line at byte {position}: bad scope escape: {problem}"


# -- dedup and follow-up tasks ---------------------------------------------------------------


def suggested_manifest(escape: ScopeEscape) -> tuple[str, ...]:
    """The escape's suggested files, normalized and deduplicated in order; unusable paths
    (absolute, ``..``, empty) are dropped."""
    seen: dict[str, None] = {}
    for path in escape.suggested_files:
        try:
            seen.setdefault(manifest.check_entry(path), None)
        except ValueError:
            logger.debug("dropped suggested file %r", path, extra={"worker": escape.worker})
    return tuple(seen)


def _slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.lower()))


def intent_of(escape: ScopeEscape) -> str:
    """The escape's intent category: its ``intent`` or the first words of its finding, as a slug
    (``"Type annotations"`` -> ``type-annotations``)."""
    slug = _slug(escape.intent)
    if slug:
        return slug
    words = re.findall(r"[a-z0-9]+", escape.finding.lower())
    return "-".join(words[:_INTENT_WORDS])


def dedup_key(escape: ScopeEscape) -> str:
    """``<primary touch>|<intent>``: the first usable suggested file, normalized (empty when
    there is none), and :func:`intent_of`. Two escapes with the same key are one finding."""
    files = suggested_manifest(escape)
    return f"{files[0] if files else ''}|{intent_of(escape)}"


def next_auto_id(existing_ids: Collection[str]) -> str:
    """``T-AUTO-NN`` one above the highest existing one (``T-AUTO-01`` first; 3 digits after 99)."""
    highest = 0
    for task_id in existing_ids:
        match = _AUTO_ID_RE.fullmatch(task_id)
        if match:
            highest = max(highest, int(match.group(1)))
    return f"{AUTO_ID_PREFIX}{highest + 1:02d}"


def follow_up_task(escape: ScopeEscape, task_id: str, source_task: str) -> Task:
    """The follow-up task an escape spawns: the suggested files as its manifest, blocked by the
    task it came from, the finding as its description. No agent or script: the mayor decides."""
    files = suggested_manifest(escape)
    if not files:
        raise ValueError(
            f"scope escape from {escape.worker!r} has no usable suggested file; "
            "a follow-up task needs a manifest (relative paths inside the repository)"
        )
    headline = escape.intent.strip() or escape.finding.strip().splitlines()[0]
    if len(headline) > _SUBJECT_MAX:
        headline = headline[: _SUBJECT_MAX - 3].rstrip() + "..."
    return Task(
        id=task_id,
        subject=headline,
        description=escape.finding,
        files=files,
        blocked_by=(source_task,),
        issue_type="follow-up",
        severity=escape.severity,
        metadata={
            "scope_escape": {
                "key": dedup_key(escape),
                "source_task": source_task,
                "worker": escape.worker,
                "timestamp": escape.timestamp.isoformat(),
            }
        },
    )


# -- the spawn policy ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpawnPolicyInput:
    escape: ScopeEscape
    policy: AutoSpawn
    budgets: Budgets
    spawned_total: int
    """Follow-up tasks spawned so far in this run."""
    spawned_by_family: Mapping[str, int]
    """Of those, how many counted against each gate family."""
    seen_keys: Collection[str]
    """Dedup keys of every escape decided before this one (first wins). When a human asks again
    for an escape that was rejected, pass the keys of *spawned* escapes only."""
    gate_failed: bool
    """A gate of the escape's family has failed in this run."""
    requested: bool = False
    """A human asked for it (``swarm escape spawn KEY``): spawns any severity under any policy,
    still within the budgets."""
    family: GateFamily = "I"
    """The gate family the escape counts against."""


SpawnCode = t.Literal["spawned", "duplicate", "no_files", "policy", "budget", "family_budget"]
"""Why an escape was spawned or not, for the mayor to match on (the reason is for people)."""
BUDGET_CODES: t.Final[frozenset[str]] = frozenset({"budget", "family_budget"})


@dataclass(frozen=True)
class SpawnDecision:
    spawn: bool
    reason: str
    """Why it was spawned or rejected (shown in ``swarm status`` and the report)."""
    pause: bool = False
    """Critical: pause dispatch and alert a human."""
    code: SpawnCode = "spawned"


def decide_spawn(inp: SpawnPolicyInput) -> SpawnDecision:
    """Spawn a follow-up task for this escape, or reject it with the reason.

    Checks in order: duplicate key, usable files, policy and severity, total budget, family
    budget. A critical escape pauses dispatch under ``safe`` and ``all`` even when the budget
    refuses it (a human must look); a duplicate never pauses again.
    """
    escape = inp.escape
    key = dedup_key(escape)
    if key in inp.seen_keys:
        return SpawnDecision(
            False, f"duplicate of an earlier escape with key {key!r}", code="duplicate"
        )
    severity = escape.severity
    pause = severity == "critical" and inp.policy != "off"
    if not suggested_manifest(escape):
        return SpawnDecision(
            False, "no usable suggested file (relative paths inside the repository)", pause,
            code="no_files",
        )  # fmt: skip
    rejected = _policy_rejects(inp)
    if rejected is not None:
        return SpawnDecision(False, rejected, pause, code="policy")
    if inp.spawned_total >= inp.budgets.spawns:
        return SpawnDecision(
            False,
            f"spawn budget exhausted ({inp.spawned_total} of {inp.budgets.spawns} used); "
            "raise budgets.spawns in the plan",
            pause,
            code="budget",
        )
    used = inp.spawned_by_family.get(inp.family, 0)
    allowed = inp.budgets.family.get(inp.family, 0)
    if used >= allowed:
        return SpawnDecision(
            False,
            f"gate family {inp.family} budget exhausted ({used} of {allowed} used); "
            f"raise budgets.family.{inp.family} in the plan",
            pause,
            code="family_budget",
        )
    return SpawnDecision(True, _spawn_reason(inp), pause)


def _policy_rejects(inp: SpawnPolicyInput) -> str | None:
    if inp.requested:
        return None
    severity = inp.escape.severity
    if inp.policy == "off":
        return "auto-spawn is off (--auto-spawn off); spawn it by hand if needed"
    if inp.policy == "all" or severity == "critical":
        return None
    if severity == "low":
        return "low severity spawns only on request"
    if not inp.gate_failed:
        return f"{severity} severity spawns only after a gate of family {inp.family} fails"
    return None


def _spawn_reason(inp: SpawnPolicyInput) -> str:
    severity = inp.escape.severity
    if inp.requested:
        return f"spawned on request ({severity} severity)"
    if severity == "critical":
        return "spawned: critical severity; dispatch paused for a human"
    if inp.policy == "all":
        return f"spawned: --auto-spawn all ({severity} severity)"
    return f"spawned: {severity} severity and a gate of family {inp.family} failed"


# -- the ledger: what the run log says about escapes -----------------------------------------


@dataclass(frozen=True)
class EscapeLedger:
    """Everything the policy needs from earlier decisions, folded from ``escape_decided`` events.

    The mayor records one ``escape_decided`` event per escape line it ingests, with data
    ``{"offset": <byte after the line>, "key": str, "spawn": bool, "reason": str,
    "family": "I"|"O"|"S"|"M", "task": <T-AUTO id or null>, "pause": bool}`` (malformed lines:
    ``key`` null and ``reason`` the error), so after a restart it resumes reading at ``offset``
    and neither spawns nor rejects anything twice.
    """

    offset: int = 0
    seen_keys: frozenset[str] = frozenset()
    spawned_total: int = 0
    spawned_by_family: Mapping[str, int] = field(default_factory=dict)
    spawned_tasks: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()
    """(dedup key or byte offset, reason) of every escape not spawned, in order."""
    paused: bool = False

    def record(self, data: Mapping[str, t.Any]) -> EscapeLedger:
        """Fold one ``escape_decided`` event's data (pure)."""
        offset = max(self.offset, int(data.get("offset", self.offset)))
        key = data.get("key")
        seen = self.seen_keys | {key} if key is not None else self.seen_keys
        update: dict[str, t.Any] = {"offset": offset, "seen_keys": seen}
        if data.get("spawn"):
            family = str(data.get("family", "I"))
            by_family = dict(self.spawned_by_family)
            by_family[family] = by_family.get(family, 0) + 1
            update.update(spawned_total=self.spawned_total + 1, spawned_by_family=by_family)
            if data.get("task"):
                update["spawned_tasks"] = (*self.spawned_tasks, str(data["task"]))
        else:
            label = key if key is not None else f"byte {data.get('offset', '?')}"
            update["rejected"] = (*self.rejected, (str(label), str(data.get("reason", ""))))
        if data.get("pause"):
            update["paused"] = True
        return dataclasses.replace(self, **update)

    @classmethod
    def from_state(cls, state: RunState) -> EscapeLedger:
        """The ledger of a run state (its ``escapes`` are the folded decisions)."""
        by_family: dict[str, int] = {}
        for rec in state.escapes:
            if rec.spawn:
                by_family[rec.family] = by_family.get(rec.family, 0) + 1
        return cls(
            offset=state.escape_offset,
            seen_keys=frozenset(rec.key for rec in state.escapes if rec.key is not None),
            spawned_total=sum(by_family.values()),
            spawned_by_family=by_family,
            spawned_tasks=tuple(rec.spawned for rec in state.escapes if rec.spawned),
            rejected=tuple((rec.key or "?", rec.reason) for rec in state.escapes if not rec.spawn),
            paused=any(rec.pause for rec in state.escapes),
        )

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> EscapeLedger:
        ledger = cls()
        for event in events:
            if event.kind == ESCAPE_EVENT:
                ledger = ledger.record(event.data)
        return ledger


# -- the anti-loop guard ---------------------------------------------------------------------


class Progress(t.NamedTuple):
    """A run's progress fingerprint (see :func:`progress_of`)."""

    settled: int
    """Tasks in a terminal state: merged, failed, blocked, skipped or cancelled."""
    active: frozenset[tuple[str, int]]
    """(task id, attempt) of every task in an active state (running ... merging, rework)."""


def progress_of(state: RunState) -> Progress:
    """The fingerprint of a run state, for :meth:`LoopGuard.observe`."""
    settled = sum(1 for rec in state.tasks.values() if rec.state in TERMINAL_TASK_STATES)
    active = frozenset(
        (rec.id, rec.attempt) for rec in state.tasks.values() if rec.state in ACTIVE_TASK_STATES
    )
    return Progress(settled, active)


@dataclass(frozen=True)
class LoopGuard:
    """The anti-loop counters: scheduler loops, and loops in a row without progress.

    With continuous dispatch there are no waves, so a **scheduler loop** is a *generation* of
    work: it starts with the attempts active at that moment and ends when every one of them has
    ended (merged, failed, or back in rework and restarted as a new attempt). A loop made
    **progress** when a task settled (reached a terminal state) during it. This makes the
    counters independent of how often the mayor wakes up: call :meth:`observe` after every step
    (repeated identical fingerprints change nothing), then :func:`check_loop`.

    Stops (swarm-iosm's anti-loop rules): ``max_idle`` loops in a row without progress (3),
    ``max_iterations`` loops in total (50, ``budgets.iterations``), or a spawn the budget refused.
    After a restart, rebuild the guard with :meth:`replay` over the run's events.
    """

    max_idle: int = 3
    max_iterations: int = 50
    iterations: int = 0
    idle: int = 0
    generation: frozenset[tuple[str, int]] = frozenset()
    """The attempts of the current loop (empty: no loop under way)."""
    settled_at_start: int = 0

    @classmethod
    def for_budgets(cls, budgets: Budgets, *, max_idle: int = 3) -> LoopGuard:
        """A guard for a plan's budgets. One task reworked alone is bounded by its own attempt
        and fix-up budgets, so the idle limit leaves room for those to settle it first."""
        idle = max(max_idle, budgets.max_attempts + budgets.max_fixups + 1)
        return cls(max_idle=idle, max_iterations=budgets.iterations)

    def observe(self, progress: Progress) -> LoopGuard:
        """The guard after the run reached ``progress`` (pure)."""
        guard = self
        if guard.generation and not (guard.generation & progress.active):
            moved = progress.settled > guard.settled_at_start
            guard = dataclasses.replace(
                guard,
                iterations=guard.iterations + 1,
                idle=0 if moved else guard.idle + 1,
                generation=frozenset(),
            )
        if not guard.generation and progress.active:
            guard = dataclasses.replace(
                guard, generation=progress.active, settled_at_start=progress.settled
            )
        return guard

    def replay(self, events: Iterable[Event]) -> LoopGuard:
        """Observe the progress after each event (rebuilds the counters after a restart)."""
        from runner.state import apply

        guard = self
        state: RunState | None = None
        for event in events:
            state = apply(state, event)
            guard = guard.observe(progress_of(state))
        return guard


def check_loop(guard: LoopGuard, *, spawn_refused_by_budget: bool = False) -> str | None:
    """A distinct stop reason when the run must stop and ask a human, else None.

    ``spawn_refused_by_budget``: an escape the policy would have spawned was refused because the
    total or family spawn budget is used up (``SpawnDecision.reason`` says "budget exhausted").
    """
    if guard.idle >= guard.max_idle:
        return (
            f"anti-loop: {guard.idle} scheduler loops in a row without progress "
            "(no task merged, failed or was skipped); look at the failing tasks, then resume"
        )
    if guard.iterations >= guard.max_iterations:
        return (
            f"anti-loop: {guard.iterations} scheduler loops reached budgets.iterations "
            f"({guard.max_iterations}); raise it in the plan to go on"
        )
    if spawn_refused_by_budget:
        return "spawn budget exhausted: a follow-up task could not be spawned; raise the budget"
    return None
