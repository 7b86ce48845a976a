"""The HTML report: a real scripted run's page, rendered by headless Chromium and checked on
the screenshot (bar colours where the layout puts them) and in the parsed DOM."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import typing as t

import pytest
from libtmux.server import Server

from protocol.state import Event
from runner import report_html, timeline
from runner.paths import SwarmPaths
from runner.report_html import COLOURS, HEADER_H, PAD
from tests import browser
from tests.runner.runs import events, swarm, swarm_run, task, wait_for, write, write_plan

WIDTH, HEIGHT = 1100, 480
SCREENSHOT_COPY: t.Final = "KEEP_REPORT_SCREENSHOT"
"""Set to a path to keep the screenshot (docs/img/report.png is taken that way)."""


def _run_plan(repo: pathlib.Path, hook_log: pathlib.Path) -> list[dict[str, t.Any]]:
    return [
        task("models", ["src/models.py"], [{"sleep": 0.6}, write("src/models.py", "M = 1\n")]),
        task(
            "api",
            ["src/api.py"],
            [{"crash": 3, "attempt": 1}, {"sleep": 0.4}, write("src/api.py", "A = 1\n")],
            blocked_by=["models"],
        ),
        task(
            "docs",
            ["docs/"],
            [
                write("docs/usage.md", "# usage\n"),
                {
                    "escape": {
                        "finding": "README needs a link <b>here</b>",
                        "files": ["README.md"],
                        "intent": "link-docs",
                        "severity": "low",
                    }
                },
            ],
        ),
        task(
            "broken",
            ["src/broken.py"],
            [write("src/broken.py", "B = 1\n")],
            validation={"tests": "echo 'AssertionError: 2 != 3 <script>x</script>'; exit 1"},
        ),
    ]


def _bars(page: str) -> list[dict[str, str]]:
    bars = []
    for match in re.finditer(r"<rect class=\"bar ([a-z]+)\"([^>]*)>", page):
        attrs = dict(re.findall(r'([a-z-]+)="([^"]*)"', match.group(2)))
        bars.append({"kind": match.group(1), **attrs})
    return bars


def test_a_real_run_report_renders_in_chromium(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    hook_log = tmp_path / "hook.log"
    plan = write_plan(
        git_repo.parent,
        _run_plan(git_repo, hook_log),
        gates=[{"name": "check", "command": "true"}],
        budgets={"max_attempts": 2},
        notify=f"printf '%s|%s|%s\\n' {{event}} {{task}} {{status}} >> {hook_log}",
    )
    result = swarm_run(git_repo, plan, server, "--max-workers", "2")
    assert result.exit_code == 1, result.output  # "broken" never passes its validation

    page_path = report_html.report_path(git_repo, "r1")
    wait_for(page_path.is_file)  # the mayor writes it just after recording the end
    page = page_path.read_text()
    assert (
        "<script" not in page and "src=" not in page and "<link" not in page and "url(" not in page
    )
    assert "&lt;script&gt;x&lt;/script&gt;" in page  # a check's output, escaped
    assert "&lt;b&gt;here&lt;/b&gt;" in page  # the escape's finding, escaped
    bars = _bars(page)
    outcomes = {(b["data-task"], b.get("data-attempt"), b["kind"]) for b in bars}
    assert {("models", "1", "merged"), ("api", "1", "crashed"), ("api", "2", "merged")} <= outcomes
    assert ("broken", "1", "validation") in outcomes and ("docs", "1", "merged") in outcomes
    assert {b["data-task"] for b in bars if b["kind"] == "planned"} == {
        "models",
        "api",
        "docs",
        "broken",
    }
    assert len([b for b in bars if "data-queue" in b]) >= 4  # every offer went through the queue

    dom = browser.dump_dom(page_path)
    assert dom.count('class="bar merged"') == page.count('class="bar merged"') > 0
    assert 'id="gantt"' in dom and 'id="queue"' in dom

    png = tmp_path / "report.png"
    browser.screenshot(page_path, png, WIDTH, HEIGHT)
    if os.environ.get(SCREENSHOT_COPY):
        shutil.copy(png, os.environ[SCREENSHOT_COPY])
    image = browser.read_png(png)
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    checked = 0
    for bar in bars:
        if "data-queue" in bar or float(bar["width"]) < 6:
            continue
        x = PAD + float(bar["x"]) + float(bar["width"]) / 2
        y = PAD + HEADER_H + float(bar["y"]) + float(bar["height"]) / 2
        if y >= HEIGHT:
            continue
        seen = image.pixel(int(x), int(y))
        want = browser.hex_rgb(COLOURS[bar["kind"]])
        assert browser.close(seen, want), (bar, seen, want)
        checked += 1
    assert checked >= 6
    assert browser.close(image.pixel(PAD + 2, PAD + HEADER_H + 2), (255, 255, 255))  # no bar

    wait_for(lambda: "finished||failed" in hook_log.read_text())
    lines = hook_log.read_text().splitlines()
    assert "failed|broken|failed" in lines
    assert lines.count("finished||failed") == 1


def _events(*rows: tuple[str, str | None, dict[str, t.Any]]) -> tuple[Event, ...]:
    from datetime import UTC, datetime, timedelta

    start = datetime(2026, 1, 1, tzinfo=UTC)
    return tuple(
        Event(seq=n, ts=start + timedelta(seconds=n), run_id="r9", kind=kind, task_id=tid, data=d)
        for n, (kind, tid, d) in enumerate(rows, 1)
    )


def test_a_hostile_run_log_cannot_inject_markup() -> None:
    """Reasons, ids and outputs come from workers: every one of them is escaped."""
    evil = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    evs = _events(
        ("run_created", None, {"run_id": "r9", "tasks": ["A"], "plan_name": evil}),
        ("task_dispatched", "A", {"attempt": 1}),
        ("task_offered", "A", {"text": evil}),
        ("validation_started", "A", {}),
        ("validation_failed", "A", {"reason": evil, "check": evil}),
        ("task_failed", "A", {"reason": evil}),
        ("run_finished", None, {"status": "failed", "reason": evil}),
    )
    logs = {("A", "validation.log"): evil * 3}
    page = report_html.render(timeline.build(timeline.Inputs(evs, None, logs)))
    assert (
        "<script" not in page
        and "<img" not in page
        and "onerror=alert" not in page.replace("onerror=alert(2)&gt;", "")
    )
    assert page.count("&lt;script&gt;") >= 4


def test_an_unfinished_run_shows_running_attempts() -> None:
    evs = _events(
        ("run_created", None, {"run_id": "r9", "tasks": ["A", "B"]}),
        ("task_dispatched", "A", {"attempt": 1}),
        ("task_dispatched", "A", {"attempt": 1}),  # a lost session restarted in place
    )
    line = timeline.build(timeline.Inputs(evs, None, {}))
    assert [(a.task, a.attempt, a.outcome) for a in line.attempts] == [("A", 1, "running")]
    assert line.attempts[0].end == line.duration
    assert 'class="bar running"' in report_html.render(line)


def test_cli_report_html(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), None)
    assert result.exit_code == 0, result.output
    path = report_html.report_path(git_repo, "r1")
    wait_for(path.is_file)  # the end of the run writes it
    path.unlink()  # and so does the CLI, at any time
    result = swarm("report", "--html", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(path) and path.is_file()
    result = swarm("report", "r1", "--html", "-o", "-", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("<!doctype html>") and 'data-task="A"' in result.output
    result = swarm(
        "report", "--html", "--json", "-o", str(tmp_path / "x.html"), "--repo", str(git_repo)
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["path"] == str(tmp_path / "x.html")
    assert len(events(git_repo)) > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "x.html"], "--output goes with --html"),
        (["nope", "--html"], "no run 'nope'"),
    ],
)
def test_cli_report_html_errors(git_repo: pathlib.Path, args: list[str], message: str) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    assert swarm_run(git_repo, write_plan(git_repo.parent, tasks), None).exit_code == 0
    result = swarm("report", *args, "--repo", str(git_repo))
    assert result.exit_code == 2, result.output
    assert message in result.output


@pytest.mark.parametrize(
    ("seconds", "tenths", "text"),
    [
        (0, False, "0s"),
        (4.25, True, "4.2s"),
        (4.25, False, "4s"),
        (3.0, True, "3s"),
        (42, False, "42s"),
        (185, False, "3m05s"),
        (7800, False, "2h10m"),
        (90000, False, "1d01h"),
        (-5, True, "0s"),
        (-0.5, True, "0.0s"),
    ],
)
def test_format_seconds(seconds: float, tenths: bool, text: str) -> None:
    from runner.report import format_seconds

    assert format_seconds(seconds, tenths=tenths) == text


def test_a_huge_check_log_is_read_from_its_end(git_repo: pathlib.Path) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")], validation={"tests": "exit 1"})]
    plan = write_plan(git_repo.parent, tasks, budgets={"max_attempts": 1})
    assert swarm_run(git_repo, plan, None).exit_code == 1
    log = SwarmPaths.for_repo(git_repo).run("r1").task_dir("A") / "validation.log"
    with log.open("w") as fh:  # 40 MB of noise, then the line that matters
        fh.write(("x" * 1023 + "\n") * 40_000 + "the real failure\n")
    inputs = timeline.load(git_repo, "r1")
    assert len(inputs.logs[("A", "validation.log")]) == timeline.LOG_TAIL_BYTES
    page = report_html.render(timeline.build(inputs))
    assert "the real failure" in page and len(page) < 200_000
