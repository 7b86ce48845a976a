from __future__ import annotations

import json
import multiprocessing
import pathlib
import random
import signal
import subprocess
import sys
import time
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


SWARM: t.Final = str(pathlib.Path(sys.executable).with_name("swarm"))
"""The installed ``swarm``: its ``main()`` takes the fast path (CliRunner calls click)."""


def fresh(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``swarm ARGS`` from a fresh process, as an agent runs it."""
    return subprocess.run(
        [SWARM, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


@pytest.mark.parametrize(Verb._fields, VERBS, ids=[v.test_id for v in VERBS])
def test_the_fast_path_prints_what_click_prints(
    worker: Worker, test_id: str, args: list[str], mtype: MessageType, fields: dict[str, t.Any]
) -> None:
    """The fresh-process path (no click, no pydantic) and the click command: the same report
    run twice, once each way, is one message (the second run is a retry of the first: same
    idempotency key), and both print the same document, byte for byte."""
    fast = fresh("worker", *args, "--json", cwd=worker.repo)
    assert fast.returncode == 0, fast.stderr
    assert fast.stderr == ""
    slow = swarm("worker", *args, "--json")
    assert slow.exit_code == 0, slow.output
    assert fast.stdout == slow.stdout
    (stored,) = worker.store.list("mayor").messages
    assert json.loads(fast.stdout)["message"] == json.loads(stored.envelope.to_json())
    assert stored.envelope.idempotency_key == f"run-1/t1/1/{mtype.value}:1"
    plain = fresh("worker", *args, cwd=worker.repo)
    assert plain.stdout == stored.id + "\n"


class Refused(t.NamedTuple):
    test_id: str
    args: list[str]
    code: int
    says: str


REFUSED: t.Final = [
    Refused("help", ["progress", "--help"], 0, "Report progress (PROGRESS)."),
    Refused("missing-argument", ["progress"], 2, "Missing argument 'TEXT'"),
    Refused("unknown-option", ["progress", "x", "--stepp", "2"], 2, "No such option '--stepp'"),
    Refused("out-of-range", ["progress", "x", "--context-usage", "101"], 2, "101 is not in"),
    Refused("not-a-number", ["fail", "x", "--attempts", "two"], 2, "'two' is not a valid"),
    Refused("bad-choice", ["help", "x", "--issue-type", "PANIC"], 2, "'PANIC' is not one of"),
    Refused("case-of-severity", ["escape", "--finding", "f", "--files", "a", "--severity",
                                 "HIGH"], 2, "'HIGH' is not one of"),
    Refused("required-option", ["escape", "--files", "a"], 2, "Missing option '--finding'"),
    Refused("no-files", ["escape", "--finding", "f", "--files", ","], 2, "name at least one"),
    Refused("missing-value", ["offer", "x", "--commit"], 2, "requires an argument"),
    Refused("unknown-verb", ["finish", "x"], 2, "No such command 'finish'"),
]  # fmt: skip


@pytest.mark.parametrize(Refused._fields, REFUSED, ids=[r.test_id for r in REFUSED])
def test_what_the_fast_path_does_not_understand_click_answers(
    worker: Worker, test_id: str, args: list[str], code: int, says: str
) -> None:
    result = fresh("worker", *args, cwd=worker.repo)
    assert result.returncode == code, result.stderr
    assert says in result.stdout + result.stderr
    if code:
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) <= 4
    assert worker.store.list("mayor").messages == ()


def test_outside_a_worker_the_fresh_process_names_the_variable(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SWARM_WORKER")
    result = fresh("worker", "progress", "x", cwd=worker.repo)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("swarm: $SWARM_WORKER is not set")
    assert len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def _until_it_sends(pid: int, streams: pathlib.Path) -> bool:
    """Wait until process ``pid`` holds its report stream's lock (it is sending); False if it
    exited first."""
    fds = pathlib.Path(f"/proc/{pid}/fd")
    while not _exited(pid):
        try:
            targets = [str(fd.readlink()) for fd in fds.iterdir()]
        except FileNotFoundError:
            continue  # an fd closed while listed, or the process is gone (checked above)
        if any(target.startswith(str(streams)) for target in targets):
            return True
    return False


def _exited(pid: int) -> bool:
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] == "Z"
    except (FileNotFoundError, IndexError):
        return True


def _statuses(store: MailStore) -> list[str]:
    return [getattr(s.envelope.fields, "status", "") for s in store.list("mayor").messages]


@pytest.mark.timeout(400)
def test_senders_killed_mid_send_and_run_again_lose_nothing_and_duplicate_nothing(
    worker: Worker,
) -> None:
    """An agent whose ``swarm worker progress`` is SIGKILLed (a tool timeout, a closed pane)
    runs it again until it succeeds. Kills land all over the send (before the message, between
    the idempotency record and the link, after the link and before the count); every report
    arrives exactly once."""
    rng = random.Random(1817)
    streams = worker.home / "mail" / ".senders" / "w-t1" / "streams"
    assert fresh("worker", "progress", "calibration", cwd=worker.repo).returncode == 0
    assert fresh("worker", "progress", "calibration", cwd=worker.repo).returncode == 0
    reports, kills, mid_send, delivered_then_killed = 24, 0, 0, 0
    for i in range(reports):
        for attempt in range(100):
            before = len(worker.store.list("mayor").messages)
            proc = subprocess.Popen(
                [SWARM, "worker", "progress", f"report {i}"],
                cwd=worker.repo,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if attempt < 3 and _until_it_sends(proc.pid, streams):
                time.sleep(rng.uniform(0, 0.004))  # somewhere inside the send
                mid_send += 1
            elif attempt < 4:
                time.sleep(rng.uniform(0, 0.15))  # anywhere, start-up and exit included
            else:
                proc.wait(timeout=60)  # let it finish
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                delivered_then_killed += len(worker.store.list("mayor").messages) > before
                continue
            if proc.returncode == 0:
                break
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    statuses = _statuses(worker.store)
    assert statuses == ["calibration", *(f"report {i}" for i in range(reports))]
    assert kills >= reports and mid_send >= reports, f"{kills} kills, {mid_send} mid-send"
    # the store quarantined nothing: no half-written message was ever visible
    assert worker.store.quarantined("mayor") == ()
    print(f"{kills} kills ({mid_send} mid-send), {delivered_then_killed} after the delivery")


def test_a_sender_killed_after_delivery_and_before_the_count_is_not_sent_twice(
    worker: Worker,
) -> None:
    """The narrowest window, made deterministic: the message is in the inbox, the stream's
    counter still says it was not sent (what a SIGKILL between the two leaves). Running the
    same report again sends nothing; a different report takes the next number."""
    assert fresh("worker", "progress", "one", cwd=worker.repo).returncode == 0
    (counter,) = (worker.home / "mail" / ".senders" / "w-t1" / "streams").iterdir()
    assert int(counter.read_text()[:20]) == 1
    counter.write_text(f"{0:020d}")  # the count the kill prevented
    again = fresh("worker", "progress", "one", "--json", cwd=worker.repo)
    assert again.returncode == 0, again.stderr
    (stored,) = worker.store.list("mayor").messages
    assert json.loads(again.stdout)["message"]["id"] == stored.id
    assert int(counter.read_text()[:20]) == 1
    counter.write_text(f"{0:020d}")
    other = fresh("worker", "progress", "two", cwd=worker.repo)
    assert other.returncode == 0, other.stderr
    assert _statuses(worker.store) == ["one", "two"]
    keys = [s.envelope.idempotency_key for s in worker.store.list("mayor").messages]
    assert keys == ["run-1/t1/1/PROGRESS:1", "run-1/t1/1/PROGRESS:2"]
    assert int(counter.read_text()[:20]) == 2


def test_an_attempt_and_a_type_have_their_own_sequences(
    worker: Worker, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert fresh("worker", "progress", "a", cwd=worker.repo).returncode == 0
    assert fresh("worker", "accepted", cwd=worker.repo).returncode == 0
    monkeypatch.setenv("SWARM_ATTEMPT", "2")
    assert fresh("worker", "progress", "a", cwd=worker.repo).returncode == 0
    keys = [s.envelope.idempotency_key for s in worker.store.list("mayor").messages]
    assert keys == [
        "run-1/t1/1/PROGRESS:1",
        "run-1/t1/1/BEAD_ACCEPTED:1",
        "run-1/t1/2/PROGRESS:1",
    ]


def test_the_same_report_again_is_the_same_report(worker: Worker) -> None:
    """A sender killed on its way out (the message delivered and counted, the agent never saw
    the id) runs again: the same report returns the same message. Another report, or the same
    one after another in between, is new."""
    ids = [fresh("worker", "progress", text, cwd=worker.repo).stdout.strip()
           for text in ("a", "a", "b", "a")]  # fmt: skip
    assert ids[0] == ids[1] and len(set(ids)) == 3
    assert _statuses(worker.store) == ["a", "b", "a"]
