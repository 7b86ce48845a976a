"""The mayor's outgoing mail: one signed-by-store message per :class:`runner.decide.Send`."""

from __future__ import annotations

import logging
import typing as t

from agentmail.store import MailStore
from protocol.agentops import render_body
from protocol.messages import Envelope, Fields, HelpRequestFields, MessageType
from runner.actions import MAYOR, Send
from runner.sessions import SessionBackend

logger = logging.getLogger(__name__)

PANE_TAIL_LINES: t.Final = 50


class Outbox:
    def __init__(self, store: MailStore, backend: SessionBackend, run_id: str) -> None:
        self.store = store
        self.backend = backend
        self.run_id = run_id

    def send(self, msg: Send) -> None:
        fields = msg.fields
        if msg.pane_tail_of and isinstance(fields, HelpRequestFields):
            tail = self.backend.capture(msg.pane_tail_of, PANE_TAIL_LINES)
            fields = fields.model_copy(update={"problem": fields.problem + tail})
        text = str(getattr(fields, "text", "") or "")
        if msg.type_into and text and not self.backend.send_text(msg.type_into, text):
            logger.info("could not type into the pane", extra={"session": msg.type_into})
        self.mail(
            msg.to,
            msg.type,
            msg.task_id,
            fields,
            importance=msg.importance,
            ack_required=msg.ack_required,
            subject=msg.subject,
            body=msg.body,
        )

    def mail(
        self,
        to: str,
        mtype: MessageType,
        task_id: str,
        fields: Fields,
        *,
        subject: str = "",
        body: str = "",
        importance: t.Literal["low", "normal", "high", "urgent"] = "normal",
        ack_required: bool = False,
    ) -> None:
        """Send one message; mail to a worker is advisory, so a failure is logged, not raised."""
        if not fields.bead_id:
            fields = fields.model_copy(update={"bead_id": task_id})
        try:
            env = Envelope.model_validate(
                {
                    "from": MAYOR,
                    "to": [to],
                    "type": mtype,
                    "thread_id": task_id,
                    "run_id": self.run_id,
                    "subject": subject or f"[{task_id}] {mtype.value}",
                    "fields": fields,
                    "body_md": body,
                    "importance": importance,
                    "ack_required": ack_required,
                }
            )
            if not body:
                env = env.model_copy(update={"body_md": render_body(mtype, env.fields)})
            self.store.send(env)
        except Exception:  # never let advisory mail stop the run
            logger.exception("failed to send %s", mtype.value, extra={"task_id": task_id})
