"""``--isolation clone``: each worker in its own ``git clone --shared``; the mayor fetches the
offered commit (verified) before the arbiter merges, and ``swarm clean`` fetches and archives
every clone head before it removes a clone. Real git, real tmux, the scripted agent."""

from __future__ import annotations

import pathlib
import random
import shutil
import subprocess
import sys
import typing as t

import pytest
from libtmux.server import Server

from protocol.plan import Plan
from protocol.state import TaskRecord
from runner import git as g
from runner import gitguard, isolation, proc, sandbox, worktrees
from runner.config import load_config
from runner.errors import UsageError
from runner.launch import RunOptions, configure
from tests.conftest import git
from tests.runner import faults
from tests.runner import test_git_hostile as hostile_git
from tests.runner.runs import events, state_doc, swarm, swarm_run, task, write, write_plan

TWO: t.Final = [
    task("A", ["a.txt"], [write("a.txt", "a\n"), {"commit": "a"}]),
    task("B", ["b.txt"], [write("b.txt", "b\n"), {"commit": "b"}]),
]


def _clone_of(repo: pathlib.Path, task_id: str) -> pathlib.Path:
    return repo.parent / "wt" / "r1" / task_id


def test_a_clone_run_merges_every_task_from_clones_of_their_own(
    git_repo: pathlib.Path, server: Server
) -> None:
    plan = write_plan(git_repo.parent, TWO)
    result = swarm_run(git_repo, plan, server, "--isolation", "clone")
    assert result.exit_code == 0, result.output
    doc = state_doc(git_repo)
    assert doc["isolation"] == "clone"
    assert {rec["state"] for rec in doc["tasks"].values()} == {"merged"}
    listed = git(git_repo, "ls-tree", "-r", "--name-only", "swarm/r1/integration").splitlines()
    assert {"a.txt", "b.txt"} <= set(listed)
    clone = _clone_of(git_repo, "A")
    assert worktrees.is_clone(clone)  # a clone, not a worktree of the repository
    assert str(clone) not in git(git_repo, "worktree", "list")
    alternates = (clone / ".git" / "objects" / "info" / "alternates").read_text()
    assert alternates.strip() == str(git_repo / ".git" / "objects")
    assert git(clone, "remote").strip() == ""  # nothing to push into the repository with
    assert list((clone / ".git" / "hooks").iterdir()) == []
    assert git(clone, "branch", "--format=%(refname:short)").split() == ["swarm/r1/A"]
    # the worker's commit came into the repository's task branch by fetch
    assert git(git_repo, "rev-parse", "swarm/r1/A") == git(clone, "rev-parse", "HEAD")


def test_isolation_comes_from_the_flag_then_the_plan_then_the_config(
    git_repo: pathlib.Path,
) -> None:
    (git_repo / ".swarm.toml").write_text('isolation = "sandbox"\nnetwork = false\n')
    plan = Plan.model_validate({"tasks": [{"id": "A"}]})
    _, options = configure(git_repo, plan, RunOptions())
    assert (options.isolation, options.network) == ("sandbox", False)
    with_plan = plan.model_copy(update={"isolation": "clone"})
    assert configure(git_repo, with_plan, RunOptions())[1].isolation == "clone"
    flagged = configure(git_repo, with_plan, RunOptions(isolation="worktree", network=True))[1]
    assert (flagged.isolation, flagged.network) == ("worktree", True)


def test_a_bad_isolation_in_the_config_names_the_file_and_the_key(
    git_repo: pathlib.Path,
) -> None:
    (git_repo / ".swarm.toml").write_text('isolation = "jail"\n')
    with pytest.raises(UsageError, match=r"\.swarm\.toml: isolation: "):
        load_config(git_repo)


def test_a_bad_isolation_in_the_plan_is_a_usage_error_naming_the_field(
    git_repo: pathlib.Path,
) -> None:
    plan = write_plan(git_repo.parent, TWO, isolation="jail")
    result = swarm("plan", "validate", str(plan))
    assert result.exit_code == 2, result.output
    assert "isolation" in result.output


def _fetch_refusal(git_repo: pathlib.Path, server: Server, steps: list[dict[str, t.Any]]) -> str:
    """Run task A (``steps``, one attempt) beside B in clone mode: A's offer must be refused
    by a ``fetch`` refusal, B merged; returns the refusal's reason."""
    plan = write_plan(
        git_repo.parent,
        [task("A", ["a.txt"], steps), TWO[1]],
        budgets={"max_attempts": 1, "max_fixups": 0},
    )
    result = swarm_run(git_repo, plan, server, "--isolation", "clone", "--timeout", "60s")
    assert result.exit_code == 1, result.output
    refused = [e for e in events(git_repo) if e.kind == "merge_refused" and e.task_id == "A"]
    assert refused and refused[0].data["kind"] == "fetch", refused
    assert state_doc(git_repo)["tasks"]["B"]["state"] == "merged"
    return str(refused[0].data["reason"])


def test_an_offer_whose_clone_moved_on_is_refused_by_type_and_never_merged(
    git_repo: pathlib.Path, server: Server
) -> None:
    """The worker offers commit X while its branch is at Y: the mayor fetches nothing that
    was not offered (a typed ``fetch`` refusal), and neither X nor Y lands."""
    steps = [
        write("a.txt", "offered\n"),
        {"commit": "offered"},
        {"run": "printf later > a.txt && git commit -qam later"},
        {"run": '"$SWARM_BIN" worker offer first --commit "$(git rev-parse HEAD~1)"'},
        {"hang": True},
    ]
    assert "not at the offered" in _fetch_refusal(git_repo, server, steps)
    assert "a.txt" not in git(git_repo, "ls-tree", "-r", "--name-only", "swarm/r1/integration")


def test_an_offer_from_a_clone_that_is_gone_is_refused_by_type(
    git_repo: pathlib.Path, server: Server
) -> None:
    steps = [
        write("a.txt", "a\n"),
        {"commit": "a"},
        {"run": 'sha=$(git rev-parse HEAD) && mv .git ../gone.git && '
                '"$SWARM_BIN" worker offer gone --commit "$sha"'},
        {"hang": True},
    ]  # fmt: skip
    assert "is gone" in _fetch_refusal(git_repo, server, steps)


def test_a_clone_is_adopted_on_resume_and_a_stray_one_is_refused(git_repo: pathlib.Path) -> None:
    base = g.head_sha(git_repo)
    path = git_repo.parent / "wt" / "r1" / "A"
    worktrees.create_clone(git_repo, path, "swarm/r1/A", base)
    (path / "x.txt").write_text("x\n")
    sha = g.commit_all(path, "kept")
    worktrees.create_clone(git_repo, path, "swarm/r1/A", base)  # adopted, commit kept
    assert g.head_sha(path) == sha
    with pytest.raises(worktrees.WorktreeError, match="not swarm/r1/B"):
        worktrees.create_clone(git_repo, path, "swarm/r1/B", base)
    stray = git_repo.parent / "wt" / "r1" / "C"
    stray.mkdir(parents=True)
    (stray / "mine.txt").write_text("the user's\n")
    with pytest.raises(worktrees.WorktreeError, match="not a clone"):
        worktrees.create_clone(git_repo, stray, "swarm/r1/C", base)
    assert (stray / "mine.txt").read_text() == "the user's\n"


def test_a_failed_clone_leaves_nothing_behind(git_repo: pathlib.Path) -> None:
    path = git_repo.parent / "wt" / "r1" / "A"
    with pytest.raises(Exception, match=r"no-such-commit|not a valid|unknown revision|invalid"):
        worktrees.create_clone(git_repo, path, "swarm/r1/A", "no-such-commit")
    assert not path.exists() and not path.parent.exists()


def test_clean_force_archives_a_commit_made_in_a_clone_and_never_offered(
    git_repo: pathlib.Path, server: Server
) -> None:
    steps = [
        write("a.txt", "never offered\n"),
        {"commit": "never offered"},
        {"run": "git checkout -q --detach && printf d > d.txt && git add d.txt && "
                "git commit -qm detached && git checkout -q swarm/r1/A"},
        {"run": "printf e > e.txt && git add e.txt && git commit -qm reset-away && "
                "git reset -q --hard HEAD~1"},
        {"crash": 1},
    ]  # fmt: skip
    plan = write_plan(
        git_repo.parent,
        [task("A", ["a.txt"], steps)],
        budgets={"max_attempts": 1, "max_fixups": 0},
    )
    result = swarm_run(git_repo, plan, server, "--isolation", "clone")
    assert result.exit_code == 1, result.output
    clone = _clone_of(git_repo, "A")
    made = git(clone, "log", "--all", "--reflog", "--format=%H %s").splitlines()
    made = [line.split()[0] for line in made if line.split(" ", 1)[1] != "init"]
    assert len(made) >= 3, made
    kept = swarm("clean", "r1", "--repo", str(git_repo))
    assert kept.exit_code == 0, kept.output
    assert clone.exists()  # unmerged: kept without --force
    result = swarm("clean", "r1", "--force", "--repo", str(git_repo))
    assert result.exit_code == 0, result.output
    assert not clone.exists()
    archived = git(git_repo, "for-each-ref", "--format=%(objectname)", "refs/swarm/archive/")
    for sha in made:  # every commit the worker made is reachable from an archive ref
        assert any(g.is_ancestor(git_repo, sha, tip) for tip in archived.split()), (sha, archived)
    assert not git(git_repo, "for-each-ref", "refs/swarm/incoming/").strip()


DEMO: t.Final = pathlib.Path(__file__).resolve().parents[2] / "examples" / "demo"


@pytest.mark.parametrize("isolation", ["clone", "sandbox"])
def test_the_demo_plan_merges_every_task_in_clone_and_sandbox_modes(
    tmp_path: pathlib.Path, server: Server, isolation: str
) -> None:
    if isolation == "sandbox":
        try:
            sandbox.require_bwrap()
        except UsageError as exc:
            pytest.skip(str(exc))
    repo = tmp_path / "calc"
    shutil.copytree(DEMO / "sample", repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "calc: initial package")
    plan = tmp_path / "plan.yaml"
    shutil.copy(DEMO / "plan.yaml", plan)
    result = swarm_run(repo, plan, server, "--isolation", isolation)
    assert result.exit_code == 0, result.output
    tasks = state_doc(repo)["tasks"]
    assert {rec["state"] for rec in tasks.values()} == {"merged"}, tasks
    assert tasks["T03"]["attempt"] == 2  # crashed once, retried in its clone
    assert any(e.kind == "escape_reported" and e.task_id == "T06" for e in events(repo))
    integration = tmp_path / "wt" / "r1" / "_integration"
    proc.run(sys.executable, "-m", "unittest", "discover", "-s", "tests", "-q", cwd=integration)


@pytest.mark.parametrize("isolation", ["clone", "sandbox"])
def test_a_mayor_sigkilled_twice_resumes_a_cloned_run_to_all_merged(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path, isolation: str
) -> None:
    """SIGKILL the mayor twice, each time once a new worker was dispatched (so each kill lands
    mid-run however slow the machine), resume; every task merges exactly once."""
    if isolation == "sandbox":
        try:
            sandbox.require_bwrap()
        except UsageError as exc:
            pytest.skip(str(exc))
    plan = faults.write_plan(tmp_path, faults.twenty_task_plan(random.Random(11)))
    socket = str(server.socket_name)
    faults.start(git_repo, plan, socket, "r1", "--isolation", isolation)
    for _ in range(2):
        seen = len(events(git_repo))

        def dispatched(seen: int = seen) -> bool:
            return any(e.kind == "task_dispatched" for e in events(git_repo)[seen:])

        faults.wait_until(dispatched, 60, "a dispatch")
        assert faults.kill_mayor(git_repo, "r1"), "no live mayor to kill"
        faults.resume(git_repo, "r1")
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 180, "the run to end")
    last = faults.mayor_pid(git_repo, "r1") or 0
    faults.wait_until(lambda: not faults._alive(last), 30, "the last mayor to exit")
    faults.check_invariants(git_repo, "r1")
    evs = events(git_repo)
    assert evs[0].data["isolation"] == isolation
    assert len([e for e in evs if e.kind == "mayor_started"]) == 3


def test_a_cloned_run_survives_a_killed_tmux_server(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    """The server dies while a worker is busy in its clone: resumed, the run ends with every
    task merged exactly once (faults.check_invariants), the busy worker restarted in place."""
    plan = write_plan(
        tmp_path,
        [task("A", ["a.txt"], [{"sleep": 3}, write("a.txt", "a\n")]), *TWO[1:]],
    )
    socket = str(server.socket_name)
    faults.start(git_repo, plan, socket, "r1", "--isolation", "clone")
    faults.wait_until(
        lambda: any(e.kind == "task_dispatched" and e.task_id == "A" for e in events(git_repo)),
        60,
        "A to start",
    )
    pid = faults.mayor_pid(git_repo, "r1")
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
    faults.wait_until(lambda: not faults._alive(pid or 0), 10, "the mayor to die")
    faults.resume(git_repo, "r1")
    faults.wait_until(lambda: faults.status(git_repo, "r1") != "running", 120, "the run to end")
    last = faults.mayor_pid(git_repo, "r1") or 0
    faults.wait_until(lambda: not faults._alive(last), 30, "the last mayor to exit")
    faults.check_invariants(git_repo, "r1")
    restarted = [e for e in events(git_repo) if e.task_id == "A" and e.data.get("resumed")]
    assert restarted, "A was not restarted in its clone after the server died"
    assert worktrees.is_clone(_clone_of(git_repo, "A"))


def test_nothing_a_worker_plants_in_its_clone_runs_in_the_mayors_git_calls(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """Hooks, fsmonitor, filters, merge drivers and signing programs planted in the clone's
    own ``.git``: taking the offer, the uncommitted-work check, clean's fetch of every head."""
    base = g.head_sha(git_repo)
    clone = tmp_path / "wt" / "r1" / "T1"
    worktrees.create_clone(git_repo, clone, "swarm/r1/T1", base)
    marker, evil = tmp_path / "ran.log", tmp_path / "evil"
    env = f"MARKER='{marker}' EVIL='{evil}' HOOKS='{' '.join(hostile_git.HOOKS)}'\n"
    hostile_git.as_worker(clone, env + "export MARKER EVIL HOOKS\n" + hostile_git.PLANT)
    (clone / "notes.txt").write_text("worker\n")
    work = g.commit_all(clone, "worker edit")
    assert work is not None
    record = TaskRecord(
        id="T1", state="offered", branch="swarm/r1/T1", worktree=str(clone), head_sha=work
    )
    assert isolation.take_offer(git_repo, "r1", record) is None
    assert g.head_sha(git_repo, "refs/heads/swarm/r1/T1") == work
    gitguard.dirty_paths(clone)
    g.is_clean(clone)
    worktrees.sync_excludes(git_repo, clone)
    worktrees.create_clone(git_repo, clone, "swarm/r1/T1", base)  # adopted on resume
    assert work in isolation.save_clone(git_repo, "r1", "T1", clone)
    assert not marker.exists(), marker.read_text()
    hostile_git.as_worker(clone, "git status")  # plain git does run them: the plant is live
    assert marker.exists()


def test_a_cloned_run_lands_and_its_logs_and_status_read_as_usual(
    git_repo: pathlib.Path, server: Server
) -> None:
    plan = write_plan(git_repo.parent, TWO)
    result = swarm_run(git_repo, plan, server, "--isolation", "clone", "--land")
    assert result.exit_code == 0, result.output
    assert git(git_repo, "rev-parse", "main") == git(git_repo, "rev-parse", "swarm/r1/integration")
    assert (git_repo / "a.txt").read_text() == "a\n"  # landed into the user's checkout
    logs = swarm("logs", "A", "--run", "r1", "--repo", str(git_repo))
    assert logs.exit_code == 0 and "[scripted A]" in logs.output, logs.output
    status = swarm("status", "r1", "--repo", str(git_repo), "--json")
    assert status.exit_code == 0, status.output


def test_the_mayor_wakes_for_what_a_box_sends_not_for_its_private_home(
    git_repo: pathlib.Path,
) -> None:
    """The mayor watches each box's ``swarm/`` (outbox, results, escapes), not its private home,
    which an agent CLI writes all the time (Gemini CLI made the mayor watch hundreds of session
    folders); a box made after the watch began is watched from the next collect."""
    import time

    from agentmail.store import MailStore
    from runner.boxmail import Collector
    from runner.paths import SwarmPaths
    from runner.state import RunLog

    swarm_paths = SwarmPaths.for_repo(git_repo)
    run = swarm_paths.run("r1")
    run.dir.mkdir(parents=True)
    log = RunLog(run.events, run.state)
    log.record("run_created", run_id="r1", tasks=["T1", "T2"], plan_name="p", isolation="sandbox")
    first = sandbox.Box.of(run, "T1", "T1")
    first.prepare(())
    wakes: list[float] = []
    collector = Collector(store=MailStore(swarm_paths.mail), swarm=swarm_paths, run=run, log=log)
    observer = collector.watch(lambda: wakes.append(time.monotonic()))
    assert observer is not None

    def quiet() -> int:
        """The number of wake-ups once none came for 0.3 s (events arrive in bursts)."""
        while True:
            seen = len(wakes)
            time.sleep(0.3)
            if len(wakes) == seen:
                return seen

    def woken_by(change: t.Callable[[], object]) -> bool:
        before = quiet()
        change()
        deadline = time.monotonic() + 10
        while len(wakes) == before and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(wakes) > before

    try:
        for i in range(50):  # the CLI's caches and logs
            (first.home / f"session-{i}").mkdir()
            (first.home / f"session-{i}" / "log").write_text("x")
        assert quiet() == 0  # 0.3 s for a wake-up that must not come
        assert woken_by(lambda: (first.outbox / "tmp" / "m").write_text("mail"))
        second = sandbox.Box.of(run, "T2", "T2")
        assert woken_by(lambda: second.prepare(()))  # a new box: the mayor wakes, collects
        collector.collect()
        assert woken_by(lambda: (second.outbox / "tmp" / "m").write_text("mail"))
    finally:
        observer.stop()
        observer.join(5)
