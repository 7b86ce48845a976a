"""agentmail.compose: identities inside and outside a worker, envelopes typed by hand."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from agentmail.compose import compose, reader_identity, sender_identity, split_names
from agentmail.errors import AgentMailError, BadInput, NotYourIdentity
from agentmail.store import MailStore
from protocol.messages import MessageType, ProgressFields


class IdentityCase(t.NamedTuple):
    test_id: str
    sender: str | None
    environ: dict[str, str]
    expected: str | type[AgentMailError]


IDENTITY_CASES = [
    IdentityCase("named", "human", {}, "human"),
    IdentityCase("worker-default", None, {"SWARM_WORKER": "w1"}, "w1"),
    IdentityCase("worker-itself", "w1", {"SWARM_WORKER": "w1"}, "w1"),
    IdentityCase("nobody", None, {}, BadInput),
    IdentityCase("worker-as-another", "mayor", {"SWARM_WORKER": "w1"}, NotYourIdentity),
]


@pytest.mark.parametrize("case", IDENTITY_CASES, ids=[c.test_id for c in IDENTITY_CASES])
def test_sender_identity(case: IdentityCase) -> None:
    if isinstance(case.expected, str):
        assert sender_identity(case.sender, case.environ) == (case.expected, None)
    else:
        with pytest.raises(case.expected):
            sender_identity(case.sender, case.environ)


def test_refusal_exits_1_and_no_identity_exits_2() -> None:
    with pytest.raises(NotYourIdentity, match="cannot send as 'mayor'") as refused:
        sender_identity("mayor", {"SWARM_WORKER": "w1"})
    assert refused.value.exit_code == 1
    with pytest.raises(BadInput, match="pass --agent NAME") as nobody:
        reader_identity(None, {})
    assert nobody.value.exit_code == 2
    assert reader_identity(None, {"SWARM_WORKER": "w1"}) == "w1"


def test_a_worker_signs_with_its_key_file(tmp_path: pathlib.Path) -> None:
    key_file = MailStore(tmp_path).register("w1")
    environ = {"SWARM_WORKER": "w1", "SWARM_KEY_FILE": str(key_file)}
    name, key = sender_identity(None, environ)
    assert name == "w1" and key is not None and len(key) > 0


def test_compose_from_an_agentops_subject() -> None:
    env = compose(
        "w1",
        ["mayor,human"],
        subject="[t1] PROGRESS",
        body="## Progress\nhalf way",
        environ={"SWARM_RUN": "r1"},
    )
    assert env.type is MessageType.PROGRESS
    assert env.to == ("mayor", "human")
    assert isinstance(env.fields, ProgressFields)
    assert (env.thread_id, env.run_id) == ("t1", "r1")


def test_compose_from_a_type_renders_the_subject() -> None:
    env = compose("human", ["mayor"], mtype="guidance", body="merge t1 first", thread="t1")
    assert (env.type, env.subject, env.thread_id) == (MessageType.GUIDANCE, "[t1] GUIDANCE", "t1")


def test_compose_needs_a_type() -> None:
    with pytest.raises(BadInput, match="--type TYPE"):
        compose("human", ["mayor"], body="hi", environ={})


def test_split_names() -> None:
    assert split_names(["a,b", " c ", ","]) == ("a", "b", "c")
