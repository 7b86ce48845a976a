"""Confused and hostile workers, for real: each test's worker really does the thing (real git,
real tmux, the scripted agent running shell steps), beside a well-behaved task G. The promise
checked every time: the bad offer is refused with a reason and never lands, G still merges, and
the mayor never wedges (the run ends)."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest
from libtmux.server import Server

from runner.paths import SwarmPaths
from tests.conftest import git
from tests.runner import faults
from tests.runner.runs import events, state_doc, swarm_run, task, write, write_plan

STRICT: t.Final = {"budgets": {"max_attempts": 1, "max_fixups": 0}}
GOOD: t.Final = task("G", ["good.txt"], [write("good.txt", "good\n"), {"commit": "good"}])


def _commit_all(message: str) -> str:
    return f"git add -A && git commit -q -m {message!r}"


class Hostile(t.NamedTuple):
    test_id: str
    files: list[str]
    steps: list[dict[str, t.Any]]
    reason: str
    """A word the refusal's reason must contain."""
    absent: str
    """A path that must not be on the integration branch afterwards."""


CASES = [
    Hostile(
        "file-named-a-single-space",
        ["src/"],
        [{"run": f"printf x > ' ' && {_commit_all('space')}"}],
        "outside the manifest",
        " ",
    ),
    Hostile(
        "leading-whitespace-path",
        ["src/"],
        [{"run": f"printf x > ' src' && {_commit_all('ws')}"}],
        "outside the manifest",
        " src",
    ),
    Hostile(
        "orphan-head",
        ["src/"],
        [{"run": "git checkout -q --orphan lost && git rm -rqf . && mkdir -p src && "
                 f"printf x > src/a.py && {_commit_all('orphan')}"}],
        "could not integrate",
        "src/a.py",
    ),
    Hostile(
        "symlink-out-of-the-repository",
        ["src/"],
        [{"run": f"mkdir -p src && ln -s /etc/passwd src/pw && {_commit_all('link')}"}],
        "symlink",
        "src/pw",
    ),
    Hostile(
        "relative-symlink-climbing-out",
        ["src/"],
        [{"run": f"mkdir -p src && ln -s ../../../.ssh src/keys && {_commit_all('link')}"}],
        "symlink",
        "src/keys",
    ),
    Hostile(
        "never-commits",
        ["src/"],
        [{"run": "mkdir -p src && printf x > src/a.py"},
         {"offer": {"summary": "done (not really)", "commit": False}}],
        "uncommitted",
        "src/a.py",
    ),
    Hostile(
        "swarm-home-under-a-star-manifest",
        ["**"],
        [{"run": "mkdir -p .agents/swarm && printf k > .agents/swarm/evil && "
                 "git add -f .agents && git commit -q -m home"}],
        "swarm home",
        ".agents/swarm/evil",
    ),
    Hostile(
        "changes-nothing",
        ["src/"],
        [{"offer": {"summary": "nothing to do", "commit": False}}],
        "changes nothing",
        "src",
    ),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_a_hostile_offer_is_refused_and_the_run_goes_on(
    git_repo: pathlib.Path, server: Server, case: Hostile
) -> None:
    evil = task("H", case.files, case.steps)
    plan = write_plan(git_repo.parent, [evil, GOOD], **STRICT)
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 1, result.output  # the run ends: H failed, G merged
    tasks = state_doc(git_repo)["tasks"]
    assert tasks["G"]["state"] == "merged"
    assert tasks["H"]["state"] in ("failed", "blocked"), tasks["H"]
    refused = [e for e in events(git_repo) if e.kind == "merge_refused" and e.task_id == "H"]
    assert refused and case.reason in refused[0].data["reason"], refused
    listed = git(git_repo, "ls-tree", "-r", "--name-only", "swarm/r1/integration").splitlines()
    assert case.absent not in listed and "good.txt" in listed


def test_a_merge_with_several_bases_cannot_revert_another_tasks_file(
    git_repo: pathlib.Path, server: Server
) -> None:
    """C offers an evil merge of A's and B's heads that drops A's file: judged by the merge
    result (``M^1..M``), not by a diff against one of its merge bases."""
    evil_merge = (
        "git reset -q --hard swarm/r1/A && git merge -q --no-edit swarm/r1/B && "
        "git rm -q a.txt && printf c > c.txt && git add -A && git commit -q --amend --no-edit"
    )
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "A\n"), {"commit": "A"}]),
        task("B", ["b.txt"], [write("b.txt", "B\n"), {"commit": "B"}]),
        task("C", ["c.txt"], [{"run": evil_merge}], blocked_by=["A", "B"]),
    ]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks, **STRICT), server)
    assert result.exit_code == 1, result.output
    refused = [e for e in events(git_repo) if e.kind == "merge_refused"]
    assert [(e.task_id, e.data["kind"]) for e in refused] == [("C", "scope")]
    assert "a.txt" in refused[0].data["files"]
    assert git(git_repo, "show", "swarm/r1/integration:a.txt") == "A"


def test_a_worker_that_deletes_its_worktree_after_offering_is_refused(
    git_repo: pathlib.Path, server: Server
) -> None:
    steps = [
        write("src/a.py", "a\n"),
        {"commit": "work"},
        {"run": 'cd / && rm -rf "$SWARM_WORKTREE" && swarm worker offer "gone"'},
    ]
    plan = write_plan(git_repo.parent, [task("H", ["src/"], steps), GOOD], **STRICT)
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 1, result.output
    tasks = state_doc(git_repo)["tasks"]
    assert (tasks["G"]["state"], tasks["H"]["state"]) == ("merged", "failed")
    assert "src/a.py" not in git(git_repo, "ls-tree", "-r", "--name-only", "swarm/r1/integration")


def test_a_worker_flooding_progress_never_starves_another_offer(
    git_repo: pathlib.Path, server: Server
) -> None:
    flood = [{"progress": f"step {i}"} for i in range(400)]
    tasks = [task("F", ["f.txt"], [*flood, write("f.txt", "f\n"), {"commit": "f"}]), GOOD]
    result = swarm_run(git_repo, write_plan(git_repo.parent, tasks), server)
    assert result.exit_code == 0, result.output
    assert {tid: rec["state"] for tid, rec in state_doc(git_repo)["tasks"].items()} == {
        "F": "merged",
        "G": "merged",
    }


def test_a_plan_rewritten_behind_the_run_is_refused_on_resume(
    git_repo: pathlib.Path, server: Server, tmp_path: pathlib.Path
) -> None:
    """A worker widens its manifest in runs/<id>/plan.json and kills the mayor: the resumed
    mayor refuses the changed plan instead of trusting it."""
    go = tmp_path / "go"
    steps = [{"run": f"while [ ! -e {go} ]; do sleep 0.05; done"}, write("a.txt", "a\n")]
    plan = write_plan(git_repo.parent, [task("H", ["a.txt"], [*steps, {"commit": "a"}])])
    socket = str(server.socket_name)
    faults.start(git_repo, plan, socket, "r1")
    faults.wait_until(lambda: state_doc(git_repo)["tasks"]["H"]["state"] == "running", 30, "H")
    run = SwarmPaths.for_repo(git_repo).run("r1")
    doc = json.loads(run.plan.read_text())
    doc["tasks"][0]["files"] = ["**"]
    run.plan.write_text(json.dumps(doc))
    assert faults.kill_mayor(git_repo, "r1")
    go.touch()
    resumed = faults.swarm("resume", "r1", "--repo", str(git_repo), "--foreground", check=False)
    assert resumed.returncode == 1, resumed
    assert "changed since the run was created" in resumed.stderr


def test_a_failing_step_is_reported_as_failed_with_the_step(
    git_repo: pathlib.Path, server: Server
) -> None:
    steps = [{"run": "echo the build broke; exit 3"}]
    plan = write_plan(git_repo.parent, [task("H", ["src/"], steps), GOOD], **STRICT)
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 1, result.output
    record = state_doc(git_repo)["tasks"]["H"]
    assert record["state"] == "failed"
    assert "reported FAILED" in record["reason"] and "step 1 (run)" in record["reason"], record
    assert "status 3" not in record["reason"]


def test_a_task_that_allows_no_change_is_merged_as_such(
    git_repo: pathlib.Path, server: Server
) -> None:
    quiet = task("Q", ["src/"], [{"offer": {"summary": "nothing needed", "commit": False}}])
    plan = write_plan(git_repo.parent, [{**quiet, "allow_empty": True}, GOOD], **STRICT)
    result = swarm_run(git_repo, plan, server)
    assert result.exit_code == 0, result.output
    record = state_doc(git_repo)["tasks"]["Q"]
    assert (record["state"], record["merge_sha"], record["last_message"]) == (
        "merged",
        None,
        "merged (no changes)",
    )


def test_status_of_a_run_whose_mayor_died_says_so(git_repo: pathlib.Path, server: Server) -> None:
    plan = write_plan(git_repo.parent, [task("H", ["a.txt"], [{"hang": True}])])
    faults.start(git_repo, plan, str(server.socket_name), "r1")
    faults.wait_until(lambda: state_doc(git_repo)["tasks"]["H"]["state"] == "running", 30, "H")
    live = faults.swarm("status", "r1", "--repo", str(git_repo), "--json")
    assert json.loads(live.stdout)["mayor_alive"] is True
    assert faults.kill_mayor(git_repo, "r1")
    human = faults.swarm("status", "r1", "--repo", str(git_repo))
    assert "mayor not running (since" in human.stdout and "swarm resume r1" in human.stdout
    dead = faults.swarm("status", "r1", "--repo", str(git_repo), "--json")
    assert json.loads(dead.stdout)["mayor_alive"] is False
    faults.swarm("stop", "r1", "--repo", str(git_repo), "--kill")
