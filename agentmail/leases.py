"""File reservations (leases): deny-on-conflict, with expiry, renewal and release.

Every lease lives in one JSON document, ``<root>/.leases/leases.json``, read and replaced
atomically under an ``flock`` on ``<root>/.leases/lock``: check-and-grant is one critical section
across processes, so of N processes racing for one exclusive lease exactly one wins. Two leases
conflict when they belong to different agents, both are live, at least one is exclusive, and a
pattern of one overlaps a pattern of the other (:func:`protocol.manifest.overlaps`).
"""

from __future__ import annotations

import json
import logging
import pathlib
import time
import typing as t
from datetime import UTC, datetime

from pydantic import Field

from agentmail import ulid
from agentmail.errors import BadInput, LeaseConflict, NotHolder, UnknownLease
from agentmail.fs import locked, write_atomic
from agentmail.store import check_agent
from protocol.base import Id, Model
from protocol.manifest import normalize, overlaps

logger = logging.getLogger(__name__)

DEFAULT_TTL: t.Final = 3600.0


class Lease(Model):
    """One reservation, as stored in ``leases.json``."""

    id: str
    agent: Id
    patterns: tuple[str, ...] = Field(min_length=1)
    exclusive: bool = True
    reason: str = ""
    created: float
    expires: float

    def live(self, now: float) -> bool:
        return self.expires > now

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)


class _Document(Model):
    v: t.Literal[1] = 1
    leases: tuple[Lease, ...] = ()


class Leases:
    """Reservations of path patterns under a mail root (``<root>/.leases/``)."""

    def __init__(
        self,
        root: pathlib.Path,
        *,
        case_sensitive: bool = True,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.root = pathlib.Path(root)
        self.dir = self.root / ".leases"
        self.case_sensitive = case_sensitive
        self._clock = clock
        self._ids = ulid.UlidGenerator(clock)

    @property
    def path(self) -> pathlib.Path:
        return self.dir / "leases.json"

    def _load(self) -> list[Lease]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        return list(_Document.model_validate_json(raw).leases)

    def _save(self, leases: t.Sequence[Lease]) -> None:
        doc = _Document(leases=tuple(leases))
        write_atomic(self.path, doc.model_dump_json(indent=1).encode())

    def _transaction(self) -> t.ContextManager[int]:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return locked(self.dir / "lock")

    def reserve(
        self,
        agent: str,
        patterns: t.Sequence[str],
        *,
        exclusive: bool = True,
        ttl: float = DEFAULT_TTL,
        reason: str = "",
    ) -> Lease:
        """Grant a lease on ``patterns`` to ``agent``, or raise :class:`LeaseConflict`."""
        check_agent(agent)
        if isinstance(patterns, str):
            patterns = [patterns]
        if not patterns:
            raise BadInput("a lease needs at least one path pattern")
        if ttl <= 0:
            raise BadInput(f"lease ttl must be positive, not {ttl}")
        try:
            wanted = tuple(dict.fromkeys(normalize(p) for p in patterns))
        except ValueError as exc:
            raise BadInput(f"lease pattern: {exc}") from None
        with self._transaction():
            now = self._clock()
            live = [lease for lease in self._load() if lease.live(now)]
            conflicts = [
                (mine, theirs, lease.agent, lease.id)
                for lease in live
                if lease.agent != agent and (exclusive or lease.exclusive)
                for mine in wanted
                for theirs in lease.patterns
                if overlaps(mine, theirs, case_sensitive=self.case_sensitive)
            ]
            if conflicts:
                raise LeaseConflict(agent, conflicts)
            lease = Lease(
                id=self._ids.new(),
                agent=agent,
                patterns=wanted,
                exclusive=exclusive,
                reason=reason,
                created=now,
                expires=now + ttl,
            )
            self._save([*live, lease])
        logger.info("granted lease", extra={"agent": agent, "lease_id": lease.id})
        return lease

    def renew(self, lease_id: str, agent: str, ttl: float = DEFAULT_TTL) -> Lease:
        """Extend a live lease of ``agent`` to ``ttl`` seconds from now."""
        if ttl <= 0:
            raise BadInput(f"lease ttl must be positive, not {ttl}")
        with self._transaction():
            now = self._clock()
            live = [lease for lease in self._load() if lease.live(now)]
            for i, lease in enumerate(live):
                if lease.id == lease_id:
                    if lease.agent != agent:
                        raise NotHolder(lease_id, agent, lease.agent)
                    renewed = lease.model_copy(update={"expires": max(lease.expires, now + ttl)})
                    live[i] = renewed
                    self._save(live)
                    return renewed
        raise UnknownLease(lease_id)

    def release(self, lease_id: str | None, agent: str) -> int:
        """Release one lease (or, with ``lease_id=None``, every lease of ``agent``).

        Returns how many were released. Releasing another agent's lease raises
        :class:`NotHolder`; an unknown or expired id raises :class:`UnknownLease`.
        """
        with self._transaction():
            now = self._clock()
            live = [lease for lease in self._load() if lease.live(now)]
            if lease_id is None:
                keep = [lease for lease in live if lease.agent != agent]
            else:
                match = [lease for lease in live if lease.id == lease_id]
                if not match:
                    raise UnknownLease(lease_id)
                if match[0].agent != agent:
                    raise NotHolder(lease_id, agent, match[0].agent)
                keep = [lease for lease in live if lease.id != lease_id]
            released = len(live) - len(keep)
            self._save(keep)
        logger.info("released leases", extra={"agent": agent, "count": released})
        return released

    def list(self) -> tuple[Lease, ...]:
        """Live (unexpired) leases, oldest first."""
        now = self._clock()
        return tuple(lease for lease in self._load() if lease.live(now))

    def holders(self, path: str) -> tuple[Lease, ...]:
        """Live leases whose patterns overlap ``path``."""
        return tuple(
            lease
            for lease in self.list()
            if any(overlaps(path, p, case_sensitive=self.case_sensitive) for p in lease.patterns)
        )


def dump(lease: Lease) -> dict[str, t.Any]:
    """A lease as a JSON-ready dict with RFC 3339 times (for the CLI)."""
    doc: dict[str, t.Any] = json.loads(lease.model_dump_json())
    doc["created_at"] = datetime.fromtimestamp(lease.created, UTC).isoformat()
    doc["expires_at"] = lease.expires_at.isoformat()
    return doc
