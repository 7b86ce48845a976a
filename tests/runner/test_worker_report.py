"""runner.worker_report (the library under ``swarm worker``) called directly, and the scripted
agent's parser of the reports it writes as ``swarm worker`` argv."""

from __future__ import annotations

import json
import pathlib
import typing as t

import pytest

from agentmail.errors import BadInput
from agentmail.store import MailStore
from agentmail.worker_env import WorkerEnv
from protocol.messages import FailedFields, MessageType, OfferingFields
from runner import worker_report
from runner.agents.scripted import parse_report
from tests.conftest import git


@pytest.fixture
def env(git_repo: pathlib.Path) -> WorkerEnv:
    home = git_repo / ".agents" / "swarm"
    store = MailStore(home / "mail")
    store.register("mayor")
    key_file = store.register("w-t1")
    return WorkerEnv(
        home=home, run="run-1", task="t1", worker="w-t1", mayor="mayor", key_file=key_file
    )


def test_offer_writes_the_result_and_mails_the_mayor(
    env: WorkerEnv, git_repo: pathlib.Path
) -> None:
    sent = worker_report.offer(env, "all  done\n", cwd=git_repo, done=True, files=["a.py"])
    assert sent.message.type is MessageType.DONE
    assert sent.message.sig and sent.message.thread_id == "t1"
    fields = sent.message.fields
    assert isinstance(fields, OfferingFields)
    assert fields.commit_sha == git(git_repo, "rev-parse", "HEAD")
    result = json.loads(pathlib.Path(sent.files["result"]).read_text())
    assert (result["status"], result["detail"], result["artifacts"]) == (
        "done",
        "all done",
        ["a.py"],
    )
    (stored,) = MailStore(env.mail_root).list("mayor").messages
    assert stored.envelope == sent.message


def test_fail_takes_a_failure_type_in_any_case(env: WorkerEnv) -> None:
    sent = worker_report.fail(env, "no way", failure_type="spec_impossible")
    assert isinstance(sent.message.fields, FailedFields)
    assert sent.message.fields.failure_type == "SPEC_IMPOSSIBLE"
    with pytest.raises(BadInput, match="'nope' is not one of") as info:
        worker_report.fail(env, "x", failure_type="nope")
    assert info.value.exit_code == 2


def test_an_escape_needs_files(env: WorkerEnv) -> None:
    with pytest.raises(BadInput, match="at least one file"):
        worker_report.escape(env, finding="x", files=[])
    sent = worker_report.escape(env, finding="docs stale", files=["docs/a.md"], severity="HIGH")
    line = json.loads(pathlib.Path(sent.files["escapes"]).read_text())
    assert (line["finding"], line["severity"]) == ("docs stale", "high")


def test_detail_is_one_short_line() -> None:
    assert worker_report.detail("  a\n b  ", "x") == "a b"
    assert worker_report.detail("", "fallback") == "fallback"
    long = worker_report.detail("y" * 1000, "x")
    assert len(long) == worker_report.DETAIL_MAX and long.endswith("…")


class ParseCase(t.NamedTuple):
    test_id: str
    args: list[str]
    expected: tuple[str, list[str], dict[str, str]] | str
    """The parse, or the text of the BadInput it raises."""


PARSE_CASES = [
    ParseCase("accepted", ["accepted", "--title", "T"], ("accepted", [], {"--title": "T"})),
    ParseCase("offer", ["offer", "ok", "--commit", "abc"], ("offer", ["ok"], {"--commit": "abc"})),
    ParseCase("missing-argument", ["offer"], "Missing argument 'SUMMARY'"),
    ParseCase("extra-argument", ["progress", "a", "b"], "unexpected extra argument 'b'"),
    ParseCase("unknown-option", ["fail", "x", "--nope", "1"], "no such option --nope"),
    ParseCase("option-without-value", ["fail", "x", "--type"], "requires an argument"),
    ParseCase("unknown-verb", ["dance"], "no such report 'dance'"),
    ParseCase("nothing", [], "no such report nothing"),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=[c.test_id for c in PARSE_CASES])
def test_parse_report(case: ParseCase) -> None:
    if isinstance(case.expected, str):
        with pytest.raises(BadInput, match=case.expected):
            parse_report(case.args)
    else:
        assert parse_report(case.args) == case.expected
