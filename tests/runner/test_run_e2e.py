"""End-to-end runs of scripted plans: a real tmux server, real worktrees, real merges.

Everything is asserted from the outside: ``events.jsonl``, ``state.json``, git history, and
exit codes.
"""

from __future__ import annotations

import json
import pathlib
import threading
import time

import pytest
from click.testing import CliRunner
from libtmux.server import Server

from agentmail.store import MailStore
from runner.cli.main import cli
from runner.paths import SwarmPaths
from runner.state import rebuild
from tests.conftest import git
from tests.runner.runs import (
    events,
    intervals,
    merged_subjects,
    state_doc,
    swarm_run,
    task,
    write,
    write_plan,
)


def test_dag_order_locks_and_worker_limit(git_repo: pathlib.Path, server: Server) -> None:
    tasks = [
        task("A", ["src/a.py"], [{"sleep": 0.3}, write("src/a.py", "A = 1\n")]),
        task("B", ["src/b.py"], [{"sleep": 0.3}, write("src/b.py", "B = 1\n")]),
        task("C", ["src/"], [write("src/c.py", "C = 1\n")]),  # folder lock: conflicts with A, B
        task("D", ["src/d.py"], [write("src/d.py", "D = 1\n")], blocked_by=["A", "B"]),
        task("E", ["docs/e.md"], [write("docs/e.md", "e\n")], blocked_by=["D"]),
    ]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server, "--max-workers", "2")
    assert result.exit_code == 0, result.output
    evs = events(git_repo)
    spans = intervals(evs)
    merged_at = {e.task_id: e.seq for e in evs if e.kind == "task_merged"}
    first_dispatch = {tid: s[0][0] for tid, s in spans.items()}
    # dependency order
    assert first_dispatch["D"] > max(merged_at["A"], merged_at["B"])
    assert first_dispatch["E"] > merged_at["D"]
    # never more than two at once, and C never overlaps anything touching src/
    points = sorted({p for s in spans.values() for span in s for p in span})
    for point in points:
        live = [tid for tid, s in spans.items() for a, b in s if a <= point < b]
        assert len(live) <= 2, (point, live)
        if "C" in live:
            assert not {"A", "B", "D"} & set(live), (point, live)
    assert merged_subjects(git_repo) == sorted(f"swarm({x}): task {x}" for x in "ABCDE")
    state = state_doc(git_repo)
    assert state["status"] == "done"
    assert rebuild(evs).model_dump(mode="json") == state
    # the user's checkout was never touched
    assert git(git_repo, "status", "--porcelain") == ""
    assert git(git_repo, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_crash_is_retried_then_fails_and_dependents_are_skipped(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [
        task("flaky", ["f.txt"], [{"crash": 3, "attempt": 1}, write("f.txt", "ok\n")]),
        task("doomed", ["d.txt"], [write("d.txt", "x\n"), {"crash": 5}]),
        task("after", ["g.txt"], [write("g.txt", "g\n")], blocked_by=["doomed"]),
        task("free", ["h.txt"], [write("h.txt", "h\n")]),
    ]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server)
    assert result.exit_code == 1, result.output
    tasks_state = state_doc(git_repo)["tasks"]
    assert tasks_state["flaky"]["state"] == "merged"
    assert tasks_state["flaky"]["attempt"] == 2
    assert tasks_state["doomed"]["state"] == "failed"
    assert tasks_state["doomed"]["attempt"] == 3
    assert tasks_state["doomed"]["exit_status"] == 5
    assert tasks_state["after"]["state"] == "skipped"
    assert tasks_state["free"]["state"] == "merged"
    assert merged_subjects(git_repo) == ["swarm(flaky): task flaky", "swarm(free): task free"]


def test_out_of_manifest_edit_never_reaches_integration(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [task("sneaky", ["mine.txt"], [write("mine.txt", "1\n"), write("README.md", "x\n")])]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server)
    assert result.exit_code == 1, result.output
    refusals = [e for e in events(git_repo) if e.kind == "merge_refused"]
    assert refusals and all(e.data["kind"] == "scope" for e in refusals)
    assert refusals[0].data["files"] == ["README.md"]
    integration = "swarm/r1/integration"
    assert git(git_repo, "rev-parse", integration) == git(git_repo, "rev-parse", "main")
    assert "scope violation" in state_doc(git_repo)["tasks"]["sneaky"]["reason"]


def test_failing_gate_leaves_integration_head_unchanged(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [
        task("good", ["good.txt"], [write("good.txt", "fine\n")]),
        task("bad", ["bad.txt"], [write("bad.txt", "breaks the gate\n")], blocked_by=["good"]),
    ]
    gates = [{"name": "no-bad", "command": "test ! -e bad.txt"}]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks, gates=gates), server)
    assert result.exit_code == 1, result.output
    evs = events(git_repo)
    good_merge = next(e.data["merge_sha"] for e in evs if e.kind == "task_merged")
    assert git(git_repo, "rev-parse", "swarm/r1/integration") == good_merge
    kinds = [e.data["kind"] for e in evs if e.kind == "merge_refused"]
    assert kinds == ["gate", "gate", "gate"]
    # the refused worker commits are still reachable from the task branch
    assert git(git_repo, "log", "--format=%s", "swarm/r1/bad", "-1").startswith("swarm(bad)")


def test_conflict_is_sent_back_and_merged_after_rebase(
    git_repo: pathlib.Path, server: Server
) -> None:
    """A worker whose branch went stale (it reset to the first commit) conflicts with what
    merged since: the offer is refused, and the fix-up rebases and merges."""
    root = "$(git rev-list --max-parents=0 HEAD)"
    tasks = [
        task("T0", ["shared.txt"], [write("shared.txt", "from T0\n"), {"commit": "T0 edit"}]),
        task(
            "T1",
            ["shared.txt"],
            [
                {"run": f"git reset -q --hard {root}", "attempt": 1},
                write("shared.txt", "from the worker\n"),
                {"commit": "worker edit"},
                {"run": 'git rebase -X theirs "$SWARM_REBASE_ONTO"', "attempt": 2},
            ],
            blocked_by=["T0"],
        ),
    ]
    plan = write_plan(git_repo.parent, tasks)
    integration = git_repo.parent / "wt" / "r1" / "_integration"
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 0, result.output
    refused = [e for e in events(git_repo) if e.kind == "merge_refused"]
    assert [(e.task_id, e.data["kind"], e.data["files"]) for e in refused] == [
        ("T1", "conflict", ["shared.txt"])
    ]
    record = state_doc(git_repo)["tasks"]["T1"]
    assert (record["state"], record["attempt"], record["conflicts"]) == ("merged", 2, 1)
    assert (integration / "shared.txt").read_text() == "from the worker\n"
    subjects = git(git_repo, "log", "--format=%s", "swarm/r1/integration").splitlines()
    assert "T0 edit" in subjects


def test_a_commit_on_the_integration_branch_outside_the_arbiter_is_undone(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    """Someone (a worker, a human) commits in the integration worktree while T1 works: the
    commit is recorded, reset, reported to the human, and never lands."""
    go = tmp_path / "go"
    tasks = [
        task(
            "T1",
            ["t1.txt"],
            [
                {"run": f"while [ ! -e {go} ]; do sleep 0.05; done"},
                write("t1.txt", "from the worker\n"),
                {"commit": "worker edit"},
            ],
        )
    ]
    plan = write_plan(git_repo.parent, tasks)
    integration = git_repo.parent / "wt" / "r1" / "_integration"

    def intruder() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if state_doc(git_repo)["tasks"]["T1"]["state"] == "running":
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            time.sleep(0.05)
        (integration / "evil.txt").write_text("landed behind the arbiter's back\n")
        git(integration, "add", "evil.txt")
        git(integration, "commit", "-q", "-m", "intruder")
        go.touch()

    helper = threading.Thread(target=intruder)
    helper.start()
    result = swarm_run(git_repo, plan, server)
    helper.join()
    assert result.exit_code == 0, result.output
    resets = [e for e in events(git_repo) if e.kind == "integration_reset"]
    assert len(resets) == 1 and resets[0].data["found"] != resets[0].data["head"]
    subjects = git(git_repo, "log", "--format=%s", "swarm/r1/integration").splitlines()
    assert "intruder" not in subjects and not (integration / "evil.txt").exists()
    human = MailStore(SwarmPaths.for_repo(git_repo).mail).list("human").messages
    assert any("outside the arbiter" in m.envelope.body_md for m in human)


def test_local_mode_merges_the_same_tree(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    import shutil

    other = tmp_path / "other"
    shutil.copytree(git_repo, other / "repo", symlinks=True)
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "a\n")]),
        task("B", ["b.txt"], [write("b.txt", "b\n")], blocked_by=["A"]),
    ]
    plan = write_plan(tmp_path, tasks)
    assert swarm_run(git_repo, plan, server).exit_code == 0
    local = swarm_run(other / "repo", plan, None)
    assert local.exit_code == 0, local.output
    tree = "swarm/r1/integration^{tree}"
    assert git(git_repo, "rev-parse", tree) == git(other / "repo", "rev-parse", tree)


def test_bad_plan_exits_2_and_creates_nothing(git_repo: pathlib.Path, server: Server) -> None:
    tasks = [task("A", ["a.txt"], [], blocked_by=["B"]), task("B", ["b.txt"], [], blocked_by=["A"])]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server)
    assert result.exit_code == 2, result.output
    assert not SwarmPaths.for_repo(git_repo).runs.exists()
    assert "swarm/r1/integration" not in git(git_repo, "branch", "--list")


def test_timeout_exits_4_and_status_json(git_repo: pathlib.Path, server: Server) -> None:
    tasks = [task("slow", ["s.txt"], [{"hang": True}])]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server, "--timeout", "2s")
    assert result.exit_code == 4, result.output
    status = CliRunner().invoke(cli, ["status", "--repo", str(git_repo), "--json"])
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert (doc["kind"], doc["status"], doc["reason"]) == ("status", "stopped", "timeout")
    assert doc["tasks"][0]["state"] == "cancelled"
    assert not server.has_session("swarm-r1-slow")


@pytest.mark.parametrize("flag", ["--json"])
def test_run_json_is_one_document(git_repo: pathlib.Path, server: Server, flag: str) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server, flag)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "done"
    assert [t["state"] for t in doc["tasks"]] == ["merged"]


def test_missing_agent_binary_fails_the_task_at_once(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [task("A", ["a.txt"], [])]
    plan = write_plan(git_repo.parent, tasks)
    # a program on no PATH is refused before the run (tests/runner/test_preflight.py); one
    # relative to the worktree can only be looked for there: its task fails at once
    result = swarm_run(git_repo, plan, server, "--agent-cmd", "./no-such-agent-xyz {brief}")
    assert result.exit_code == 1, result.output
    record = state_doc(git_repo)["tasks"]["A"]
    assert (record["state"], record["attempt"], record["exit_status"]) == ("failed", 1, 127)
    assert "no-such-agent-xyz" in record["reason"]


def test_running_tasks_hold_a_lease_on_their_manifest(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    from agentmail.leases import Leases
    from tests.runner.runs import wait_for

    go = tmp_path / "go"
    wait = {"run": f"while [ ! -e {go} ]; do sleep 0.05; done"}
    tasks = [task("A", ["src/a.py", "docs/"], [wait, write("src/a.py", "a\n")])]
    assert swarm_run(git_repo, write_plan(tmp_path, tasks), server, "--detach").exit_code == 0
    leases = Leases(SwarmPaths.for_repo(git_repo).mail)
    wait_for(lambda: bool(leases.list()))
    (lease,) = leases.list()
    assert (lease.agent, lease.patterns, lease.exclusive) == ("A", ("src/a.py", "docs"), True)
    go.touch()
    wait_for(lambda: state_doc(git_repo)["status"] != "running")
    wait_for(lambda: not leases.list())


def test_swarm_with_agentops_parameters_and_no_command_runs_the_repositorys_plan(
    git_repo: pathlib.Path, server: Server
) -> None:
    """`swarm --mode=distributed --max-workers 2 --wait --timeout 5m`, as agentops users type
    it: no command, no plan named; plan.yaml in the repository is found and run."""
    write_plan(git_repo, [task("A", ["a.txt"], [write("a.txt", "a\n")])])
    args = ["--mode=distributed", "--max-workers", "2", "--wait", "--timeout", "5m"]
    result = CliRunner().invoke(
        cli,
        [*args, "--repo", str(git_repo), "--run-id", "r1", "--tmux-socket",
         str(server.socket_name), "--worktree-root", str(git_repo.parent / "wt")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert state_doc(git_repo)["tasks"]["A"]["state"] == "merged"


def test_no_plan_found_says_what_was_looked_for(git_repo: pathlib.Path) -> None:
    result = CliRunner().invoke(cli, ["--mode=distributed", "--repo", str(git_repo)])
    assert result.exit_code == 2, result.output
    assert "plan.yaml" in result.output and ".beads/issues.jsonl" in result.output
    assert "swarm run PLAN" in result.output


def test_an_empty_repository_says_commit_something_first(tmp_path: pathlib.Path) -> None:
    repo = tmp_path / "empty"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    plan = write_plan(tmp_path, [task("A", ["a.txt"], [write("a.txt", "a\n")])])
    result = CliRunner().invoke(cli, ["run", str(plan), "--repo", str(repo)])
    assert result.exit_code == 2, result.output
    assert "commit something first" in result.output
    assert not (repo / ".agents" / "swarm" / "runs").exists() or not any(
        (repo / ".agents" / "swarm" / "runs").iterdir()
    )


def test_setup_commands_run_in_each_new_worktree_before_the_agent(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    ran = tmp_path / "setup-ran.txt"
    check = {"run": f'grep -qx "$PWD $SWARM_TASK" {ran}'}  # the agent sees setup done first
    tasks = [task(tid, [f"{tid}.txt"], [check, write(f"{tid}.txt", "x\n")]) for tid in ("A", "B")]
    setup = [f'echo "$PWD $SWARM_TASK" >> {ran}']
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks, setup=setup), server)
    assert result.exit_code == 0, result.output
    assert len(ran.read_text().splitlines()) == 2  # once per worktree
    log = SwarmPaths.for_repo(git_repo).run("r1").setup_log("A").read_text()
    assert "$ echo" in log and "[exit 0]" in log


def test_a_failing_setup_command_fails_the_start_with_its_output(
    git_repo: pathlib.Path, server: Server
) -> None:
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")])]
    plan = write_plan(
        git_repo.parent, tasks, setup=["echo cannot install deps >&2; exit 7"],
        budgets={"max_attempts": 1},
    )  # fmt: skip
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 1, result.output
    record = state_doc(git_repo)["tasks"]["A"]
    assert record["state"] == "failed"
    assert "setup command" in record["reason"] and "exited 7" in record["reason"]
    assert "cannot install deps" in record["reason"]
    assert "[exit 7]" in SwarmPaths.for_repo(git_repo).run("r1").setup_log("A").read_text()


def test_checks_and_gates_run_with_the_workers_environment(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    """A task's validation and the run's gates see what its worker saw: the `swarm` shim first
    on PATH and not swarm's own virtual environment (whose python and pytest would test the
    wrong packages), the repository's git identity, and no mail key."""
    import sys

    seen = tmp_path / "seen"
    seen.mkdir()
    dump = f"env > {seen}/$(basename $PWD).env"
    tasks = [task("A", ["a.txt"], [write("a.txt", "a\n")], validation={"command": dump})]
    gates = [{"name": "env", "command": dump}]
    plan = write_plan(tmp_path, tasks, gates=gates)
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 0, result.output
    home = SwarmPaths.for_repo(git_repo).home
    own_bin = str(pathlib.Path(sys.executable).parent)
    for name in ("A", "_integration"):
        env = dict(
            line.split("=", 1)
            for line in (seen / f"{name}.env").read_text().splitlines()
            if "=" in line
        )
        path = env["PATH"].split(":")
        assert path[0] == str(home / "bin"), path
        assert own_bin not in path
        assert env.get("GIT_COMMITTER_EMAIL")  # the identity the worker committed with
        assert "SWARM_KEY_FILE" not in env
