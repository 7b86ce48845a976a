"""runner.agents.scripted: the file and git steps in a real worktree; the reports it would send
are recorded by a reporter function (the reports through ``swarm worker``, in process, are
below)."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest

from agentmail.store import MailStore
from protocol.messages import MessageType, OfferingFields
from runner import git as g
from runner import worktrees
from runner.agents import scripted
from runner.errors import CommandError
from runner.paths import SwarmPaths
from tests.conftest import git

Script = list[dict[str, t.Any]]


class World(t.NamedTuple):
    repo: pathlib.Path
    worktree: pathlib.Path
    env: dict[str, str]
    base: str


@pytest.fixture
def world(git_repo: pathlib.Path, tmp_path: pathlib.Path) -> World:
    worktree = tmp_path / "worktrees" / "r1" / "t1"
    worktrees.create_worktree(git_repo, worktree, "swarm/r1/t1", "main")
    home = SwarmPaths.for_repo(git_repo).home
    env = {
        "SWARM_HOME": str(home),
        "SWARM_RUN": "r1",
        "SWARM_TASK": "t1",
        "SWARM_ATTEMPT": "1",
        "SWARM_WORKTREE": str(worktree),
    }
    return World(git_repo, worktree, env, g.head_sha(git_repo))


def write_plan(world: World, script: Script | None, **task: t.Any) -> None:
    plan = {
        "name": "demo",
        "tasks": [{"id": "t1", "subject": "Add greeting", "script": script, **task}],
    }
    path = SwarmPaths(pathlib.Path(world.env["SWARM_HOME"])).run("r1").plan
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan))


class Outcome(t.NamedTuple):
    code: int
    reports: list[list[str]]
    output: str


def run_agent(world: World, script: Script | None, *, attempt: int = 1) -> Outcome:
    write_plan(world, script)
    reports: list[list[str]] = []
    out = io.StringIO()
    env = {**world.env, "SWARM_ATTEMPT": str(attempt)}
    code = scripted.main(
        env=env, cwd=world.worktree, report=lambda a: reports.append(list(a)), out=out
    )
    return Outcome(code, reports, out.getvalue())


def verbs(outcome: Outcome) -> list[str]:
    return [r[0] for r in outcome.reports]


def test_default_commits_and_offers(world: World) -> None:
    outcome = run_agent(
        world,
        [
            {"write": {"path": "src/greet.py", "content": "def greet():\n"}},
            {"append": {"path": "src/greet.py", "content": "    return 'hi'\n"}},
            {"delete": "README.md"},
            {"write": {"path": "new/dir/x.txt", "content": "x\n"}},
            {"delete": "new"},
        ],
    )
    assert outcome.code == 0, outcome.output
    head = g.head_sha(world.worktree)
    assert outcome.reports == [
        ["accepted", "--title", "Add greeting"],
        ["offer", "Add greeting: done", "--commit", head],
    ]
    assert git(world.worktree, "log", "-1", "--format=%s") == "swarm(t1): Add greeting"
    assert g.changed_files(world.worktree, world.base, head) == ["README.md", "src/greet.py"]
    assert (world.worktree / "src/greet.py").read_text() == "def greet():\n    return 'hi'\n"
    assert g.is_clean(world.worktree)
    assert "[scripted t1] write src/greet.py" in outcome.output


def test_no_script_still_offers(world: World) -> None:
    outcome = run_agent(world, None)
    assert outcome.code == 0
    assert verbs(outcome) == ["accepted", "offer"]
    assert outcome.reports[1][-1] != world.base  # a stand-in change: an empty offer is refused


def test_commit_and_offer_steps(world: World) -> None:
    outcome = run_agent(
        world,
        [
            {"write": {"path": "a.txt", "content": "a\n"}},
            {"commit": "first part"},
            {"write": {"path": "b.txt", "content": "b\n"}},
            {"offer": {"summary": "half of it", "commit": False}},
        ],
    )
    assert outcome.code == 0, outcome.output
    assert git(world.worktree, "log", "-1", "--format=%s") == "first part"
    assert outcome.reports[-1] == ["offer", "half of it", "--commit", g.head_sha(world.worktree)]
    assert not g.is_clean(world.worktree)  # b.txt was deliberately left uncommitted
    assert verbs(outcome) == ["accepted", "offer"]


def test_patch_step(world: World) -> None:
    diff = (
        "diff --git a/README.md b/README.md\n"
        "--- a/README.md\n"
        "+++ b/README.md\n"
        "@@ -1 +1,2 @@\n"
        " # sample\n"
        "+patched line\n"
    )
    outcome = run_agent(world, [{"patch": diff}])
    assert outcome.code == 0, outcome.output
    assert (world.worktree / "README.md").read_text() == "# sample\npatched line\n"


def test_bad_patch_fails_task(world: World) -> None:
    outcome = run_agent(world, [{"patch": "diff --git a/nope b/nope\n--- a/nope\n+++ b/nope\n"}])
    assert outcome.code == 1
    assert outcome.reports[-1][0] == "fail"
    assert "git apply failed" in outcome.reports[-1][1]
    assert outcome.reports[-1][-2:] == ["--type", "ERROR"]  # a type `swarm worker fail` takes
    assert outcome.reports[-1][1].startswith("step 1 (patch): ")


class RunCase(t.NamedTuple):
    test_id: str
    command: str
    code: int
    last: list[str] | None  # the last report, None: an offer


RUN_CASES = [
    RunCase("success", "echo built > out.txt && echo compiled-ok", 0, None),
    RunCase(
        "failure-tail",
        "echo step one; echo error-boom >&2; exit 4",
        1,
        [
            "fail",
            "step 1 (run): command 'echo step one; echo error-boom >&2; exit 4' exited 4: "
            "step one\nerror-boom",
            "--type",
            "BUILD_FAIL",
        ],
    ),
]


@pytest.mark.parametrize("case", RUN_CASES, ids=[c.test_id for c in RUN_CASES])
def test_run_step(world: World, case: RunCase) -> None:
    outcome = run_agent(world, [{"run": case.command}])
    assert outcome.code == case.code, outcome.output
    if case.last is None:
        assert verbs(outcome)[-1] == "offer"
        assert "compiled-ok" in outcome.output
        assert (world.worktree / "out.txt").read_text() == "built\n"
    else:
        assert outcome.reports[-1] == case.last


def test_attempt_filter(world: World) -> None:
    script: Script = [
        {"write": {"path": "first.txt", "content": "1\n"}, "attempt": 1},
        {"fail": {"type": "tests", "reason": "flaky on the first try"}, "attempt": 1},
        {"write": {"path": "second.txt", "content": "2\n"}, "attempt": 2},
    ]
    first = run_agent(world, script)
    assert first.code == 0
    assert first.reports[-1] == ["fail", "flaky on the first try", "--type", "tests"]
    assert verbs(first) == ["accepted", "fail"]  # a reported failure: no automatic offer
    git(world.worktree, "clean", "-fdq")
    second = run_agent(world, script, attempt=2)
    assert verbs(second) == ["accepted", "offer"]
    assert (world.worktree / "second.txt").exists()
    assert not (world.worktree / "first.txt").exists()


def test_reporting_steps(world: World) -> None:
    outcome = run_agent(
        world,
        [
            {"progress": "halfway"},
            {"help": "which API?"},
            {
                "escape": {
                    "finding": "docs are stale",
                    "files": ["docs/a.md", "docs/b.md"],
                    "intent": "update docs",
                    "severity": "low",
                }
            },
            {"escape": {"finding": "typo", "files": "README.md"}},
            {"fail": "cannot do it"},
        ],
    )
    assert outcome.reports == [
        ["accepted", "--title", "Add greeting"],
        ["progress", "halfway"],
        ["help", "which API?"],
        [
            "escape",
            "--finding",
            "docs are stale",
            "--files",
            "docs/a.md,docs/b.md",
            "--intent",
            "update docs",
            "--severity",
            "low",
        ],
        ["escape", "--finding", "typo", "--files", "README.md"],
        ["fail", "cannot do it"],
    ]


def test_crash_exits_without_reporting(world: World) -> None:
    outcome = run_agent(world, [{"write": {"path": "a.txt", "content": "a"}}, {"crash": 7}])
    assert outcome.code == 7
    assert verbs(outcome) == ["accepted"]


class BadStepCase(t.NamedTuple):
    test_id: str
    step: dict[str, t.Any]
    match: str


BAD_STEPS = [
    BadStepCase("unknown-action", {"explode": True}, "script step 1: expected one of"),
    BadStepCase("two-actions", {"write": {}, "run": "x"}, "got write, run"),
    BadStepCase("outside-worktree", {"write": {"path": "../x", "content": ""}}, "outside"),
    BadStepCase("write-without-path", {"write": "x"}, "write needs"),
    BadStepCase("escape-without-finding", {"escape": {"files": "a"}}, "escape needs"),
]


@pytest.mark.parametrize("case", BAD_STEPS, ids=[c.test_id for c in BAD_STEPS])
def test_bad_step_fails_task(world: World, case: BadStepCase) -> None:
    outcome = run_agent(world, [case.step])
    assert outcome.code == 1
    assert outcome.reports[-1][0] == "fail"
    assert case.match in outcome.reports[-1][1]
    assert not (world.worktree.parent / "x").exists()


def test_missing_environment() -> None:
    assert scripted.main(env={}, cwd=pathlib.Path.cwd(), report=lambda a: None) == 2


def test_module_entry_point_without_environment(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    result = subprocess.run(
        [sys.executable, "-m", "runner.agents.scripted"],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "SWARM_HOME" in result.stderr


@pytest.fixture
def mailbox(world: World, monkeypatch: pytest.MonkeyPatch) -> MailStore:
    """A registered mayor and worker, and the worker environment in this process (the default
    reporter reads ``$SWARM_*`` from it, as ``swarm worker`` does)."""
    store = MailStore(pathlib.Path(world.env["SWARM_HOME"]) / "mail")
    store.register("mayor")
    key_file = store.register("w-t1")
    env = {**world.env, "SWARM_WORKER": "w-t1", "SWARM_MAYOR": "mayor"}
    for name, value in {**env, "SWARM_KEY_FILE": str(key_file)}.items():
        monkeypatch.setenv(name, value)
    return store


def test_reports_in_process_through_swarm_worker(world: World, mailbox: MailStore) -> None:
    """The default reporter: signed messages in the mayor's inbox, the results file and the
    escapes line, as ``swarm worker`` writes them; its output stays off the agent's."""
    write_plan(
        world,
        [
            {"write": {"path": "a.txt", "content": "a\n"}},
            {"progress": "halfway"},
            {"escape": {"finding": "docs are stale", "files": ["docs/a.md"]}},
        ],
    )
    out = io.StringIO()
    cwd = pathlib.Path.cwd()
    assert scripted.main(env=os.environ, cwd=world.worktree, out=out) == 0, out.getvalue()
    assert pathlib.Path.cwd() == cwd  # back where it was
    messages = [m.envelope for m in mailbox.list("mayor").messages]
    assert [m.type for m in messages] == [
        MessageType.BEAD_ACCEPTED,
        MessageType.PROGRESS,
        MessageType.SCOPE_ESCAPE,
        MessageType.OFFERING_READY,
    ]
    assert all(m.sender == "w-t1" and m.sig and m.thread_id == "t1" for m in messages)
    offer = messages[-1].fields
    assert isinstance(offer, OfferingFields)
    assert offer.commit_sha == g.head_sha(world.worktree)
    home = pathlib.Path(world.env["SWARM_HOME"])
    result = json.loads((home / "results" / "t1.json").read_text())
    assert result["status"] == "done"
    (escape,) = (home / "scope-escapes.jsonl").read_text().splitlines()
    assert json.loads(escape)["finding"] == "docs are stale"
    assert all(m.id not in out.getvalue() for m in messages)


class ReportFailCase(t.NamedTuple):
    test_id: str
    args: list[str]
    unset: str | None
    code: int
    stderr: str


REPORT_FAILS = [
    ReportFailCase("not-in-a-worker", ["progress", "x"], "SWARM_WORKER", 2, "SWARM_WORKER"),
    ReportFailCase("bad-argument", ["offer"], None, 2, "Missing argument"),
    ReportFailCase("bad-choice", ["fail", "x", "--type", "nope"], None, 2, "nope"),
]


@pytest.mark.parametrize("case", REPORT_FAILS, ids=[c.test_id for c in REPORT_FAILS])
def test_failed_report_raises_command_error(
    world: World,
    mailbox: MailStore,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: ReportFailCase,
) -> None:
    if case.unset:
        monkeypatch.delenv(case.unset)
    report = scripted.worker_reporter(world.worktree)
    with pytest.raises(CommandError) as info:
        report(case.args)
    assert info.value.returncode == case.code
    assert case.stderr in info.value.stderr
    assert not mailbox.list("mayor").messages
    assert capsys.readouterr() == ("", "")  # nothing leaked to the agent's output


def test_worker_commands_import_no_mayor(tmp_path: pathlib.Path) -> None:
    """``swarm worker`` (a subprocess per report for a real agent) and the scripted agent's
    in-process reports load neither the mayor nor libtmux, rich or watchdog."""
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from runner.cli.main import cli\n"
        "from runner.agents import scripted\n"
        "assert CliRunner().invoke(cli, ['worker', 'offer', '--help']).exit_code == 0\n"
        "try:\n"
        "    scripted.worker_reporter(__import__('pathlib').Path.cwd())(['progress', 'x'])\n"
        "except Exception as exc:\n"
        "    assert 'SWARM_' in exc.stderr, exc\n"
        "heavy = ('libtmux', 'rich', 'watchdog', 'runner.mayor', 'runner.launch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(pathlib.Path(__file__).parents[2])},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
