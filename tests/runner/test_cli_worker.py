from __future__ import annotations

import json
import multiprocessing
import pathlib
import typing as t

import pytest
from click.testing import CliRunner

from agentmail.store import MailStore
from agentmail.worker_env import WorkerEnv, append_escape
from protocol.messages import AssignFields, Envelope, MessageType
from protocol.results import ScopeEscape, WorkerResult
from runner.cli.main import cli
from tests.conftest import git


def swarm(*args: str) -> t.Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


class Worker(t.NamedTuple):
    repo: pathlib.Path
    home: pathlib.Path
    store: MailStore


@pytest.fixture
def worker(
    git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> Worker:
    home = git_repo / ".agents" / "swarm"
    store = MailStore(home / "mail")
    store.register("mayor")
    key_file = store.register("w-t1")
    env = WorkerEnv(
        home=home,
        run="run-1",
        task="t1",
        worker="w-t1",
        mayor="mayor",
        key_file=key_file,
        brief=tmp_path / "brief.md",
        worktree=git_repo,
        attempt=1,
    )
    for name, value in env.to_environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(git_repo)
    return Worker(git_repo, home, store)


def _only_message(store: MailStore) -> Envelope:
    (stored,) = store.list("mayor").messages
    return stored.envelope


class Verb(t.NamedTuple):
    test_id: str
    args: list[str]
    mtype: MessageType
    fields: dict[str, t.Any]


VERBS: t.Final = [
    Verb("accepted", ["accepted", "--title", "Add login"], MessageType.BEAD_ACCEPTED,
         {"title": "Add login"}),
    Verb("progress", ["progress", "half way", "--step", "Step 2", "--context-usage", "40",
                      "--files", "a.py,b.py"], MessageType.PROGRESS,
         {"status": "half way", "step": "Step 2", "context_usage": 40,
          "files_touched": ("a.py", "b.py")}),
    Verb("help", ["help", "tests hang", "--issue-type", "TECHNICAL", "--question", "why?"],
         MessageType.HELP_REQUEST, {"issue_type": "TECHNICAL", "problem": "tests hang",
                                    "question": "why?"}),
    Verb("offer", ["offer", "login works", "--commit", "abc123", "--files", "src/a.py",
                   "--tests", "PASS", "--lint", "PASS", "--build", "FAIL"],
         MessageType.OFFERING_READY, {"commit_sha": "abc123", "files": ("src/a.py",),
                                      "tests_pass": True, "lint_pass": True,
                                      "build_pass": False, "summary": "login works"}),
    Verb("done", ["done", "finished", "--commit", "abc123", "--files", "x.py"],
         MessageType.DONE, {"commit_sha": "abc123", "files": ("x.py",)}),
    Verb("fail", ["fail", "cannot build", "--type", "BUILD_FAIL", "--attempts", "3"],
         MessageType.FAILED, {"failure_type": "BUILD_FAIL", "reason": "cannot build",
                              "internal_attempts": 3}),
    Verb("checkpoint", ["checkpoint", "--reason", "CONTEXT_HIGH", "--commit", "def456",
                        "--progress", "models done", "--next", "write views"],
         MessageType.CHECKPOINT, {"checkpoint_reason": "CONTEXT_HIGH",
                                  "partial_commit_sha": "def456", "progress": "models done",
                                  "next_steps": "write views"}),
    Verb("escape", ["escape", "--finding", "config needs a flag", "--files", "cfg.py,b.py",
                    "--intent", "add flag", "--severity", "high"],
         MessageType.SCOPE_ESCAPE, {"finding": "config needs a flag", "files": ("cfg.py", "b.py"),
                                    "intent": "add flag", "severity": "high"}),
]  # fmt: skip


@pytest.mark.parametrize(Verb._fields, VERBS, ids=[v.test_id for v in VERBS])
def test_verbs_mail_the_mayor(
    worker: Worker, test_id: str, args: list[str], mtype: MessageType, fields: dict[str, t.Any]
) -> None:
    result = swarm("worker", *args, "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)["message"]
    env = _only_message(worker.store)
    assert printed["id"] == env.id
    assert env.type == mtype
    assert env.sender == "w-t1" and env.to == ("mayor",)
    assert env.thread_id == "t1" and env.run_id == "run-1"
    assert env.subject == f"[t1] {mtype.value}"
    assert env.fields.bead_id == "t1"
    for name, value in fields.items():
        assert getattr(env.fields, name) == value, name
    # the body is the agentops format: parsing it gives the same fields back
    from protocol import agentops

    parsed_type, parsed = agentops.parse(env.subject, env.body_md)
    assert parsed_type == mtype
    for name, value in fields.items():
        assert getattr(parsed, name) == value, name


def test_plain_output_is_the_message_id(worker: Worker) -> None:
    result = swarm("worker", "accepted")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == _only_message(worker.store).id


@pytest.mark.parametrize("missing", ["SWARM_WORKER", "SWARM_HOME", "SWARM_TASK", "SWARM_MAYOR"])
def test_outside_a_worker_exits_2_naming_the_variable(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.delenv(missing)
    result = swarm("worker", "progress", "x")
    assert result.exit_code == 2, result.output
    assert f"${missing} is not set" in result.stderr


def test_offer_defaults_to_head_and_files_since_assign_base(worker: Worker) -> None:
    base = git(worker.repo, "rev-parse", "HEAD")
    worker.store.send(
        Envelope.model_validate(
            {
                "from": "mayor",
                "to": ["w-t1"],
                "type": MessageType.ASSIGN,
                "thread_id": "t1",
                "fields": AssignFields(bead_id="t1", base_sha=base),
            }
        )
    )
    (worker.repo / "src" / "login.py").write_text("x = 1\n")
    git(worker.repo, "add", "src/login.py")
    git(worker.repo, "commit", "-q", "-m", "login")
    head = git(worker.repo, "rev-parse", "HEAD")
    result = swarm("worker", "offer", "login works", "--tests", "PASS")
    assert result.exit_code == 0, result.output
    env = _only_message(worker.store)
    assert env.fields.commit_sha == head  # type: ignore[attr-defined]
    assert env.fields.files == ("src/login.py",)  # type: ignore[attr-defined]
    saved = WorkerResult.model_validate_json((worker.home / "results" / "t1.json").read_text())
    assert saved.type == "completion" and saved.status == "done"
    assert saved.artifacts == ("src/login.py",)
    assert saved.detail == "login works"


def test_fail_writes_a_blocked_result(worker: Worker) -> None:
    result = swarm("worker", "fail", "spec is contradictory", "--type", "SPEC_IMPOSSIBLE")
    assert result.exit_code == 0, result.output
    saved = WorkerResult.model_validate_json((worker.home / "results" / "t1.json").read_text())
    assert saved.type == "blocked" and saved.status == "blocked"
    assert "spec is contradictory" in saved.detail


def test_escape_appends_one_line(worker: Worker) -> None:
    for i in range(2):
        result = swarm("worker", "escape", "--finding", f"f{i}", "--files", "a.py")
        assert result.exit_code == 0, result.output
    lines = (worker.home / "scope-escapes.jsonl").read_text().splitlines()
    records = [ScopeEscape.model_validate_json(line) for line in lines]
    assert [r.finding for r in records] == ["f0", "f1"]
    assert records[0].task_id == "t1" and records[0].worker == "w-t1"
    assert records[0].suggested_files == ("a.py",)
    empty = swarm("worker", "escape", "--finding", "x", "--files", ",")
    assert empty.exit_code == 2, empty.output


def _append_many(home: str, writer: int, count: int) -> None:
    for i in range(count):
        escape = ScopeEscape(worker=f"w{writer}", finding=f"{writer}-{i}-" + "z" * 20_000)
        append_escape(pathlib.Path(home), escape)


def test_concurrent_escape_writers_never_interleave(tmp_path: pathlib.Path) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(tmp_path), w, 40)) for w in range(6)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    lines = (tmp_path / "scope-escapes.jsonl").read_text().splitlines()
    assert len(lines) == 240
    findings = {ScopeEscape.model_validate_json(line).finding.split("-z")[0] for line in lines}
    assert len(findings) == 240


def test_key_file_signs_and_a_wrong_key_is_quarantined(
    worker: Worker, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    wrong = tmp_path / "wrong.key"
    wrong.write_text("00" * 32)
    monkeypatch.setenv("SWARM_KEY_FILE", str(wrong))
    result = swarm("worker", "progress", "forged?")
    assert result.exit_code == 0, result.output
    assert worker.store.list("mayor").messages == ()
    assert "bad signature" in worker.store.quarantined("mayor")[0][1]
