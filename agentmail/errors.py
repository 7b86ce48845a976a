"""Agent Mail exceptions.

AgentMailError
 ├── BadInput (also ValueError)        bad name, unknown recipient, oversize body, bad envelope
 │    ├── UnknownAgent
 │    ├── BodyTooLarge
 │    ├── IdempotencyConflict
 │    ├── UnknownMessage
 │    └── NotInWorker                   a worker variable (SWARM_*) is missing
 ├── ReadOnlyInbox                      marking mail read in an inbox mounted read-only (a sandbox)
 ├── NotYourIdentity                    a worker environment sending as another agent
 ├── LeaseConflict                      a reservation overlaps one held by another agent
 ├── NotHolder                          release/renew by an agent that does not hold the lease
 └── UnknownLease                       renew of a lease that does not exist (or expired)
"""

from __future__ import annotations

import typing as t


class AgentMailError(Exception):
    """Base of every Agent Mail error."""

    exit_code = 1


class BadInput(AgentMailError, ValueError):
    """Bad input from the caller: the message names the agent, message or field and the fix."""

    exit_code = 2


class UnknownAgent(BadInput):
    """A recipient (or sender) has no mailbox under the mail root."""

    exit_code = 1

    def __init__(self, agent: str, root: object) -> None:
        self.agent = agent
        super().__init__(
            f"unknown agent {agent!r}: no mailbox under {root} "
            f"(register it first: swarm mail register {agent})"
        )


class BodyTooLarge(BadInput):
    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"message body is {size} bytes, over the {limit}-byte limit "
            "(send a path to a file instead of its content)"
        )


class IdempotencyConflict(BadInput):
    """The same idempotency key was used earlier for a different message."""

    exit_code = 1

    def __init__(self, sender: str, key: str, msg_id: str) -> None:
        self.sender = sender
        self.key = key
        self.msg_id = msg_id
        super().__init__(
            f"idempotency key {key!r} of {sender!r} was already used for a different message "
            f"({msg_id}); use a new key for a new message"
        )


class UnknownMessage(BadInput):
    exit_code = 1

    def __init__(self, agent: str, msg_id: str) -> None:
        self.agent = agent
        self.msg_id = msg_id
        super().__init__(f"no message {msg_id!r} in the inbox of {agent!r}")


class NotInWorker(BadInput):
    """A ``swarm worker`` verb ran outside a worker environment."""

    exit_code = 2

    def __init__(self, variable: str) -> None:
        self.variable = variable
        super().__init__(
            f"${variable} is not set: swarm worker commands run inside a worker pane "
            "started by the mayor (use 'swarm mail send' elsewhere)"
        )


class NotYourIdentity(AgentMailError):
    """Inside a worker environment, a message claimed another sender than the worker."""

    def __init__(self, worker: str, sender: str) -> None:
        self.worker = worker
        self.sender = sender
        super().__init__(
            f"refused: this is the worker environment of {worker!r}; it cannot send as {sender!r}"
        )


class LeaseConflict(AgentMailError):
    """A reservation overlaps a live lease held by another agent (deny-on-conflict)."""

    def __init__(self, agent: str, conflicts: t.Sequence[tuple[str, str, str, str]]) -> None:
        # conflicts: (requested pattern, held pattern, holder, lease id)
        self.agent = agent
        self.conflicts = tuple(conflicts)
        first = self.conflicts[0]
        more = f" (and {len(self.conflicts) - 1} more)" if len(self.conflicts) > 1 else ""
        super().__init__(
            f"lease refused for {agent!r}: {first[0]!r} overlaps {first[1]!r} held by "
            f"{first[2]!r} (lease {first[3]}){more}; wait for its release or expiry"
        )


class NotHolder(AgentMailError):
    def __init__(self, lease_id: str, agent: str, holder: str) -> None:
        self.lease_id = lease_id
        self.agent = agent
        self.holder = holder
        super().__init__(
            f"lease {lease_id} is held by {holder!r}, not {agent!r}: only its holder may "
            "renew or release it"
        )


class UnknownLease(AgentMailError):
    def __init__(self, lease_id: str) -> None:
        self.lease_id = lease_id
        super().__init__(f"no live lease {lease_id!r} (released or expired; reserve again)")


class ReadOnlyInbox(AgentMailError):
    """An inbox on a read-only mount (a sandboxed worker's): it can be listed, not changed."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        super().__init__(
            f"{agent}'s inbox is read-only here (a sandboxed worker's: only the mayor delivers "
            "into it): list it with `swarm mail inbox`; marking messages read or acked is not "
            "possible, and nothing needs it"
        )
