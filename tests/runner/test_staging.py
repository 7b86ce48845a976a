"""Worktrees made ahead: a task that waits on a running one gets its worktree (detached at the
integration head) while it waits, and starts on its branch at the merge with one ``git
checkout``. Whatever happens meanwhile (the task is skipped, the run stops, the mayor is
SIGKILLed, a worker plants a branch or files there), the task starts from exactly its base, or
as it would have without staging, and nothing staged is left behind."""

from __future__ import annotations

import pathlib
import subprocess

from libtmux.server import Server

from protocol.plan import Plan
from protocol.state import TaskState
from runner import worktrees
from runner.actions import PlanView
from runner.decide import stage
from runner.paths import SwarmPaths
from runner.scheduler import SchedulerInput, stage_ahead
from tests.conftest import git
from tests.runner import faults
from tests.runner.runs import Steps, state_doc, swarm_run, task, write, write_plan


def _took_staged(worktree: pathlib.Path, branch: str) -> bool:
    """The worktree's HEAD went from a detached commit to ``branch`` by a checkout."""
    subjects = git(worktree, "reflog", "--format=%gs", "HEAD").splitlines()
    return any(
        s.startswith("checkout: moving from ") and s.endswith(f" to {branch}") for s in subjects
    )


def _nothing_staged_left(repo: pathlib.Path) -> None:
    staged = SwarmPaths.for_repo(repo).run("r1").staged_dir
    assert not (staged.is_dir() and any(staged.iterdir())), "a staged worktree was never taken"
    porcelain = git(repo, "worktree", "list", "--porcelain")
    assert "\ndetached" not in porcelain, f"a staged worktree was left:\n{porcelain}"


# -- which tasks: the pure policy ------------------------------------------------------------


def _plan(*tasks: tuple[str, list[str]]) -> Plan:
    return Plan.model_validate(
        {
            "tasks": [
                {"id": tid, "subject": tid, "files": [f"{tid}.txt"], "blocked_by": deps}
                for tid, deps in tasks
            ],
        }
    )


def _staged(
    plan: Plan,
    states: dict[str, TaskState],
    staged: tuple[str, ...] = (),
    *,
    workers: int = 5,
    paused: bool = False,
    waves: bool = False,
) -> tuple[str, ...]:
    inp = SchedulerInput(plan, states, max_workers=workers, paused=paused, waves=waves)
    return stage_ahead(inp, staged)


def test_only_tasks_whose_every_unmerged_dependency_is_at_work_are_staged() -> None:
    plan = _plan(("A", []), ("B", []), ("C", ["A"]), ("D", ["A", "B"]), ("E", ["C"]), ("F", ["A"]))
    # A runs, B waits: C and F wait on A alone; D also on B (not started); E on C (not started)
    assert _staged(plan, {"A": "running"}) == ("C", "F")
    # B merged, A offered: D waits on A alone now
    assert _staged(plan, {"A": "offered", "B": "merged"}) == ("C", "D", "F")
    assert _staged(plan, {"A": "running"}, ("C",)) == ("F",)  # one staged already
    assert _staged(plan, {"A": "running"}, workers=2) == ("C",)  # a slot each: A's and one more
    assert _staged(plan, {"A": "running"}, ("X",), workers=2) == ()  # that slot is taken
    assert _staged(plan, {"A": "running"}, paused=True) == ()
    assert _staged(plan, {"A": "running"}, waves=True) == ()
    # a dead dependency: skipped, never staged
    assert _staged(plan, {"A": "running", "B": "failed"}) == ("C", "F")


def test_a_task_that_started_before_is_not_staged_again(git_repo: pathlib.Path) -> None:
    from runner import launch

    plan = _plan(("A", []), ("B", ["A"]))
    log = launch.create_run(
        git_repo,
        plan,
        launch.RunOptions(mode="local", run_id="r1", worktree_root=git_repo.parent / "wt"),
    )
    view = PlanView.build(plan, case_sensitive=True)
    log.record("task_dispatched", "A", attempt=1, worktree="/wt/A", branch="b", base_sha="0" * 40)
    assert stage(log.state, view, ()) == ("B",)
    log.record("task_dispatched", "B", attempt=1, worktree="/wt/B", branch="b", base_sha="0" * 40)
    log.record("task_crashed", "B", reason="x")
    log.record("task_failed", "B", reason="x")
    log.record("task_retried", "B")  # `swarm retry`: pending again, with its worktree
    assert log.state.tasks["B"].state == "pending"
    assert stage(log.state, view, ()) == ()


# -- the checkout ----------------------------------------------------------------------------


def _stage_b(repo: pathlib.Path) -> tuple[pathlib.Path, str]:
    """B's worktree staged at the repository's head; returns it and that head."""
    base = git(repo, "rev-parse", "HEAD")
    path = repo.parent / "wt" / "r1" / "B"
    worktrees.stage_worktree(repo, path, base)
    return path, base


def test_a_staged_worktree_starts_its_branch_at_the_new_base_as_a_fresh_one_would(
    git_repo: pathlib.Path,
) -> None:
    path, _ = _stage_b(git_repo)
    (git_repo / "new.txt").write_text("new\n")
    git(git_repo, "add", "new.txt")
    git(git_repo, "commit", "-q", "-m", "the merge B waited for")
    new = git(git_repo, "rev-parse", "HEAD")
    # someone changed and added files while it waited
    (path / "README.md").write_text("planted\n")
    (path / "junk").mkdir()
    (path / "junk" / "x.txt").write_text("x\n")
    (path / "ignored.log").write_text("x\n")
    (path / ".gitignore").write_text("*.log\n")

    assert worktrees.take_staged(git_repo, path, "swarm/r1/B", new)
    assert git(path, "rev-parse", "HEAD") == new
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/swarm/r1/B"
    assert git(path, "status", "--porcelain", "--ignored") == ""
    assert (path / "new.txt").read_text() == "new\n"
    assert (path / "README.md").read_text() == "# sample\n"


def test_a_branch_planted_before_the_start_is_kept_and_the_staged_worktree_goes(
    git_repo: pathlib.Path,
) -> None:
    path, base = _stage_b(git_repo)
    git(git_repo, "branch", "swarm/r1/B", base)  # made by someone else in the meantime

    assert not worktrees.take_staged(git_repo, path, "swarm/r1/B", base)
    assert not path.exists()
    assert "detached" not in git(git_repo, "worktree", "list", "--porcelain")
    worktrees.create_worktree(git_repo, path, "swarm/r1/B", base)  # what the start does then
    assert git(path, "symbolic-ref", "HEAD") == "refs/heads/swarm/r1/B"


def test_only_a_worktree_of_the_repository_is_ever_discarded(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    folder = tmp_path / "not-a-worktree"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine\n")
    worktrees.discard_staged(git_repo, folder)
    assert (folder / "keep.txt").read_text() == "mine\n"
    assert not worktrees.take_staged(git_repo, folder, "swarm/r1/X", "HEAD")
    assert (folder / "keep.txt").read_text() == "mine\n"


# -- in a run --------------------------------------------------------------------------------


def test_a_dependent_starts_in_its_staged_worktree_with_the_merge_checked_out(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [
        task("A", ["a.txt"], [{"sleep": 0.5}, write("a.txt", "A\n")]),
        # a non-zero `run` fails the task: B and C see what they wait for at their start
        task(
            "B",
            ["b.txt"],
            [{"run": "test -f a.txt"}, {"sleep": 0.5}, write("b.txt", "B\n")],
            blocked_by=["A"],
        ),
        task(
            "C",
            ["c.txt"],
            [{"run": "test -f a.txt && test -f b.txt"}, write("c.txt", "C\n")],
            blocked_by=["B"],
        ),
    ]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server)
    assert result.exit_code == 0, result.output
    root = git_repo.parent / "wt" / "r1"
    assert _took_staged(root / "B", "swarm/r1/B")
    assert _took_staged(root / "C", "swarm/r1/C")
    assert not _took_staged(root / "A", "swarm/r1/A")  # nothing ran before it: made at its start
    _nothing_staged_left(git_repo)


def test_a_staged_task_that_is_skipped_leaves_nothing(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [
        task("A", ["a.txt"], [{"sleep": 0.8}, {"crash": 4}]),
        task("B", ["b.txt"], [write("b.txt", "B\n")], blocked_by=["A"]),
    ]
    plan = write_plan(git_repo.parent, tasks, budgets={"max_attempts": 1})
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 1, result.output
    assert state_doc(git_repo)["tasks"]["B"]["state"] == "skipped"
    assert not (git_repo.parent / "wt" / "r1" / "B").exists()
    assert "swarm/r1/B" not in git(git_repo, "branch", "--list", "swarm/r1/B")
    _nothing_staged_left(git_repo)


def test_files_and_a_branch_planted_in_a_staged_worktree_never_reach_the_task(
    git_repo: pathlib.Path, server: Server
) -> None:
    """A worker writes into the next task's staged worktree (tracked and untracked files):
    the task starts from exactly its base. Another plants the next task's branch: it is kept
    (adopted as a worktree made afresh would), nothing breaks."""
    plant = "echo planted >> ../B/README.md && echo junk > ../B/junk.txt"
    tasks = [
        task("A", ["a.txt"], [{"sleep": 0.6}, {"run": plant}, write("a.txt", "A\n")]),
        task(
            "B",
            ["b.txt"],
            [{"run": "! grep -q planted README.md && test ! -e junk.txt"}, write("b.txt", "B\n")],
            blocked_by=["A"],
        ),
        task(
            "C",
            ["c.txt"],
            [{"sleep": 0.6}, {"run": "git branch swarm/r1/D HEAD"}, write("c.txt", "C\n")],
            blocked_by=["B"],
        ),
        task("D", ["d.txt"], [write("d.txt", "D\n")], blocked_by=["C"]),
    ]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server)
    assert result.exit_code == 0, result.output
    assert _took_staged(git_repo.parent / "wt" / "r1" / "B", "swarm/r1/B")
    assert all(rec["state"] == "merged" for rec in state_doc(git_repo)["tasks"].values())
    _nothing_staged_left(git_repo)


def _staged_then_killed(
    repo: pathlib.Path, where: pathlib.Path, socket: str, a_script: Steps, b_script: Steps
) -> pathlib.Path:
    """Start A -> B for real (``--detach``), wait until B's worktree is staged, SIGKILL the
    mayor; returns B's worktree."""
    plan = faults.write_plan(
        where,
        {
            "name": "staged",
            "tasks": [
                task("A", ["a.txt"], a_script),
                task("B", ["b.txt"], b_script, blocked_by=["A"]),
            ],
        },
    )
    faults.start(repo, plan, socket, "r1")
    marker = SwarmPaths.for_repo(repo).run("r1").staged("B")
    staged = repo.parent / "wt" / "r1" / "B"
    faults.wait_until(lambda: marker.exists() and (staged / "README.md").exists(), 30, "B staged")
    assert faults.kill_mayor(repo, "r1")
    return staged


def test_a_mayor_sigkilled_between_staging_and_the_start_is_resumed_onto_the_staged_worktree(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    socket = str(server.socket_name)
    a_script = [{"sleep": 2.0}, write("a.txt", "A\n")]
    b_script = [{"run": "test -f a.txt"}, write("b.txt", "B\n")]
    staged = _staged_then_killed(git_repo, tmp_path, socket, a_script, b_script)
    faults.resume(git_repo, "r1")
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 60, "the run to end")
    faults.check_invariants(git_repo, "r1")
    assert _took_staged(staged, "swarm/r1/B")
    _nothing_staged_left(git_repo)
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)


def test_a_staged_worktree_a_sigkilled_mayor_left_goes_with_swarm_clean(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    socket = str(server.socket_name)
    staged = _staged_then_killed(
        git_repo, tmp_path, socket, [{"hang": True}], [write("b.txt", "B\n")]
    )
    faults.swarm("stop", "r1", "--repo", str(git_repo))
    faults.swarm("clean", "r1", "--repo", str(git_repo))
    assert not staged.exists()
    assert "\ndetached" not in git(git_repo, "worktree", "list", "--porcelain")
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
