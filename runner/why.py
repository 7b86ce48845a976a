"""Why a task was sent back or failed, for every surface that shows it (run output, ``watch``,
``status``, ``report``, the next attempt's brief): the reason the run recorded plus the last
lines of the failing check's output, which the arbiter saves as
``runs/<id>/tasks/<task>/validation.log`` (a task check) or ``gate.log`` (a gate after its
merge). A final gate's output is carried by its ``final_gate_failed`` event.

Importable without pydantic (``swarm status``'s fast path, :mod:`runner.status_view`): the
functions read tasks as records or as their JSON documents (``state.json``'s).
"""

from __future__ import annotations

import pathlib
import typing as t

from runner.errors import UsageError
from runner.paths import RunPaths

if t.TYPE_CHECKING:
    from protocol.state import Event, RunState, TaskRecord

LOG_NAMES: t.Final[dict[str, str]] = {"validation": "validation.log", "gate": "gate.log"}
"""The saved output of each refusal kind that has one (``TaskRecord.refusal``)."""
SHOWN_LINES: t.Final = 5
"""How many lines of a failing check's output a status line shows (the brief quotes more)."""
BRIEF_LINES: t.Final = 20
EXPLAINED_STATES: t.Final = frozenset({"rework", "failed", "blocked"})


class Why(t.NamedTuple):
    task_id: str
    reason: str
    """The recorded reason (``validation failed: tests: `pytest` exited 1``)."""
    log: pathlib.Path | None
    """Where the whole output is (None for a final gate: it is in the event)."""
    tail: tuple[str, ...]
    """The last lines of the failing check's output (may be empty: it printed nothing)."""


def tail_lines(text: str, lines: int) -> tuple[str, ...]:
    """The last ``lines`` non-blank lines of ``text``, right-stripped."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return tuple(kept[-lines:]) if lines else ()


def log_path(run: RunPaths, task_id: str, kind: str) -> pathlib.Path:
    """``validation.log`` or ``gate.log`` of ``task_id``; UsageError for another ``kind``."""
    name = LOG_NAMES.get(kind)
    if name is None:
        raise UsageError(f"no such check output {kind!r}: use one of {', '.join(LOG_NAMES)}")
    return run.task_dir(task_id) / name


def _read(path: pathlib.Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def of_task(
    run: RunPaths, record: TaskRecord, *, lines: int = SHOWN_LINES, always: bool = False
) -> Why | None:
    """Why ``record`` was refused, with its check's output when it has one; None when it was
    not refused. Only for rework, failed and blocked tasks unless ``always`` (the last refusal
    of a task that started again, for the next brief and the dashboard's detail)."""
    return _of(run, record.id, record.state, record.reason, record.refusal, lines, always)


def of_task_doc(
    run: RunPaths, task: t.Mapping[str, t.Any], *, lines: int = SHOWN_LINES
) -> Why | None:
    """:func:`of_task` of a task's JSON document (``TaskRecord.model_dump(mode="json")``)."""
    return _of(run, task["id"], task["state"], task["reason"], task["refusal"], lines, False)


def _of(
    run: RunPaths, task_id: str, state: str, reason: str, refusal: str, lines: int, always: bool
) -> Why | None:
    if not reason or not (always or state in EXPLAINED_STATES):
        return None
    if state == "merged":
        return None
    name = LOG_NAMES.get(refusal)
    path = run.task_dir(task_id) / name if name else None
    text = _read(path) if path is not None else None
    if text is None:
        return Why(task_id, reason, None, ())
    return Why(task_id, reason, path, tail_lines(text, lines))


def of_run(run: RunPaths, state: RunState, *, lines: int = SHOWN_LINES) -> list[Why]:
    """Every task's :func:`of_task`, in plan order."""
    found = (of_task(run, state.tasks[tid], lines=lines) for tid in state.task_order)
    return [why for why in found if why is not None]


def of_run_doc(run: RunPaths, doc: t.Mapping[str, t.Any], *, lines: int = SHOWN_LINES) -> list[Why]:
    """:func:`of_run` of the run state's JSON document (``state.json``)."""
    found = (of_task_doc(run, doc["tasks"][tid], lines=lines) for tid in doc["task_order"])
    return [why for why in found if why is not None]


def final_gate(events: t.Iterable[Event], *, lines: int = SHOWN_LINES) -> Why | None:
    """The last failed final gate of the run (``final_gate_failed``), if any, with its output."""
    return final_gate_of(((e.kind, e.data) for e in events), lines=lines)


FINAL_GATE_KINDS: t.Final = ("final_gate_failed", "run_resumed", "task_merged")
"""The only event kinds :func:`final_gate_of` looks at."""


def final_gate_of(
    events: t.Iterable[tuple[str, t.Mapping[str, t.Any]]], *, lines: int = SHOWN_LINES
) -> Why | None:
    """:func:`final_gate` of ``(kind, data)`` pairs (events read as plain JSON)."""
    last: t.Mapping[str, t.Any] | None = None
    for kind, data in events:
        if kind == "final_gate_failed":
            last = data
        elif kind in ("run_resumed", "task_merged"):
            last = None  # the run went on: that failure is history
    if last is None:
        return None
    output = str(last.get("output", ""))
    return Why("run", f"final {last.get('reason', 'gate failed')}", None, tail_lines(output, lines))


def text_lines(why: Why, *, indent: str = "  ", hint: str = "") -> list[str]:
    """``T02: <reason>``, then the output's last lines, then where the rest is."""
    out = [f"{why.task_id}: {why.reason}"]
    out += [f"{indent}| {line}" for line in why.tail]
    if why.log is not None:
        more = f" ({hint})" if hint else ""
        out.append(f"{indent}full output: {why.log}{more}")
    return out


def logs_hint(why: Why, run_id: str) -> str:
    """The ``swarm logs`` command that prints ``why``'s whole output."""
    if why.log is None:
        return ""
    flag = "--gate" if why.log.name == LOG_NAMES["gate"] else "--validation"
    return f"swarm logs {why.task_id} {flag} --run {run_id}"


def brief_quote(run: RunPaths, record: TaskRecord) -> str:
    """What the next attempt's brief quotes of the last refusal: the check's last lines (a
    fenced block) and the path of its whole output; "" when there is none."""
    why = of_task(run, record, lines=BRIEF_LINES, always=True)
    if why is None or why.log is None:
        return ""
    body = "\n".join(why.tail) or "(the check printed nothing)"
    fence = "````" if "```" in body else "```"
    return f"The check's last output lines (all of it: `{why.log}`):\n\n{fence}\n{body}\n{fence}"


def markdown(run: RunPaths, state: RunState, events: t.Iterable[Event] = ()) -> str:
    """The report's "Why" section: each refused task's reason and output tail; "" if none."""
    whys = of_run(run, state)
    if state.status != "done":
        final = final_gate(events)
        if final is not None:
            whys.append(final)
    if not whys:
        return ""
    out = ["### Why", ""]
    for why in whys:
        where = f" (`{why.log}`)" if why.log is not None else ""
        out += [f"**{why.task_id}**: {why.reason}{where}", ""]
        if why.tail:
            out += [f"    {line}" for line in why.tail] + [""]
    return "\n".join(out)
