"""runner.detail: what the dashboard shows of one task, from a real repository and worktree."""

from __future__ import annotations

import pathlib
import subprocess
import threading

from runner import detail, worktrees
from runner import git as g
from runner.paths import SwarmPaths
from runner.state import RunLog
from tests.conftest import git

RUN = "r1"


def _run_with_a_worker(repo: pathlib.Path, root: pathlib.Path) -> tuple[RunLog, pathlib.Path]:
    base = g.head_sha(repo)
    wt = root / RUN / "T1"
    worktrees.create_worktree(repo, wt, f"swarm/{RUN}/T1", base)
    paths = SwarmPaths.for_repo(repo).run(RUN)
    paths.dir.mkdir(parents=True)
    log = RunLog(paths.events, paths.state)
    log.record(
        "run_created",
        run_id=RUN,
        tasks=["T1"],
        integration_branch=f"swarm/{RUN}/integration",
        integration_head=base,
    )
    log.record(
        "task_dispatched",
        "T1",
        attempt=1,
        session="swarm-r1-T1",
        branch=f"swarm/{RUN}/T1",
        worktree=str(wt),
        base_sha=base,
    )
    return log, wt


def test_branch_position_and_uncommitted_files(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    log, wt = _run_with_a_worker(git_repo, tmp_path / "wt")
    (wt / "a.txt").write_text("one\ntwo\n")
    g.commit_all(wt, "a")
    (wt / "b.txt").write_text("not yet committed\n")
    found = detail.task_detail(git_repo, log.state, "T1")
    assert (found.ahead, found.behind, found.uncommitted) == (1, 0, 1)
    assert found.diffstat == "1 file changed, 2 insertions(+)"
    text = detail.position_text(found, "swarm/r1/integration")
    assert text == (
        "1 ahead, 0 behind swarm/r1/integration; 1 file changed, 2 insertions(+); "
        "1 uncommitted file(s) in its worktree"
    )


def test_the_pane_log_is_the_preview_without_a_live_pane(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    log, _wt = _run_with_a_worker(git_repo, tmp_path / "wt")
    pane_log = SwarmPaths.for_repo(git_repo).run(RUN).pane_log("T1")
    pane_log.parent.mkdir(parents=True, exist_ok=True)
    pane_log.write_bytes(
        b"\x1b[1mbold\x1b[0m start\r\n" + b"".join(b"line %d\n" % i for i in range(40))
    )
    found = detail.task_detail(git_repo, log.state, "T1", lines=3)
    assert found.preview_from == "pane.log"
    assert found.preview.splitlines() == ["line 37", "line 38", "line 39"]
    found = detail.task_detail(git_repo, log.state, "T1", lines=50)
    assert found.preview.splitlines()[0] == "bold start"  # escape sequences stripped


def test_looking_never_breaks_a_worker_committing(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """The dashboard looks into a worktree while its worker commits: git's optional index lock
    would make the worker's `git commit` fail ("index.lock exists"); the look takes none."""
    log, wt = _run_with_a_worker(git_repo, tmp_path / "wt")
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            detail.task_detail(git_repo, log.state, "T1")

    looker = threading.Thread(target=look)
    looker.start()
    try:
        for i in range(40):
            (wt / f"f{i}.txt").write_text(f"{i}\n")
            git(wt, "add", "-A")
            done = subprocess.run(
                ["git", "commit", "-q", "-m", f"c{i}"], cwd=wt, capture_output=True, text=True
            )
            assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        looker.join()
    assert g.rev_list_count(git_repo, log.state.integration_head, f"swarm/{RUN}/T1") == 40
