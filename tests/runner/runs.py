"""Helpers shared by the end-to-end run tests: plans, running swarm, reading events and git."""

from __future__ import annotations

import json
import pathlib
import typing as t

import yaml
from click.testing import CliRunner, Result
from libtmux.server import Server

from protocol.state import Event
from runner.cli.main import cli
from runner.events import read_events
from runner.paths import SwarmPaths
from tests.conftest import git

Steps = list[dict[str, t.Any]]


def write(path: str, content: str) -> dict[str, t.Any]:
    return {"write": {"path": path, "content": content}}


def task(tid: str, files: list[str], script: Steps, **extra: t.Any) -> dict[str, t.Any]:
    return {"id": tid, "subject": f"task {tid}", "files": files, "script": script, **extra}


def write_plan(where: pathlib.Path, tasks: list[dict[str, t.Any]], **extra: t.Any) -> pathlib.Path:
    path = where / "plan.yaml"
    path.write_text(yaml.safe_dump({"name": "e2e", "tasks": tasks, **extra}))
    return path


def swarm(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def swarm_run(repo: pathlib.Path, plan: pathlib.Path, server: Server | None, *args: str) -> Result:
    mode = ["--tmux-socket", str(server.socket_name)] if server else ["--mode", "local"]
    return CliRunner().invoke(
        cli,
        [
            "run",
            str(plan),
            "--repo",
            str(repo),
            "--run-id",
            "r1",
            "--worktree-root",
            str(repo.parent / "wt"),
            *mode,
            *args,
        ],
        catch_exceptions=False,
    )


def events(repo: pathlib.Path, run_id: str = "r1") -> list[Event]:
    return read_events(SwarmPaths.for_repo(repo).run(run_id).events)


def state_doc(repo: pathlib.Path, run_id: str = "r1") -> dict[str, t.Any]:
    text = SwarmPaths.for_repo(repo).run(run_id).state.read_text()
    doc: dict[str, t.Any] = json.loads(text)
    return doc


def intervals(evs: list[Event]) -> dict[str, list[tuple[int, int]]]:
    """Per task, the (first dispatch seq, end seq) spans during which it held a slot."""
    spans: dict[str, list[tuple[int, int]]] = {}
    opened: dict[str, int] = {}
    for ev in evs:
        if ev.task_id is None:
            continue
        if ev.kind == "task_dispatched" and ev.task_id not in opened:
            opened[ev.task_id] = ev.seq
        elif ev.kind in ("task_merged", "task_failed", "task_blocked", "task_cancelled"):
            start = opened.pop(ev.task_id, None)
            if start is not None:
                spans.setdefault(ev.task_id, []).append((start, ev.seq))
    return spans


def merged_subjects(repo: pathlib.Path, run_id: str = "r1") -> list[str]:
    out = git(repo, "log", "--merges", "--format=%s", f"swarm/{run_id}/integration")
    return sorted(out.splitlines())


def wait_for(predicate: t.Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``predicate`` until it holds (a missing or half-written file counts as not yet)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
