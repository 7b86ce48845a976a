"""Who is speaking, and a message made from what a person types (``swarm mail send``).

A person or script names the sender (``--from``) and recipients, and gives an agentops
subject/body pair, a type, or both; :func:`compose` turns that into an :class:`Envelope` with
typed ``fields`` parsed from the body (the same parser the mayor reads agentops workers with).
Inside a worker environment (``$SWARM_WORKER`` set) the identity is the worker's and nobody
else's: :func:`sender_identity` refuses another sender and signs with ``$SWARM_KEY_FILE``.
"""

from __future__ import annotations

import os
import pathlib
import typing as t

from agentmail.delivery import load_key
from agentmail.errors import BadInput, NotYourIdentity

if t.TYPE_CHECKING:
    from protocol.messages import Envelope


def _environ(environ: t.Mapping[str, str] | None) -> t.Mapping[str, str]:
    return os.environ if environ is None else environ


def reader_identity(agent: str | None, environ: t.Mapping[str, str] | None = None) -> str:
    """Whose inbox: ``agent``, else ``$SWARM_WORKER``; BadInput when neither is there."""
    name = agent or _environ(environ).get("SWARM_WORKER")
    if not name:
        raise BadInput("no identity: pass --agent NAME (or set $SWARM_WORKER)")
    return name


def sender_identity(
    sender: str | None, environ: t.Mapping[str, str] | None = None
) -> tuple[str, bytes | None]:
    """The sending identity and, inside a worker, the key from ``$SWARM_KEY_FILE`` (None: the
    store signs with the sender's key file)."""
    env = _environ(environ)
    worker = env.get("SWARM_WORKER")
    name = sender or worker
    if not name:
        raise BadInput("no identity: pass --from NAME (or set $SWARM_WORKER)")
    if worker and name != worker:
        raise NotYourIdentity(worker, name)
    key_file = env.get("SWARM_KEY_FILE")
    key = load_key(pathlib.Path(key_file)) if worker and key_file else None
    return name, key


def split_names(values: t.Iterable[str]) -> tuple[str, ...]:
    """``("a,b", "c")`` -> ``("a", "b", "c")``: repeated options and comma lists alike."""
    return tuple(v.strip() for value in values for v in value.split(",") if v.strip())


def compose(
    sender: str,
    to: t.Iterable[str],
    *,
    body: str = "",
    mtype: str | None = None,
    subject: str = "",
    cc: t.Iterable[str] = (),
    thread: str | None = None,
    ack_required: bool | None = None,
    importance: str = "normal",
    reply_to: str | None = None,
    run_id: str | None = None,
    idempotency_key: str | None = None,
    environ: t.Mapping[str, str] | None = None,
) -> Envelope:
    """The envelope of a message typed by hand.

    The type is ``mtype`` or the one the agentops ``subject`` names (BadInput with neither);
    the thread defaults to the task id the body or subject names; the subject, when not given,
    is rendered from type and thread; ``ack_required`` defaults by type; the run id defaults to
    ``$SWARM_RUN``."""
    from protocol import agentops  # the identity helpers above stay light (runner.cli.fast)
    from protocol.messages import ACK_REQUIRED_BY_DEFAULT, Envelope, MessageType

    if mtype is not None:
        kind = MessageType(mtype.upper())
        fields = agentops.parse_body(kind, body, subject)
    elif subject:
        kind, fields = agentops.parse(subject, body)
    else:
        raise BadInput("pass --type TYPE or a --subject naming one (e.g. '[task-1] PROGRESS')")
    thread_id = thread or fields.bead_id or None
    if not subject:
        subject = agentops.render_subject(kind, thread_id or "")
    return Envelope.model_validate(
        {
            "from": sender,
            "to": split_names(to),
            "cc": split_names(cc),
            "type": kind,
            "subject": subject,
            "body_md": body,
            "fields": fields,
            "thread_id": thread_id,
            "importance": importance,
            "ack_required": kind in ACK_REQUIRED_BY_DEFAULT
            if ack_required is None
            else ack_required,
            "in_reply_to": reply_to,
            "run_id": run_id or _environ(environ).get("SWARM_RUN") or None,
            "idempotency_key": idempotency_key,
        }
    )
