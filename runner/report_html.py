"""``swarm report --html`` and ``runs/<id>/report.html``: one static, self-contained page (inline
CSS and SVG, no script, nothing fetched) drawn from a run's :class:`runner.timeline.Timeline`.

It shows a Gantt chart of the run (each attempt a bar coloured by its outcome) against the plan
as ``swarm plan simulate`` schedules it (a thin grey bar under each task, scaled to the run's
length), every attempt with its outcome and reason, the merge queue over time, the checks
(validation and gates) with the tail of their output, and the scope escapes with their
decisions. :func:`render` is pure; :func:`write_report` reads the run and saves the page.
"""

from __future__ import annotations

import logging
import pathlib
import typing as t
from datetime import timedelta
from html import escape

from agentmail.fs import write_text_atomic
from runner import timeline as tl
from runner.paths import SwarmPaths
from runner.report import format_seconds
from runner.simulate import simulate

logger = logging.getLogger(__name__)

PAD: t.Final = 16
"""Page padding (px): the Gantt chart's left edge."""
HEADER_H: t.Final = 112
"""Height of the page header (px): the Gantt chart starts at ``PAD + HEADER_H`` from the top."""
LABEL_W: t.Final = 150
CHART_W: t.Final = 900
AXIS_H: t.Final = 22
ROW_H: t.Final = 28
BAR_Y: t.Final = 4
BAR_H: t.Final = 14
PLAN_Y: t.Final = 21
PLAN_H: t.Final = 5
COLOURS: t.Final[dict[str, str]] = {
    "merged": "#2e9e5b",
    "refused": "#e69a28",
    "validation": "#e69a28",
    "crashed": "#d64541",
    "failed": "#8e1b1b",
    "blocked": "#8e1b1b",
    "cancelled": "#9aa0a6",
    "running": "#3b7dd8",
    "planned": "#b8bec8",
}
CSS: t.Final = f"""
body{{margin:0;font:13px/1.4 sans-serif;color:#222;background:#fff}}
.page{{padding:{PAD}px}}
header{{height:{HEADER_H}px;box-sizing:border-box;overflow:hidden}}
h1{{font-size:20px;margin:0 0 4px}} h2{{font-size:15px;margin:22px 0 6px}}
header h2{{margin:10px 0 0}}
.muted{{color:#666}} svg{{display:block}}
table{{border-collapse:collapse;margin:4px 0}} td,th{{border:1px solid #ddd;padding:3px 7px;
text-align:left;vertical-align:top}} th{{background:#f4f5f7}}
pre{{background:#f6f8fa;border:1px solid #e1e4e8;padding:6px;margin:4px 0;max-width:{CHART_W}px;
overflow:auto;font-size:12px}}
.ok{{color:#2e7d32;font-weight:bold}} .bad{{color:#c62828;font-weight:bold}}
.key{{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-2px}}
"""


def _clock(seconds: float) -> str:
    return format_seconds(seconds, tenths=True)


def _ticks(duration: float) -> list[float]:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400):
        if duration / step <= 10:
            break
    return [n * step for n in range(int(duration // step) + 1)]


class Scale(t.NamedTuple):
    duration: float

    def x(self, seconds: float) -> float:
        return LABEL_W + CHART_W * min(max(seconds, 0.0), self.duration) / self.duration

    def width(self, start: float, end: float) -> float:
        return max(self.x(end) - self.x(start), 2.0)


def _axis(scale: Scale, height: int) -> list[str]:
    out = []
    for tick in _ticks(scale.duration):
        x = round(scale.x(tick), 1)
        out.append(f'<line x1="{x}" y1="{AXIS_H - 4}" x2="{x}" y2="{height}" stroke="#eee"/>')
        out.append(
            f'<text x="{x}" y="{AXIS_H - 8}" text-anchor="middle" fill="#666">{_clock(tick)}</text>'
        )
    return out


def _bar(
    kind: str, task: str, x: float, y: float, w: float, h: float, tip: str, **data: t.Any
) -> str:
    attrs = "".join(f' data-{key}="{escape(str(value))}"' for key, value in data.items())
    return (
        f'<rect class="bar {kind}" data-task="{escape(task)}"{attrs} x="{x:.1f}" y="{y:.1f}" '
        f'width="{w:.1f}" height="{h}" fill="{COLOURS[kind]}"><title>{escape(tip)}</title></rect>'
    )


def _planned(line: tl.Timeline) -> dict[str, tuple[float, float]]:
    """Each task's simulated (start, end), scaled so the simulated makespan is the run's."""
    if line.plan is None:
        return {}
    try:
        sim = simulate(line.plan, workers=line.state.max_workers, waves=line.state.waves)
    except ValueError:
        return {}
    if sim.makespan <= 0:
        return {}
    factor = line.duration / sim.makespan
    return {task.id: (task.start * factor, task.end * factor) for task in sim.tasks}


def gantt(line: tl.Timeline) -> str:
    """The Gantt chart: per task, its attempts (solid) over the simulated plan (grey)."""
    scale = Scale(line.duration)
    tasks = list(line.state.task_order)
    height = AXIS_H + ROW_H * len(tasks)
    planned = _planned(line)
    out = [
        f'<svg id="gantt" width="{LABEL_W + CHART_W + 8}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        *_axis(scale, height),
    ]
    for row, task in enumerate(tasks):
        y = AXIS_H + row * ROW_H
        out.append(
            f'<text x="4" y="{y + BAR_Y + 11}" font-weight="bold">{escape(task[:22])}</text>'
        )
        if task in planned:
            start, end = planned[task]
            tip = f"{task}: planned {_clock(start)} to {_clock(end)} (scaled)"
            out.append(
                _bar(
                    "planned",
                    task,
                    scale.x(start),
                    y + PLAN_Y,
                    scale.width(start, end),
                    PLAN_H,
                    tip,
                )
            )
        for a in (a for a in line.attempts if a.task == task):
            tip = f"{task} attempt {a.attempt}: {tl.OUTCOME_WORDS[a.outcome]}"
            tip += f" ({_clock(a.start)} to {_clock(a.end)})" + (
                f": {a.reason}" if a.reason else ""
            )
            out.append(
                _bar(
                    a.outcome,
                    task,
                    scale.x(a.start),
                    y + BAR_Y,
                    scale.width(a.start, a.end),
                    BAR_H,
                    tip,
                    attempt=a.attempt,
                )
            )
            if a.offered is not None:
                x = scale.x(a.offered)
                out.append(
                    f'<line x1="{x:.1f}" y1="{y + BAR_Y - 2}" x2="{x:.1f}" '
                    f'y2="{y + BAR_Y + BAR_H + 2}" stroke="#222" stroke-width="1.5"/>'
                )
    out.append("</svg>")
    return "\n".join(out)


def queue_chart(line: tl.Timeline) -> str:
    """The merge queue over time: one lane per offer, from offered to the arbiter's decision."""
    if not line.queue:
        return '<p class="muted">No offer reached the merge queue.</p>'
    scale = Scale(line.duration)
    lane = 18
    height = AXIS_H + lane * len(line.queue)
    out = [
        f'<svg id="queue" width="{LABEL_W + CHART_W + 8}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        *_axis(scale, height),
    ]
    for row, entry in enumerate(line.queue):
        y = AXIS_H + row * lane
        out.append(f'<text x="4" y="{y + 12}">{escape(entry.task[:18])} #{entry.attempt}</text>')
        tip = f"{entry.task}: offered at {_clock(entry.offered)}, {tl.OUTCOME_WORDS[entry.outcome]}"
        tip += f" after {_clock(entry.decided - entry.offered)}"
        out.append(
            _bar(
                entry.outcome,
                entry.task,
                scale.x(entry.offered),
                y + 3,
                scale.width(entry.offered, entry.decided),
                11,
                tip,
                queue=row,
            )
        )
    out.append("</svg>")
    return "\n".join(out)


def _table(header: t.Sequence[str], rows: t.Sequence[t.Sequence[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _legend() -> str:
    keys = [
        ("merged", "merged"),
        ("refused", "refused / validation failed"),
        ("crashed", "crashed"),
        ("failed", "failed / blocked"),
        ("cancelled", "cancelled"),
        ("running", "unfinished"),
        ("planned", "simulated plan (scaled)"),
    ]
    items = "".join(
        f'<span class="key" style="background:{COLOURS[k]}"></span>{escape(text)}'
        for k, text in keys
    )
    return f'<p class="muted">{items}. A tick: the offer.</p>'


def render(line: tl.Timeline) -> str:
    """The whole page (pure)."""
    state = line.state
    merged = sum(1 for r in state.tasks.values() if r.state == "merged")
    failed = sum(1 for r in state.tasks.values() if r.state in ("failed", "blocked"))
    ended = line.started + timedelta(seconds=line.duration)
    reason = f" ({escape(state.stop_reason)})" if state.stop_reason else ""
    status_class = "ok" if state.status == "done" else "bad" if state.status == "failed" else ""
    title = f"swarm run {state.run_id}" + (f": {state.plan_name}" if state.plan_name else "")
    attempts = [
        [
            escape(a.task),
            str(a.attempt or "-"),
            _clock(a.start),
            _clock(a.end - a.start),
            f'<span style="color:{COLOURS[a.outcome]}">{tl.OUTCOME_WORDS[a.outcome]}</span>',
            escape(a.reason),
        ]
        for a in line.attempts
    ]
    checks = [
        [
            _clock(c.at),
            escape(c.name),
            escape(c.task or "run"),
            '<span class="ok">passed</span>' if c.passed else '<span class="bad">failed</span>',
            escape(c.reason) + (f"<pre>{escape(c.output)}</pre>" if c.output else ""),
        ]
        for c in line.checks
    ]
    escapes_ = [
        [
            escape(e.source or "-"),
            escape(e.key or "-"),
            escape(e.finding),
            escape(f"spawned {e.spawned}" if e.spawned else f"rejected: {e.reason}")
            + (" (dispatch paused)" if e.pause else ""),
        ]
        for e in state.escapes
    ]
    head = state.integration_head[:12]
    landed = "landed" if state.landed else "not landed"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title)}</title>",
            f"<style>{CSS}</style>",
            '</head><body><div class="page">',
            "<header>",
            f"<h1>{escape(title)}</h1>",
            f'<div>Status: <span class="{status_class}">{escape(state.status)}</span>{reason}; '
            f"{merged}/{len(state.tasks)} tasks merged, {failed} failed; {landed}.</div>",
            f'<div class="muted">{line.started:%Y-%m-%d %H:%M:%S} to {ended:%H:%M:%S} UTC '
            f"({_clock(line.duration)}); {escape(state.integration_branch)} at "
            f"{escape(head)}</div>",
            "<h2>Gantt chart: the run against the simulated plan</h2>",
            "</header>",
            gantt(line),
            _legend(),
            "<h2>Attempts</h2>",
            _table(
                ["Task", "Attempt", "Start", "Took", "Outcome", "Reason"], attempts, "No attempts."
            ),
            "<h2>Merge queue</h2>",
            queue_chart(line),
            "<h2>Checks: validation and gates</h2>",
            _table(
                ["At", "Check", "Task", "Result", "Reason and output"],
                checks,
                "No check ran (the plan has no gates or validation).",
            ),
            "<h2>Scope escapes</h2>",
            _table(["From", "Key", "Finding", "Decision"], escapes_, "No scope escapes."),
            "</div></body></html>",
            "",
        ]
    )


def report_path(repo: pathlib.Path, run_id: str) -> pathlib.Path:
    return SwarmPaths.for_repo(repo).run(run_id).dir / "report.html"


def write_report(repo: pathlib.Path, run_id: str) -> pathlib.Path:
    """Render the run's page from its files and save it as ``runs/<id>/report.html``."""
    path = report_path(repo, run_id)
    write_text_atomic(path, render(tl.build(tl.load(repo, run_id))))
    logger.info("wrote the html report", extra={"path": str(path)})
    return path
