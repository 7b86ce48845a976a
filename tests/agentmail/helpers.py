"""Shared helpers for the Agent Mail tests: envelopes and multi-process senders."""

from __future__ import annotations

import pathlib
import typing as t

from agentmail.store import MailStore
from protocol.messages import Envelope, MessageType


def msg(
    sender: str,
    *to: str,
    type: MessageType = MessageType.NUDGE,
    body: str = "",
    **extra: t.Any,
) -> Envelope:
    return Envelope.model_validate(
        {"from": sender, "to": to, "type": type, "body_md": body, **extra}
    )


def make_store(tmp_path: pathlib.Path, *agents: str, **kwargs: t.Any) -> MailStore:
    store = MailStore(tmp_path / "mail", **kwargs)
    for agent in agents:
        store.register(agent)
    return store


def send_many(root: str, sender: str, recipients: t.Sequence[str], count: int, log: str) -> None:
    """Child process: send ``count`` messages round-robin; log each id after send returns."""
    store = MailStore(pathlib.Path(root))
    with open(log, "a", buffering=1) as fh:
        for i in range(count):
            to = recipients[i % len(recipients)]
            stored = store.send(msg(sender, to, body=f"{sender}:{i}"))
            fh.write(f"{stored.id} {to} {stored.seq}\n")
