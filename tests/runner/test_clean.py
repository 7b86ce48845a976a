"""runner.clean and ``swarm clean``: merged work goes, unmerged work stays or is archived."""

from __future__ import annotations

import json
import pathlib
import typing as t

import libtmux
import pytest
from click.testing import CliRunner

from runner import git as g
from runner import worktrees
from runner.clean import INTEGRATION, clean, tmux_session_killer
from runner.cli.clean import command
from runner.errors import RunFailed
from runner.paths import SwarmPaths
from runner.state import RunLog, exclusive_lock
from tests.conftest import git

RUN = "r1"
INTEGRATION_BRANCH = f"swarm/{RUN}/integration"


class Leftovers(t.NamedTuple):
    repo: pathlib.Path
    root: pathlib.Path
    log: RunLog
    kill: t.Callable[[str], None]
    heads: dict[str, str]
    """Task id -> the commit its worker made (only tasks that committed)."""


def session(task_id: str) -> str:
    return f"swarm-{RUN}-{task_id}"


def _dispatch(
    repo: pathlib.Path, log: RunLog, root: pathlib.Path, task_id: str, base: str
) -> pathlib.Path:
    path = root / RUN / task_id
    branch = f"swarm/{RUN}/{task_id}"
    worktrees.create_worktree(repo, path, branch, base)
    log.record(
        "task_dispatched",
        task_id,
        attempt=1,
        session=session(task_id),
        branch=branch,
        worktree=str(path),
        base_sha=base,
    )
    return path


def _commit(path: pathlib.Path, name: str) -> str:
    (path / f"{name}.txt").write_text(f"{name}\n")
    sha = g.commit_all(path, f"work of {name}")
    assert sha is not None
    return sha


@pytest.fixture
def leftovers(git_repo: pathlib.Path, tmp_path: pathlib.Path, server: libtmux.Server) -> Leftovers:
    """A stopped run as a crash would leave it: A merged, B committed but unmerged, C never
    started, D started without committing, E merged with uncommitted edits left behind."""
    repo, root = git_repo, tmp_path / "wt"
    worktrees.ensure_excluded(repo)
    base = g.head_sha(repo)
    integration = root / RUN / "_integration"
    worktrees.create_worktree(repo, integration, INTEGRATION_BRANCH, base)
    run = SwarmPaths.for_repo(repo).run(RUN)
    run.dir.mkdir(parents=True)
    log = RunLog(run.events, run.state)
    log.record(
        "run_created",
        run_id=RUN,
        tasks=["A", "B", "C", "D", "E"],
        repo=str(repo),
        base_sha=base,
        target_branch="main",
        integration_branch=INTEGRATION_BRANCH,
        integration_worktree=str(integration),
        integration_head=base,
        worktree_root=str(root),
        tmux_socket=server.socket_name,
    )
    heads: dict[str, str] = {}
    for task_id in ("A", "B", "D", "E"):
        path = _dispatch(repo, log, root, task_id, base)
        if task_id != "D":
            heads[task_id] = _commit(path, task_id)
    for task_id in ("A", "E"):
        merge = g.merge_no_ff(integration, heads[task_id], f"swarm({task_id})")
        log.record("task_offered", task_id, head_sha=heads[task_id])
        log.record("task_merged", task_id, merge_sha=merge, integration_head=merge)
    (root / RUN / "E" / "README.md").write_text("uncommitted edit\n")
    log.record("run_finished", status="stopped", reason="test")
    for task_id in ("A", "B", "D", "E", "mayor"):
        server.new_session(session_name=session(task_id), detach=True)
    kill = tmux_session_killer(server.socket_name, run.dir / "notify")
    return Leftovers(repo, root, log, kill, heads)


def branches(repo: pathlib.Path) -> set[str]:
    return set(git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines())


def worktree_paths(repo: pathlib.Path) -> set[pathlib.Path]:
    return {info.path.resolve() for info in g.worktree_list(repo)}


def sessions(server: libtmux.Server) -> set[str]:
    return {s.session_name or "" for s in server.sessions}


def unreachable(repo: pathlib.Path) -> str:
    return git(repo, "fsck", "--unreachable", "--no-reflogs")


def test_clean_without_force_keeps_unmerged_work(
    leftovers: Leftovers, server: libtmux.Server
) -> None:
    repo, root = leftovers.repo, leftovers.root
    report = clean(repo, leftovers.log.state, force=False, kill_session=leftovers.kill)
    assert report.removed == ("A", "D")
    kept = dict(report.kept)
    assert set(kept) == {"B", "E", INTEGRATION}
    assert "refs/swarm/archive/r1/B" in kept["B"] and "--force" in kept["B"]
    assert "uncommitted changes" in kept["E"]
    assert report.archived == ()
    assert branches(repo) == {"main", INTEGRATION_BRANCH, "swarm/r1/B", "swarm/r1/E"}
    expected = {repo.resolve(), *((root / RUN / n).resolve() for n in ("B", "E", "_integration"))}
    assert worktree_paths(repo) == expected
    assert not (root / RUN / "A").exists()
    assert sessions(server) == {session("B"), session("E")}  # merged tasks' sessions are gone
    assert (root / RUN / "E" / "README.md").read_text() == "uncommitted edit\n"

    again = clean(repo, leftovers.log.state, force=False, kill_session=leftovers.kill)
    assert again.removed == () and again.archived == ()
    assert set(dict(again.kept)) == {"B", "E", INTEGRATION}
    assert worktree_paths(repo) == expected


def test_clean_force_archives_and_removes_everything_but_results(
    leftovers: Leftovers, server: libtmux.Server
) -> None:
    repo, root = leftovers.repo, leftovers.root
    result = g.resolve(repo, INTEGRATION_BRANCH)
    report = clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
    assert report.removed == ("A", "B", "D", "E", INTEGRATION, INTEGRATION_BRANCH)
    assert report.kept == ()
    assert report.archived == ("refs/swarm/archive/r1/B", "refs/swarm/archive/r1/_integration")
    assert g.resolve(repo, "refs/swarm/archive/r1/B") == leftovers.heads["B"]
    assert g.resolve(repo, "refs/swarm/archive/r1/_integration") == result  # unlanded: archived
    assert branches(repo) == {"main"}
    assert worktree_paths(repo) == {repo.resolve()}
    assert "worktree" not in git(repo, "worktree", "list", "--porcelain").replace(
        f"worktree {repo.resolve()}", ""
    )
    assert not (root / RUN).exists()
    lost = unreachable(repo)
    for sha in leftovers.heads.values():
        assert sha not in lost
    assert sessions(server) == set()

    again = clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
    assert again == ((), (), ())


def test_force_archive_never_overwrites_an_older_archive(leftovers: Leftovers) -> None:
    repo = leftovers.repo
    other = git(repo, "commit-tree", "-m", "older attempt", f"{g.head_sha(repo)}^{{tree}}")
    g.update_ref(repo, "refs/swarm/archive/r1/B", other)
    report = clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
    assert report.archived[0] == "refs/swarm/archive/r1/B-2"
    assert g.resolve(repo, "refs/swarm/archive/r1/B") == other
    assert g.resolve(repo, "refs/swarm/archive/r1/B-2") == leftovers.heads["B"]


def test_landed_work_is_reachable_from_the_target(leftovers: Leftovers) -> None:
    """Work that reached the target branch (e.g. landed, then the integration branch was
    deleted) counts as merged."""
    repo = leftovers.repo
    git(repo, "merge", "-q", "--ff-only", leftovers.heads["B"])
    report = clean(repo, leftovers.log.state, force=False, kill_session=leftovers.kill)
    assert "B" in report.removed


def test_a_live_run_is_refused(leftovers: Leftovers) -> None:
    repo = leftovers.repo
    lock = SwarmPaths.for_repo(repo).run(RUN).lock
    before = worktree_paths(repo)
    with exclusive_lock(lock) as held:
        assert held
        with pytest.raises(RunFailed, match="live mayor"):
            clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
        result = CliRunner().invoke(command, ["--repo", str(repo), "--force"])
        assert result.exit_code == 1, result.output
        assert "live mayor" in result.output
    assert worktree_paths(repo) == before


def test_cli_clean(leftovers: Leftovers, server: libtmux.Server) -> None:
    repo = leftovers.repo
    runner = CliRunner()
    result = runner.invoke(command, [RUN, "--repo", str(repo), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "clean" and doc["removed"] == ["A", "D"]
    assert {item["task"] for item in doc["kept"]} == {"B", "E", INTEGRATION}
    result = runner.invoke(command, ["--repo", str(repo), "--force"])
    assert result.exit_code == 0, result.output
    assert "archived refs/swarm/archive/r1/B" in result.output
    assert sessions(server) == set()
    result = runner.invoke(command, ["--repo", str(repo)])
    assert result.exit_code == 0, result.output
    assert "nothing to clean" in result.output


def lost_commits(repo: pathlib.Path) -> list[str]:
    return [
        line for line in unreachable(repo).splitlines() if line.startswith("unreachable commit")
    ]


def test_a_detached_commit_in_a_merged_task_worktree_is_never_lost(
    leftovers: Leftovers,
) -> None:
    """Issue 13: A's branch is merged, but its worker detached HEAD and committed there."""
    repo, root = leftovers.repo, leftovers.root
    worktree = root / RUN / "A"
    git(worktree, "checkout", "-q", "--detach")
    detached = _commit(worktree, "detached")
    report = clean(repo, leftovers.log.state, force=False, kill_session=leftovers.kill)
    assert "A" not in report.removed
    kept = dict(report.kept)
    assert f"HEAD {detached}" in kept["A"] and "--force" in kept["A"]
    assert worktree.exists()

    report = clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
    assert "A" in report.removed
    assert "refs/swarm/archive/r1/A" in report.archived
    assert g.resolve(repo, "refs/swarm/archive/r1/A") == detached
    assert lost_commits(repo) == []


def test_commits_only_a_reflog_names_are_archived_before_removal(
    leftovers: Leftovers,
) -> None:
    """A worker committed, then reset its branch back: the commit lives only in the branch and
    worktree reflogs, which removal deletes. It is archived first, force or not."""
    repo, root = leftovers.repo, leftovers.root
    worktree = root / RUN / "A"
    dropped = _commit(worktree, "dropped")
    git(worktree, "reset", "-q", "--hard", "HEAD~1")
    before_amend = _commit(worktree, "amend-me")
    git(worktree, "commit", "-q", "--amend", "-m", "amended")
    amended = git(worktree, "rev-parse", "HEAD")
    git(worktree, "reset", "-q", "--hard", leftovers.heads["A"])
    assert lost_commits(repo)  # before clean: unreachable but for the reflogs
    report = clean(repo, leftovers.log.state, force=False, kill_session=leftovers.kill)
    assert "A" in report.removed
    archived = [ref for ref in report.archived if ref.startswith("refs/swarm/archive/r1/A-reflog")]
    assert {g.resolve(repo, ref) for ref in archived} == {dropped, before_amend, amended}
    assert lost_commits(repo) == []


def test_a_commit_made_in_the_integration_worktree_is_archived(leftovers: Leftovers) -> None:
    repo, root = leftovers.repo, leftovers.root
    integration = root / RUN / "_integration"
    git(integration, "checkout", "-q", "--detach")
    stray = _commit(integration, "stray")
    report = clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
    assert INTEGRATION in report.removed
    assert g.resolve(repo, "refs/swarm/archive/r1/_integration") == stray
    assert lost_commits(repo) == []


def test_no_clean_ever_leaves_an_unreachable_commit(leftovers: Leftovers) -> None:
    """The class: whatever each worker did to its worktree, clean then clean --force lose
    nothing (git fsck --unreachable --no-reflogs lists no commit)."""
    repo, root = leftovers.repo, leftovers.root
    for task_id, moves in {
        "A": ("checkout -q --detach", "commit", "checkout -q -", "commit"),
        "B": ("commit", "reset -q --hard HEAD~1", "commit"),
        "D": ("checkout -q --orphan fresh", "commit", "checkout -q --detach"),
        "E": ("stash -q", "commit", "checkout -q --detach HEAD~1"),
    }.items():
        worktree = root / RUN / task_id
        for n, move in enumerate(moves):
            if move == "commit":
                _commit(worktree, f"{task_id}-{n}")
            else:
                git(worktree, *move.split())
    before = set(lost_commits(repo))  # a worker's reset: kept alive by a reflog, for now
    clean(repo, leftovers.log.state, force=False, kill_session=leftovers.kill)
    assert set(lost_commits(repo)) <= before  # what clean removed, it archived first
    clean(repo, leftovers.log.state, force=True, kill_session=leftovers.kill)
    assert lost_commits(repo) == []
    assert worktree_paths(repo) == {repo.resolve()}
