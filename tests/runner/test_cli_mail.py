from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import typing as t

import pytest
from click.testing import CliRunner

from agentmail.store import MailStore
from runner.cli.main import cli


def swarm(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> t.Any:
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def as_doc(result: t.Any) -> dict[str, t.Any]:
    doc: dict[str, t.Any] = json.loads(result.stdout)
    return doc


@pytest.fixture
def repo(git_repo: pathlib.Path) -> pathlib.Path:
    for agent in ("mayor", "w1", "w2"):
        result = swarm("mail", "register", agent, "--repo", str(git_repo))
        assert result.exit_code == 0, result.output
    return git_repo


def test_register_prints_key_file(git_repo: pathlib.Path) -> None:
    result = swarm("mail", "register", "mayor", "--repo", str(git_repo), "--json")
    assert result.exit_code == 0, result.output
    doc = as_doc(result)
    assert doc["kind"] == "mail.register"
    assert doc["key_file"].endswith(".agents/swarm/mail/.keys/mayor.key")
    bad = swarm("mail", "register", "../mayor", "--repo", str(git_repo))
    assert bad.exit_code == 2, bad.output
    assert "invalid id" in bad.output


def test_send_parses_agentops_body_and_inbox_pages(repo: pathlib.Path) -> None:
    body = (
        "Bead: t1\nStep: Step 2 - tests\nStatus: halfway\nContext usage: 40%\n"
        "Files touched: a.py, b.py\n"
    )
    result = swarm(
        "mail", "send", "--from", "w1", "--to", "mayor", "--subject", "[t1] PROGRESS",
        "--body", body, "--repo", str(repo), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    msg = as_doc(result)["message"]
    assert msg["type"] == "PROGRESS" and msg["thread_id"] == "t1"
    assert msg["fields"]["context_usage"] == 40
    assert msg["fields"]["files_touched"] == ["a.py", "b.py"]
    for i in range(3):
        result = swarm(
            "mail", "send", "--from", "w2", "--to", "mayor", "--type", "nudge",
            "--body", f"n{i}", "--repo", str(repo),
        )  # fmt: skip
        assert result.exit_code == 0, result.output
    first = swarm(
        "mail", "inbox", "--agent", "mayor", "--limit", "2", "--repo", str(repo), "--json"
    )
    assert first.exit_code == 0, first.output
    page = as_doc(first)
    assert [m["type"] for m in page["messages"]] == ["PROGRESS", "NUDGE"]
    assert page["has_more"] is True
    rest = swarm(
        "mail", "inbox", "--agent", "mayor", "--since", page["next_cursor"],
        "--repo", str(repo), "--json",
    )  # fmt: skip
    assert [m["body_md"] for m in as_doc(rest)["messages"]] == ["n1", "n2"]
    human = swarm("mail", "inbox", "--agent", "mayor", "--repo", str(repo))
    assert human.exit_code == 0, human.output
    assert "PROGRESS" in human.stdout


def test_read_ack_thread(repo: pathlib.Path) -> None:
    sent = swarm(
        "mail", "send", "--from", "w1", "--to", "mayor", "--subject", "[t1] OFFERING_READY",
        "--body", "Bead: t1\nStatus: DONE\n", "--repo", str(repo), "--json",
    )  # fmt: skip
    assert sent.exit_code == 0, sent.output
    msg_id = as_doc(sent)["message"]["id"]
    assert as_doc(sent)["message"]["ack_required"] is True
    unacked = swarm("mail", "inbox", "--agent", "mayor", "--unacked", "--repo", str(repo), "--json")
    assert [m["id"] for m in as_doc(unacked)["messages"]] == [msg_id]
    read = swarm("mail", "read", msg_id, "--agent", "mayor", "--repo", str(repo), "--json")
    assert read.exit_code == 0, read.output
    assert as_doc(read)["message"]["read"] is True
    acked = swarm("mail", "ack", msg_id, "--agent", "mayor", "--repo", str(repo))
    assert acked.exit_code == 0, acked.output
    unread = swarm("mail", "inbox", "--agent", "mayor", "--unread", "--repo", str(repo), "--json")
    assert as_doc(unread)["messages"] == []
    thread = swarm("mail", "thread", "t1", "--agent", "mayor", "--repo", str(repo), "--json")
    (only,) = as_doc(thread)["messages"]
    assert only["acked"] is True
    missing = swarm(
        "mail", "read", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--agent", "mayor", "--repo", str(repo)
    )
    assert missing.exit_code == 1, missing.output
    assert "no message" in missing.output


class Refusal(t.NamedTuple):
    test_id: str
    args: list[str]
    exit_code: int
    message: str


REFUSALS: t.Final = [
    Refusal(
        "unknown_recipient", ["--from", "w1", "--to", "ghost", "--type", "NUDGE"], 1, "'ghost'"
    ),
    Refusal("no_type", ["--from", "w1", "--to", "mayor"], 2, "--type"),
    Refusal("no_identity", ["--to", "mayor", "--type", "NUDGE"], 2, "--from"),
    Refusal(
        "bad_recipient", ["--from", "w1", "--to", "../mayor", "--type", "NUDGE"], 2, "invalid id"
    ),
    Refusal(
        "oversize",
        ["--from", "w1", "--to", "mayor", "--type", "NUDGE", "--body", "x" * (1 << 20 + 1)],
        2,
        "over the 1048576-byte limit",
    ),
]


@pytest.mark.parametrize(Refusal._fields, REFUSALS, ids=[r.test_id for r in REFUSALS])
def test_send_refusals(
    repo: pathlib.Path, test_id: str, args: list[str], exit_code: int, message: str
) -> None:
    result = swarm("mail", "send", *args, "--repo", str(repo))
    assert result.exit_code == exit_code, result.output
    assert message in result.stderr
    assert result.stdout == ""


def test_worker_cannot_send_as_someone_else(repo: pathlib.Path) -> None:
    home = repo / ".agents" / "swarm"
    env = {"SWARM_WORKER": "w1", "SWARM_HOME": str(home)}
    result = swarm("mail", "send", "--from", "mayor", "--to", "w2", "--type", "GUIDANCE", env=env)
    assert result.exit_code == 1, result.output
    assert "cannot send as 'mayor'" in result.stderr
    ok = swarm("mail", "send", "--to", "mayor", "--type", "NUDGE", "--body", "hi", env=env)
    assert ok.exit_code == 0, ok.output
    # identity and root both come from the environment
    inbox = swarm("mail", "inbox", "--agent", "mayor", "--json", env=env)
    assert [m["from"] for m in as_doc(inbox)["messages"]] == ["w1"]


def test_mail_root_from_swarm_home(tmp_path: pathlib.Path) -> None:
    home = tmp_path / "home"
    env = {"SWARM_HOME": str(home)}
    assert swarm("mail", "register", "mayor", env=env).exit_code == 0
    assert (home / "mail" / "mayor" / "new").is_dir()


def test_not_a_repository(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = swarm("mail", "inbox", "--agent", "mayor")
    assert result.exit_code == 2, result.output
    assert "not a git repository" in result.stderr


def test_leases_cli(repo: pathlib.Path) -> None:
    r = swarm(
        "mail", "reserve", "src/", "--agent", "w1", "--reason", "t1", "--repo", str(repo), "--json"
    )
    assert r.exit_code == 0, r.output
    lease_id = as_doc(r)["lease"]["id"]
    conflict = swarm("mail", "reserve", "src/a.py", "--agent", "w2", "--repo", str(repo))
    assert conflict.exit_code == 1, conflict.output
    assert "overlaps 'src' held by 'w1'" in conflict.stderr
    listed = swarm("mail", "leases", "--repo", str(repo), "--json")
    assert [lease["agent"] for lease in as_doc(listed)["leases"]] == ["w1"]
    stolen = swarm("mail", "release", lease_id, "--agent", "w2", "--repo", str(repo))
    assert stolen.exit_code == 1, stolen.output
    assert "held by 'w1', not 'w2'" in stolen.stderr
    usage = swarm("mail", "release", "--agent", "w1", "--repo", str(repo))
    assert usage.exit_code == 2, usage.output
    released = swarm("mail", "release", lease_id, "--agent", "w1", "--repo", str(repo), "--json")
    assert released.exit_code == 0, released.output
    assert as_doc(released)["released"] == 1
    bad_ttl = swarm(
        "mail", "reserve", "a.py", "--agent", "w1", "--ttl", "soon", "--repo", str(repo)
    )
    assert bad_ttl.exit_code == 2, bad_ttl.output


def test_watch_streams_json_lines(repo: pathlib.Path) -> None:
    """A real `swarm mail watch` process: one JSON line per message, unread first."""
    store = MailStore(repo / ".agents" / "swarm" / "mail")
    from tests.agentmail.helpers import msg

    store.send(msg("w1", "mayor", body="before"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "runner", "mail", "watch", "--agent", "mayor", "--count", "3",
         "--repo", str(repo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["body_md"] == "before"
        store.send(msg("w2", "mayor", body="during 1"))
        store.send(msg("w1", "mayor", body="during 2"))
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [line["body_md"] for line in lines] == ["during 1", "during 2"]
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_inbox_newest_first_pages_with_before(repo: pathlib.Path) -> None:
    store = MailStore(repo / ".agents" / "swarm" / "mail")
    for i in range(7):
        result = swarm("mail", "send", "--from", "w1", "--to", "mayor", "--type", "NUDGE",
                       "--body", f"n{i}", "--repo", str(repo))  # fmt: skip
        assert result.exit_code == 0, result.output
    seen: list[str] = []
    before: list[str] = []
    while True:
        result = swarm("mail", "inbox", "--agent", "mayor", "--newest", "--limit", "3",
                       *before, "--repo", str(repo), "--json")  # fmt: skip
        assert result.exit_code == 0, result.output
        doc = as_doc(result)
        assert doc["order"] == "newest"
        seen += [m["body_md"] for m in doc["messages"]]
        if not doc["has_more"]:
            break
        before = ["--before", doc["next_cursor"]]
    assert seen == [f"n{i}" for i in range(7)][::-1]
    window = swarm("mail", "inbox", "--agent", "mayor", "--after", f"{2:012d}", "--before",
                   f"{5:012d}", "--repo", str(repo), "--json")  # fmt: skip
    assert [m["body_md"] for m in as_doc(window)["messages"]] == ["n2", "n3"]
    assert len(store.list("mayor").messages) == 7
    human = swarm("mail", "inbox", "--agent", "mayor", "--newest", "--limit", "2",
                  "--repo", str(repo))  # fmt: skip
    assert human.exit_code == 0, human.output
    assert "(pass --before)" in human.stderr
    bad = swarm("mail", "inbox", "--agent", "mayor", "--before", "yesterday", "--repo", str(repo))
    assert bad.exit_code == 2, bad.output
    assert bad.stderr.startswith("swarm: invalid cursor 'yesterday'")


def test_mail_send_from_a_fresh_process_is_the_click_commands_message(
    repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    """``swarm mail send`` of a free-text type inside a worker takes the fast path (no click,
    no pydantic); the message is the one the click command sends, field for field."""
    store = MailStore(repo / ".agents" / "swarm" / "mail")
    env = {
        **{k: v for k, v in __import__("os").environ.items() if not k.startswith("SWARM_")},
        "SWARM_HOME": str(repo / ".agents" / "swarm"),
        "SWARM_WORKER": "w1",
        "SWARM_RUN": "run-1",
        "SWARM_KEY_FILE": str(store.key_path("w1")),
    }
    args = ["mail", "send", "--to", "mayor", "--cc", "w2", "--type", "guidance", "--body",
            "  merge t1 first \n", "--thread", "t1", "--importance", "high", "--ack-required",
            "--idempotency-key", "k-1", "--json"]  # fmt: skip
    swarm_bin = str(pathlib.Path(sys.executable).with_name("swarm"))
    fast = subprocess.run([swarm_bin, *args], env=env, capture_output=True, text=True, check=False)
    assert fast.returncode == 0, fast.stderr
    again = subprocess.run([swarm_bin, *args], env=env, capture_output=True, text=True, check=False)
    assert again.stdout == fast.stdout  # the same idempotency key: the same message
    args[-2] = "k-2"
    slow = swarm(*args, env=env)
    assert slow.exit_code == 0, slow.output
    docs = [as_doc(r)["message"] for r in (fast, slow)]
    assert list(docs[0]) == list(docs[1])
    for doc in docs:
        for part in ("id", "seq", "created", "sig", "idempotency_key"):
            doc.pop(part)
    assert docs[0] == docs[1]
    assert docs[0]["fields"] == {
        "bead_id": "",
        "text": "merge t1 first",
        "signal": None,
        "tasks": [],
    }
    assert docs[0]["subject"] == "[t1] GUIDANCE" and docs[0]["cc"] == ["w2"]
    assert len(store.list("mayor").messages) == 2 and len(store.list("w2").messages) == 2
    refused = subprocess.run(
        [swarm_bin, "mail", "send", "--from", "mayor", "--to", "w2", "--type", "NUDGE"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "w1" in refused.stderr
    assert len(store.list("w2").messages) == 2


def _plant_valid_but_unusual(store: MailStore, repo: pathlib.Path) -> str:
    """A message the store delivered, rewritten (by its sender, with its key) in a form the
    store never writes: a +00:00 offset, fields left to their defaults, pretty-printed. Valid:
    the models verify its signature the slow way and show it normalized."""
    from agentmail.store import load_key, sign
    from protocol.messages import Envelope

    sent = swarm("mail", "send", "--from", "w2", "--to", "mayor", "--type", "NUDGE",
                 "--body", "placeholder", "--repo", str(repo), "--json")  # fmt: skip
    msg_id = str(as_doc(sent)["message"]["id"])
    doc = {"id": msg_id, "from": "w2", "to": ["mayor"], "type": "GUIDANCE", "body_md": "odd",
           "created": "2026-01-02T03:04:05.5+00:00", "fields": {"text": "odd"},
           "seq": 9}  # fmt: skip
    sig = sign(Envelope.model_validate(doc), load_key(store.key_path("w2")))
    path = next((store.maildir("mayor") / "new").glob(f"*{msg_id}"))
    path.write_text(json.dumps({**doc, "sig": sig}, indent=1))
    return msg_id


INBOX_ARGS: t.Final = [
    ["--json"],
    [],
    ["--newest", "--limit", "2", "--json"],
    ["--newest", "--limit", "2"],
    ["--unread", "--type", "progress", "--json"],
    ["--unacked", "--json"],
    ["--thread", "t1", "--from", "w1", "--json"],
    ["--limit=1", "--since", "000000000002", "--json"],
    ["--type", "GUIDANCE", "--json"],
]


def test_mail_inbox_from_a_fresh_process_is_the_click_commands_output(
    repo: pathlib.Path,
) -> None:
    """``swarm mail inbox`` takes the fast path (no click, no pydantic): byte for byte what the
    click command prints, and every message is the models' own document of it."""
    store = MailStore(repo / ".agents" / "swarm" / "mail")
    sends = [
        ["--subject", "[t1] PROGRESS", "--body", "Bead: t1\nStatus: half ünï\nContext usage: 4%\n"],
        ["--subject", "[t1] OFFERING_READY", "--body", "Bead: t1\nStatus: DONE\nFiles: a\n"],
        ["--type", "NUDGE", "--body", "[not markup] \x01 tab", "--thread", "t2"],
    ]  # fmt: skip
    for extra in sends:
        result = swarm("mail", "send", "--from", "w1", "--to", "mayor", *extra, "--repo", str(repo))
        assert result.exit_code == 0, result.output
    odd = _plant_valid_but_unusual(store, repo)
    for args in INBOX_ARGS:
        argv = ["mail", "inbox", "--agent", "mayor", *args]
        fast = _fresh_swarm(argv, repo)
        slow = swarm(*argv, "--repo", str(repo))
        assert fast.returncode == slow.exit_code == 0, (args, fast.stderr, slow.output)
        assert fast.stdout == slow.stdout, args
        stderr, modules = fast.stderr.rsplit("modules: ", 1)
        assert stderr == slow.stderr, args
        assert "'click'" not in modules, args  # the fast path answered
    # the models judge only the unusual message: a page without it builds none
    plain = _fresh_swarm(["mail", "inbox", "--agent", "mayor", "--limit", "3", "--json"], repo)
    assert plain.stderr == "modules: []\n"
    assert [m["from"] for m in json.loads(plain.stdout)["messages"]] == ["w1"] * 3
    listed = as_doc(swarm("mail", "inbox", "--agent", "mayor", "--repo", str(repo), "--json"))
    stored = MailStore(store.root).list("mayor").messages
    models = [json.loads(s.envelope.to_json()) for s in stored]
    assert [{k: v for k, v in m.items() if k not in ("read", "acked", "cursor")}
            for m in listed["messages"]] == models  # fmt: skip
    assert [m["created"] for m in listed["messages"] if m["id"] == odd] == [
        "2026-01-02T03:04:05.500000Z"
    ]
    assert store.quarantined("mayor") == ()


FRESH_SWARM: t.Final = """
import json, sys
sys.argv = ["swarm", *json.loads(sys.argv[1])]
from runner.cli import main
try:
    main.main()
finally:
    heavy = ("pydantic", "click", "libtmux", "watchdog")
    sys.stderr.write(f"modules: {sorted(m for m in sys.modules if m.split('.')[0] in heavy)}\\n")
"""


def _fresh_swarm(argv: t.Sequence[str], cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """``swarm ARGV`` in a fresh process, outside any worker; its stderr ends with the heavy
    modules it imported."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("SWARM_")}
    return subprocess.run([sys.executable, "-c", FRESH_SWARM, json.dumps(list(argv))], env=env,
                          cwd=cwd, capture_output=True, text=True, check=False)  # fmt: skip


def test_mail_inbox_errors_are_the_click_commands(repo: pathlib.Path) -> None:
    for argv in (
        ["mail", "inbox", "--agent", "ghost"],
        ["mail", "inbox", "--agent", "mayor", "--before", "yesterday"],
        ["mail", "inbox", "--agent", "mayor", "--limit", "0"],
        ["mail", "inbox"],
    ):
        fast = _fresh_swarm(argv, repo)
        slow = CliRunner().invoke(cli, [*argv, "--repo", str(repo)], prog_name="swarm")
        assert fast.returncode == slow.exit_code != 0, argv
        assert fast.stderr.rsplit("modules: ", 1)[0] == slow.stderr, argv


def test_fast_message_types_are_the_models() -> None:
    from protocol.messages import MessageType
    from runner.cli import fast

    assert tuple(m.value for m in MessageType) == fast.MESSAGE_TYPES


def test_a_reader_that_went_away_ends_a_command_quietly(repo: pathlib.Path) -> None:
    """`swarm mail inbox | head -1` with the reader gone before the first write: the fast path
    (inbox) and click's (thread) both end with 1, silently (as rich's tables do)."""
    for _ in range(3):
        result = swarm("mail", "send", "--from", "w1", "--to", "mayor", "--type", "NUDGE",
                       "--body", "x", "--thread", "t2", "--repo", str(repo))  # fmt: skip
        assert result.exit_code == 0, result.output
    swarm_bin = str(pathlib.Path(sys.executable).with_name("swarm"))
    for argv in (["mail", "inbox"], ["mail", "thread", "t2"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the command writes anything
        try:
            proc = subprocess.run(
                [swarm_bin, *argv, "--agent", "mayor", "--repo", str(repo)],
                stdout=write,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
            )
        finally:
            os.close(write)
        assert (proc.returncode, proc.stderr) == (1, ""), argv
