"""Sessions on other hosts: :class:`RemoteBackend` (one host) and :class:`HostsBackend` (the
mayor's one backend, routing each session to the host it runs on).

A remote worker has two checkouts: its **clone on the host** (where the agent works, made by
``swarm host serve`` from a bare repository the mayor pushes the task's start into) and its
**mirror** on the mayor's machine: the local clone at the task's recorded worktree, as
``--isolation clone`` makes it. Every sync fetches the host clone's branch tip and HEAD into
the mirror whenever they move, so everything local works on the mirror unchanged: the offer
is verified and fetched from it (:func:`runner.isolation.take_offer`), validation runs in it,
``swarm clean`` saves its commits, and a task re-placed on another host starts from it.
Work a worker committed is therefore on the mayor's machine within a sync, whatever later
happens to its host.

The relay (:meth:`RemoteBackend.sync`), on every mayor step, per running task on the host:
mail to the worker goes out (the host delivers it once, by its id); the pane log, escape lines,
result file and outbox messages come back. They are written into the task's local box
(``runs/<run>/sandbox/<task>/``, laid out as a sandboxed worker's), acked (the host then
removes them), and handed to :class:`runner.boxmail.Collector`, which delivers a message
only if it is from that worker and signed with that worker's real key, exactly as for a
sandboxed worker: the relay holds no key, so neither it nor the host can forge mail. A copy
that comes back twice (a mayor killed before its ack) is delivered once: delivery is
idempotent by its outbox id.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import queue
import re
import secrets
import threading
import time
import typing as t

from agentmail.fs import write_atomic
from agentmail.store import MailStore
from protocol.hosts import LOCAL, HostSpec
from protocol.state import ACTIVE_TASK_STATES, RunState, TaskRecord
from runner import git
from runner.actions import worker_name
from runner.agents import worker as agent_worker
from runner.boxmail import Collector
from runner.errors import CommandError, RunnerError
from runner.hosts.agent import b64, unb64
from runner.hosts.layout import Layout
from runner.hosts.link import HostLink, HostRefused, HostUnreachable
from runner.paths import RunPaths
from runner.sandbox import Box
from runner.sessions.base import (
    MISSING,
    ExitCallback,
    SessionBackend,
    SessionExists,
    SessionSpec,
    SessionStatus,
)

logger = logging.getLogger(__name__)

START_TIMEOUT: t.Final = 1900.0
"""Seconds a start may take on the host (its setup commands may install dependencies)."""
ROUTINE: t.Final = 10.0
"""Seconds a routine request (statuses, sync, kill, capture) may take before the host counts
as down: the mayor's loop waits that long for a host that stopped answering."""
STARTING: t.Final = SessionStatus(exists=True, alive=True, exit_status=None, pid=None)
"""How a session whose start is still under way looks to the mayor."""


class WorkerJob(t.NamedTuple):
    """A worker start as the launcher prepared it, in local terms (mapped by the backend)."""

    spec: SessionSpec
    run_id: str
    task_id: str
    branch: str
    repo: pathlib.Path
    mirror: pathlib.Path
    swarm_home: pathlib.Path
    key_file: pathlib.Path
    plan: pathlib.Path
    brief: pathlib.Path
    python: str
    setup: tuple[str, ...] = ()
    ship: tuple[str, ...] = ()
    """Files the mayor wrote into the mirror's work tree, copied into the host's clone."""


def path_mapper(pairs: t.Mapping[str, str]) -> t.Callable[[str], str]:
    """Replace each local path (longest first, in one pass) by its remote counterpart."""
    if not pairs:
        return lambda text: text
    keys = sorted(pairs, key=len, reverse=True)
    pattern = re.compile("|".join(re.escape(k) for k in keys))
    return lambda text: pattern.sub(lambda m: pairs[m.group(0)], text)


class RemoteBackend:
    """The sessions of one host, driven through its ``swarm host serve``.

    When the host cannot be reached, :meth:`statuses` answers what it last saw (its workers
    go on over there); :class:`HostsBackend` says when the host has been down for longer than
    its grace period, and the mayor then re-places its tasks."""

    def __init__(self, host: HostSpec) -> None:
        self.host = host.check()
        assert host.root is not None
        self.layout = Layout.of(host.root)
        self.link = HostLink(host, on_event=self._event)
        self._callback: ExitCallback | None = None
        self._seen: dict[str, SessionStatus] = {}
        self._inbox: dict[str, str | None] = {}  # task -> mail cursor of the worker's inbox
        self._heads: dict[str, tuple[str | None, str | None]] = {}
        self._bare_ready = False
        # starts run on a thread of their own (the mayor's loop goes on meanwhile): a pending
        # start counts as a live session, a failed one is handed to the mayor to record
        self._lock = threading.Lock()
        self._pending: dict[str, WorkerJob] = {}
        self._failed: list[tuple[str, str]] = []
        self._jobs: queue.Queue[WorkerJob | None] = queue.Queue()
        self._starter: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.host.name

    @property
    def seen(self) -> dict[str, SessionStatus]:
        """The sessions the host reported last (what it runs, as far as we know)."""
        return dict(self._seen)

    def _event(self) -> None:
        if self._callback is not None:
            try:
                self._callback("")  # a wake-up: the mayor asks statuses and syncs
            except Exception:
                logger.exception("exit callback failed", extra={"host": self.name})

    # -- SessionBackend ----------------------------------------------------------------------

    def start(self, spec: SessionSpec) -> None:
        """Start a session whose spec is already in the host's terms (its paths there)."""
        try:
            self.link.request(
                "session",
                name=spec.name,
                argv=list(spec.argv),
                cwd=str(spec.cwd),
                env=dict(spec.env),
                log=str(spec.log_path),
            )
        except HostRefused as exc:
            if exc.kind == "exists":
                raise SessionExists(spec.name) from None
            raise

    def status(self, name: str) -> SessionStatus:
        return self.statuses(name).get(name, MISSING)

    def statuses(self, prefix: str) -> dict[str, SessionStatus]:
        with self._lock:
            pending = {n: STARTING for n in self._pending if n.startswith(prefix)}
        try:
            reply = self.link.request("statuses", prefix=prefix, timeout=ROUTINE)
        except HostUnreachable:
            return {n: s for n, s in self._seen.items() if n.startswith(prefix)} | pending
        found = {name: SessionStatus(*values) for name, values in dict(reply["sessions"]).items()}
        self._seen = {n: s for n, s in self._seen.items() if not n.startswith(prefix)} | found
        return pending | found

    def list_sessions(self, prefix: str) -> list[str]:
        return sorted(self.statuses(prefix))

    def kill(self, name: str) -> None:
        try:
            self.link.request("kill", name=name, timeout=ROUTINE)
        except HostUnreachable as exc:
            logger.warning("could not kill %s: %s", name, exc, extra={"session": name})
        self._seen.pop(name, None)

    def capture(self, name: str, lines: int = 50) -> str:
        return str(self._quiet("capture", "", name=name, lines=lines).get("text", ""))

    def screen(self, name: str) -> str:
        return str(self._quiet("screen", "", name=name).get("text", ""))

    def send_text(self, name: str, text: str) -> bool:
        return bool(self._quiet("send_text", False, name=name, text=text).get("sent", False))

    def set_exit_callback(self, callback: ExitCallback) -> None:
        self._callback = callback

    def close(self) -> None:
        if self._starter is not None:
            self._jobs.put(None)
            self._starter.join(timeout=START_TIMEOUT)
        self.link.close(master=True)

    # -- starts on their own thread ----------------------------------------------------------

    def submit(self, job: WorkerJob) -> None:
        """Start ``job`` soon (:meth:`start_worker` on this host's starter thread); until it
        has, its session counts as alive; if it fails, :meth:`failures` says why."""
        with self._lock:
            self._pending[job.spec.name] = job
            if self._starter is None:
                self._starter = threading.Thread(
                    target=self._start_jobs, name=f"swarm-start-{self.name}", daemon=True
                )
                self._starter.start()
        self._jobs.put(job)

    def failures(self) -> list[tuple[str, str]]:
        """(task id, why) of each start that failed since the last call."""
        with self._lock:
            failed, self._failed = self._failed, []
        return failed

    def _start_once_more(self, job: WorkerJob) -> None:
        """:meth:`start_worker`, again once after a cut connection (every step of a start is
        idempotent: the clone is adopted, the files rewritten, the session replaced)."""
        for attempt in (1, 2):
            try:
                try:
                    self.start_worker(job)
                except SessionExists:  # an agent still alive after offering: start afresh
                    self.kill(job.spec.name)
                    self.start_worker(job)
                return
            except (HostUnreachable, CommandError) as exc:
                if attempt == 2 or self.link.down_since is not None:
                    raise
                logger.info("a start on %s was cut (%s): once more", self.name, exc)

    def _start_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._start_once_more(job)
            except (RunnerError, OSError) as exc:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                with self._lock:
                    self._failed.append((job.task_id, reason))
            except Exception as exc:  # never lose a start silently
                logger.exception("a start on host %s failed", self.name)
                with self._lock:
                    self._failed.append((job.task_id, f"{type(exc).__name__}: {exc}"))
            finally:
                with self._lock:
                    self._pending.pop(job.spec.name, None)
                self._event()

    def _quiet(self, op: str, default: t.Any, **args: t.Any) -> dict[str, t.Any]:
        try:
            return self.link.request(op, timeout=ROUTINE, **args)
        except (HostUnreachable, HostRefused) as exc:
            logger.warning("%s on host %s failed: %s", op, self.name, exc)
            return {"text": default, "sent": default}

    # -- a worker's start ------------------------------------------------------------------

    def start_worker(self, job: WorkerJob) -> None:
        """Push the task's start, ship the worker's files and start its session there."""
        hello = self.link.request("hello")
        worker = worker_name(job.task_id)
        box = self.layout.box(job.run_id, job.task_id, worker)
        clone = self.layout.clone(job.run_id, job.task_id)
        if not self._bare_ready:
            exclude = git.common_dir(job.repo) / "info" / "exclude"
            text = exclude.read_text() if exclude.is_file() else ""
            self.link.request("init", exclude=text)
            self._bare_ready = True
        start = git.resolve(job.mirror, f"refs/heads/{job.branch}")
        if start is None:
            raise CommandError(("git",), 128, "", f"{job.mirror} has no branch {job.branch}")
        git.push_url(
            job.mirror,
            self.link.ssh.url(self.layout.bare),
            f"{start}:refs/heads/{job.branch}",
            env=self.link.ssh.git_env(),
        )
        shim = agent_worker.shim_dir(job.swarm_home)
        mapped = path_mapper(
            {
                str(job.mirror): str(clone),
                str(shim): str(self.layout.shim_dir),
                str(job.swarm_home): str(box.swarm_home),
                job.python: str(hello["python"]),
            }
        )
        env = {k: mapped(v) for k, v in job.spec.env.items()}
        env["PATH"] = f"{self.layout.shim_dir}:{hello['path']}"
        key = _relay_key(job.brief.parent / "relay.key")  # signs mail into the box's inbox
        files: list[tuple[str, str, bytes, int]] = [
            ("box", _rel(box.key, box), job.key_file.read_bytes(), 0o600),
            ("box", _rel(box.mail / ".keys" / "mayor.key", box), key.encode(), 0o600),
            ("box", _rel(box.plan, box), job.plan.read_bytes(), 0o644),
        ]
        brief = _rel(_under(job.brief, job.swarm_home, box.swarm_home), box)
        files.append(("box", brief, mapped(job.brief.read_text()).encode(), 0o644))
        for rel in job.ship:
            local = job.mirror / rel
            if local.is_file():
                files.append(("clone", rel, mapped(local.read_text()).encode(), 0o644))
        try:
            self.link.request(
                "start",
                timeout=START_TIMEOUT,
                run=job.run_id,
                task=job.task_id,
                worker=worker,
                session=job.spec.name,
                base=start,
                argv=[mapped(a) for a in job.spec.argv],
                env=env,
                files=[[where, rel, b64(data), mode] for where, rel, data, mode in files],
                setup=list(job.setup),
            )
        except HostRefused as exc:
            if exc.kind == "exists":
                raise SessionExists(job.spec.name) from None
            raise
        self._heads.pop(job.task_id, None)
        self._inbox.pop(job.task_id, None)

    # -- the relay -------------------------------------------------------------------------

    def sync(
        self,
        records: t.Sequence[TaskRecord],
        *,
        run: RunPaths,
        run_id: str,
        store: MailStore,
        collector: Collector,
    ) -> None:
        """One round of the relay for ``records`` (this host's active tasks); a host that
        cannot be reached is skipped (what it holds waits there)."""
        if not records:
            return
        asks: dict[str, dict[str, t.Any]] = {}
        cursors: dict[str, str | None] = {}
        for rec in records:
            worker = worker_name(rec.id)
            box = Box.of(run, rec.id, worker)
            inbox: list[str] = []
            cursors[rec.id] = self._inbox.get(rec.id)
            if store.is_registered(worker):  # else its start was cut short: nothing for it
                page = store.list(worker, cursor=cursors[rec.id])
                cursors[rec.id] = page.next_cursor or cursors[rec.id]
                inbox = [m.envelope.model_dump_json() for m in page.messages]
            asks[rec.id] = {
                "run": run_id,
                "worker": worker,
                "log": _size(run.pane_log(rec.id)),
                "escapes": _size(box.escapes),
                "inbox": inbox,
            }
        try:
            reply = self.link.request("sync", tasks=asks, timeout=ROUTINE)
        except (HostUnreachable, HostRefused) as exc:
            logger.info("no sync with host %s: %s", self.name, exc)
            return
        acks: dict[str, dict[str, t.Any]] = {}
        for rec in records:
            doc = reply["tasks"].get(rec.id) or {}
            if doc.get("missing"):
                continue
            self._inbox[rec.id] = cursors[rec.id]
            taken = self._take(rec, doc, run, run_id)
            if taken is not None:
                acks[rec.id] = {"run": run_id, "worker": worker_name(rec.id), **taken}
        if acks:
            with contextlib.suppress(HostUnreachable, HostRefused):
                self.link.request("ack", tasks=acks, timeout=ROUTINE)  # else: sent again
        for task_id in acks:
            collector.collect_task(task_id)

    def _take(
        self, rec: TaskRecord, doc: t.Mapping[str, t.Any], run: RunPaths, run_id: str
    ) -> dict[str, t.Any] | None:
        """Write what the host sent for ``rec`` into the mirror and the local box; what to
        ack, or None when the mirror could not follow (the mail waits for the next sync)."""
        log = unb64(doc.get("log", ""))
        if log:
            path = run.pane_log(rec.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as out:
                out.write(log)
        heads = (doc.get("tip"), doc.get("head"))
        if heads[0] and heads != self._heads.get(rec.id):
            try:
                self._mirror(rec, run_id, str(heads[0]), heads[1])
            except CommandError as exc:
                logger.warning("could not mirror %s: %s", rec.id, exc, extra={"task_id": rec.id})
                return None
            self._heads[rec.id] = heads
        box = Box.of(run, rec.id, worker_name(rec.id))
        new = box.outbox / "new"
        new.mkdir(parents=True, exist_ok=True)
        names = []
        for name, data in doc.get("mail", ()):
            if "/" in name or name.startswith("."):
                continue
            write_atomic(new / name, unb64(data))
            names.append(name)
        result = doc.get("result")
        if result:
            box.results.mkdir(parents=True, exist_ok=True)
            write_atomic(box.results / f"{rec.id}.json", unb64(result))
        escapes = unb64(doc.get("escapes", ""))
        if escapes:
            box.escapes.parent.mkdir(parents=True, exist_ok=True)
            with box.escapes.open("ab") as out:
                out.write(escapes)
        return {"mail": names, "result": bool(result)}

    def _mirror(self, rec: TaskRecord, run_id: str, tip: str, head: str | None) -> None:
        """Bring the task's local mirror to the host clone's branch tip and HEAD."""
        mirror = pathlib.Path(rec.worktree or "")
        branch = rec.branch or ""
        url = self.link.ssh.url(self.layout.clone(run_id, rec.id))
        specs = [f"refs/heads/{branch}:refs/swarm/remote/tip"]
        if head and head != tip:
            specs.append("HEAD:refs/swarm/remote/head")
        git.fetch_url(mirror, url, *specs, env=self.link.ssh.git_env())
        git.checkout_branch_at(mirror, branch, tip)
        if head and head != tip:
            git.checkout_detached(mirror, head)
        logger.debug("mirrored %s at %s", rec.id, tip[:12], extra={"task_id": rec.id})


class HostsBackend:
    """The mayor's backend when the run has remote hosts: ``local`` sessions (and the
    mayor's own) go to the local backend, each worker's to the host its task was placed on."""

    def __init__(
        self,
        local: SessionBackend,
        remotes: t.Iterable[RemoteBackend],
        where: t.Mapping[str, str] | None = None,
    ) -> None:
        self.local = local
        self.remotes = {r.name: r for r in remotes}
        self.where: dict[str, str] = {s: h for s, h in (where or {}).items() if h}

    @classmethod
    def for_state(cls, state: RunState, local: SessionBackend) -> HostsBackend:
        where = {rec.session: rec.host for rec in state.tasks.values() if rec.session}
        remotes = [RemoteBackend(h) for h in state.hosts if h.remote]
        return cls(local, remotes, where)

    def remote(self, host: str) -> RemoteBackend | None:
        return self.remotes.get(host)

    def _route(self, name: str) -> SessionBackend | RemoteBackend:
        return self.remotes.get(self.where.get(name, LOCAL), self.local)

    def start_worker(self, host: str, job: WorkerJob) -> None:
        """Start ``job`` on ``host`` in the background (:meth:`RemoteBackend.submit`)."""
        self.where[job.spec.name] = host
        self.remotes[host].submit(job)

    def failures(self) -> list[tuple[str, str, str]]:
        """(host, task id, why) of each background start that failed since the last call."""
        return [
            (name, task_id, why)
            for name, remote in self.remotes.items()
            for task_id, why in remote.failures()
        ]

    def start(self, spec: SessionSpec) -> None:
        self.where.pop(spec.name, None)
        self.local.start(spec)

    def status(self, name: str) -> SessionStatus:
        return self._route(name).status(name)

    def statuses(self, prefix: str) -> dict[str, SessionStatus]:
        found = {
            n: s
            for n, s in self.local.statuses(prefix).items()
            if self.where.get(n, LOCAL) == LOCAL
        }
        hosts = {h for h in self.where.values() if h in self.remotes}
        for name in sorted(hosts):
            for session, status in self.remotes[name].statuses(prefix).items():
                if self.where.get(session) == name:
                    found[session] = status
        return found

    def list_sessions(self, prefix: str) -> list[str]:
        return sorted(self.statuses(prefix))

    def kill(self, name: str) -> None:
        self._route(name).kill(name)

    def capture(self, name: str, lines: int = 50) -> str:
        return self._route(name).capture(name, lines)

    def screen(self, name: str) -> str:
        return self._route(name).screen(name)

    def send_text(self, name: str, text: str) -> bool:
        return self._route(name).send_text(name, text)

    def set_exit_callback(self, callback: ExitCallback) -> None:
        self.local.set_exit_callback(callback)
        for remote in self.remotes.values():
            remote.set_exit_callback(callback)

    def close(self) -> None:
        self.local.close()
        for remote in self.remotes.values():
            remote.close()

    # -- the mayor's extra questions -------------------------------------------------------

    def down(self) -> set[str]:
        """Hosts that did not answer their last request."""
        return {n for n, r in self.remotes.items() if r.link.down_since is not None}

    def lost(self, now: float | None = None) -> dict[str, float]:
        """Hosts down for longer than their grace period, with how long."""
        now = time.time() if now is None else now
        out = {}
        for name, remote in self.remotes.items():
            since = remote.link.down_since
            if since is not None and now - since >= remote.host.grace:
                out[name] = now - since
        return out

    def reap(self) -> list[str]:
        """Kill each session a host still runs for a task since placed elsewhere (the host
        came back after its tasks were re-placed); the sessions killed."""
        killed = []
        for name, remote in self.remotes.items():
            for session in list(remote.seen):
                if self.where.get(session, name) != name:
                    remote.kill(session)
                    killed.append(session)
        return killed

    def relay(
        self, state: RunState, *, run: RunPaths, store: MailStore, collector: Collector
    ) -> None:
        """One relay round with every host that has active tasks."""
        for name, remote in self.remotes.items():
            records = [
                rec
                for rec in state.tasks.values()
                if rec.host == name and rec.state in ACTIVE_TASK_STATES and rec.worktree
            ]
            remote.sync(records, run=run, run_id=state.run_id, store=store, collector=collector)


def _relay_key(path: pathlib.Path) -> str:
    """The box's relay key, made once per task (mail already in its inbox stays valid)."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if not text:
        text = secrets.token_hex(32)
        write_atomic(path, (text + "\n").encode())
    return text + "\n"


def _rel(path: pathlib.Path, box: Box) -> str:
    return str(pathlib.Path(path).relative_to(box.root))


def _under(path: pathlib.Path, old: pathlib.Path, new: pathlib.Path) -> pathlib.Path:
    return new / pathlib.Path(path).relative_to(old)


def _size(path: pathlib.Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
