"""Agent Mail exceptions.

AgentMailError
 ├── BadInput (also ValueError)        bad name, unknown recipient, oversize body, bad envelope
 │    ├── UnknownAgent
 │    └── IdempotencyConflict
 ├── LeaseConflict                      a reservation overlaps one held by another agent
 └── NotHolder                          release/renew by an agent that does not hold the lease
"""

from __future__ import annotations


class AgentMailError(Exception):
    """Base of every Agent Mail error."""

    exit_code = 1
