"""Exact crash points, rebuilt for real: a mayor killed in the middle of a merge leaves a
``merge_started`` event, a half-done ``git merge`` and a stale ``index.lock``; the next mayor
settles that merge before any other one and merges every task exactly once."""

from __future__ import annotations

import pathlib

from agentmail.store import MailStore
from protocol.plan import Plan
from runner import launch
from runner.events import read_events
from runner.mayor import Mayor, MayorConfig
from runner.paths import SwarmPaths
from runner.sessions import ProcessBackend
from runner.state import RunLog, rebuild
from tests.conftest import git


def _offered_run(
    repo: pathlib.Path, where: pathlib.Path, *, waves: bool = False
) -> tuple[RunLog, dict[str, str]]:
    plan = Plan.model_validate(
        {"tasks": [{"id": tid, "subject": tid, "files": [f"{tid}.txt"]} for tid in ("A", "B")]}
    )
    log = launch.create_run(
        repo, plan, launch.RunOptions(mode="local", run_id="r1", worktree_root=where, waves=waves)
    )
    base = log.state.integration_head
    if waves:
        log.record("wave_started", wave=1, base=base, tasks=["A", "B"])
    heads = {}
    for tid in ("A", "B"):
        worktree = where / "r1" / tid
        git(repo, "worktree", "add", "-q", "-b", f"swarm/r1/{tid}", str(worktree), base)
        (worktree / f"{tid}.txt").write_text(f"{tid}\n")
        git(worktree, "add", "-A")
        git(worktree, "commit", "-q", "-m", f"work of {tid}")
        heads[tid] = git(worktree, "rev-parse", "HEAD")
        MailStore(SwarmPaths.for_repo(repo).mail).register(tid)
        log.record("task_dispatched", tid, attempt=1, session=None, worktree=str(worktree),
                   branch=f"swarm/r1/{tid}", base_sha=base)  # fmt: skip
        log.record("task_offered", tid, head_sha=heads[tid], text="offered")
    return log, heads


def test_a_merge_cut_short_by_a_crash_is_settled_before_the_next(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    log, heads = _offered_run(git_repo, tmp_path / "wt")
    base = log.state.integration_head
    integration = pathlib.Path(log.state.integration_worktree)
    # the mayor recorded the merge of B and was killed while git was merging
    log.record("merge_started", "B", head_sha=heads["B"], integration_head=base)
    git(integration, "merge", "--no-ff", "--no-commit", heads["B"])
    git_dir = pathlib.Path(git(integration, "rev-parse", "--absolute-git-dir"))
    (git_dir / "index.lock").touch()

    final = _new_mayor(git_repo).run()
    run = SwarmPaths.for_repo(git_repo).run("r1")

    assert final.status == "done", final.stop_reason
    subjects = git(git_repo, "log", "--merges", "--format=%s", "swarm/r1/integration")
    assert sorted(subjects.splitlines()) == ["swarm(A): A", "swarm(B): B"]
    assert git(integration, "status", "--porcelain") == ""
    assert rebuild(read_events(run.events)) == final


def _new_mayor(repo: pathlib.Path) -> Mayor:
    swarm = SwarmPaths.for_repo(repo)
    run = swarm.run("r1")
    return Mayor(
        MayorConfig(repo=repo, swarm=swarm, run=run, poll_interval=0.1),
        plan=launch.load_run_plan(repo, "r1"),
        log=RunLog.open(run.events, run.state),
        store=MailStore(swarm.mail),
        backend=ProcessBackend(),
    )


def test_a_wave_commit_cut_short_by_a_crash_is_finished_once(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    log, heads = _offered_run(git_repo, tmp_path / "wt", waves=True)
    base = log.state.integration_head
    integration = pathlib.Path(log.state.integration_worktree)
    for tid in ("A", "B"):  # the wave's merges, as the mayor makes and records them
        log.record("merge_started", tid, head_sha=heads[tid], integration_head=base)
        git(integration, "merge", "-q", "--no-ff", "-m", f"swarm({tid}): {tid}", heads[tid])
        sha = git(integration, "rev-parse", "HEAD")
        log.record("task_merged", tid, head_sha=heads[tid], merge_sha=sha, integration_head=sha)
    tip = git(integration, "rev-parse", "HEAD")
    # the mayor began squashing the wave and was killed between the reset and the commit
    log.record("wave_commit_started", wave=1, base=base, tip=tip)
    git(integration, "reset", "-q", "--soft", base)

    final = _new_mayor(git_repo).run()

    assert final.status == "done", final.stop_reason
    log_lines = git(git_repo, "log", "--format=%s", f"{base}..swarm/r1/integration")
    assert log_lines.splitlines() == ["chore(wave-1): close A, B"]
    assert git(git_repo, "rev-parse", "swarm/r1/integration^{tree}") == git(
        git_repo, "rev-parse", f"{tip}^{{tree}}"
    )


def test_merges_recorded_but_not_yet_applied_are_applied_on_resume_without_an_alarm(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Without gates the arbiter records merge_started and task_merged in one write per merge
    and moves the branch once after the step's merges; a mayor killed before that leaves the
    branch behind the recorded head by every merge of the step."""
    log, heads = _offered_run(git_repo, tmp_path / "wt")
    base = log.state.integration_head
    integration = pathlib.Path(log.state.integration_worktree)
    for tid in ("A", "B"):
        ours = log.state.integration_head
        tree = git(integration, "merge-tree", "--write-tree", ours, heads[tid])
        message = f"swarm({tid}): {tid}"
        sha = git(git_repo, "commit-tree", tree, "-p", ours, "-p", heads[tid], "-m", message)
        merged = {"head_sha": heads[tid], "merge_sha": sha, "integration_head": sha}
        log.record_all([
            ("merge_started", tid, {"head_sha": heads[tid], "integration_head": ours}),
            ("task_merged", tid, merged),
        ])  # fmt: skip
    assert git(integration, "rev-parse", "HEAD") == base  # the act the crash cut short

    final = _new_mayor(git_repo).run()
    run = SwarmPaths.for_repo(git_repo).run("r1")

    assert final.status == "done", final.stop_reason
    subjects = git(git_repo, "log", "--merges", "--format=%s", "swarm/r1/integration")
    assert sorted(subjects.splitlines()) == ["swarm(A): A", "swarm(B): B"]
    assert git(git_repo, "rev-parse", "swarm/r1/integration") == final.integration_head
    assert git(integration, "status", "--porcelain") == ""
    kinds = [event.kind for event in read_events(run.events)]
    assert "integration_reset" not in kinds  # a crash of ours is not someone moving the branch
    assert rebuild(read_events(run.events)) == final


def test_a_branch_moved_by_someone_else_is_still_reported(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    log, _heads = _offered_run(git_repo, tmp_path / "wt")
    integration = pathlib.Path(log.state.integration_worktree)
    final = _new_mayor(git_repo).run()
    assert final.status == "done", final.stop_reason
    # a worker goes back one merge and commits there: not an act of the arbiter cut short
    git(integration, "reset", "-q", "--hard", "HEAD^1")
    git(integration, "commit", "-q", "--allow-empty", "-m", "planted")
    reset = _new_mayor(git_repo).arbiter.guard_integration()
    assert reset is not None and "was reset to" in reset
    assert git(integration, "rev-parse", "HEAD") == final.integration_head
    # going back along the arbiter's own merges only is restored the same way, silently
    git(integration, "reset", "-q", "--hard", "HEAD~2")
    assert _new_mayor(git_repo).arbiter.guard_integration() is None
    assert git(integration, "rev-parse", "HEAD") == final.integration_head


def test_a_step_woken_by_mail_alone_asks_tmux_at_most_once_a_poll_interval(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Every worker report wakes the mayor; listing every session on each would put a tmux
    round trip on the dispatch path. A step woken only by mail skips the poll until the last
    one is a poll interval (here 0.1 s) old; any other reason (a timer, an exit, adopting
    live workers) polls at once."""
    _offered_run(git_repo, tmp_path / "wt")
    mayor = _new_mayor(git_repo)
    assert mayor._poll_due()  # never polled: due
    for reasons in ({"mail"}, {"box"}, {"mail", "box"}):
        mayor._woken = set(reasons)
        assert not mayor._poll_due(), reasons
    for reasons in (set(), {"timer"}, {"mail", "exit:swarm-r1-A"}, {"mail", "timer"}):
        mayor._woken = set(reasons)
        assert mayor._poll_due(), reasons
    mayor._woken = {"mail"}
    assert not mayor._poll_due()
    mayor._polled -= mayor.config.poll_interval  # the last poll is an interval old
    assert mayor._poll_due()
