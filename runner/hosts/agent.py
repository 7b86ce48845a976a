"""``swarm host serve --root DIR``: the remote half of a host, run by the mayor over ssh.

It speaks JSON lines on stdin/stdout: one request ``{"id": N, "op": ..., ...}`` gets one reply
``{"id": N, "ok": {...}}`` or ``{"id": N, "error": "...", "kind": "..."}``; between replies it
writes ``{"event": "changed"}`` when a worker's outbox, results or escapes changed or a pane
died (a wake-up: the mayor then asks ``sync``). Every request is idempotent and all state is
on disk under the root (:class:`runner.hosts.layout.Layout`) or in the host's private tmux
server, so the agent may die with its connection at any time: workers go on in tmux, and the
next ``swarm host serve`` the mayor starts answers from where things are. Nothing is lost or
done twice: outgoing mail stays in a worker's outbox until the mayor acks it (and its
delivery is idempotent by its outbox id), incoming mail is delivered under an idempotency key,
and logs and escapes are read from offsets the mayor keeps.

The agent holds no key of the mayor's: outgoing mail is relayed as bytes, verified by the
mayor with the worker's key. Incoming mail is delivered into the worker's inbox signed with
the box's relay key (``.keys/mayor.key``, made by the mayor for that box only).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import pathlib
import shutil
import stat
import sys
import threading
import time
import typing as t

from agentmail.delivery import load_key
from agentmail.errors import AgentMailError
from agentmail.store import MailStore
from protocol.hosts import HOST_PROTOCOL
from protocol.ids import MAYOR
from protocol.messages import Envelope
from runner import git, proc, worktrees
from runner.actions import task_branch
from runner.agents import worker as agent_worker
from runner.errors import CommandError, RunnerError
from runner.hosts.layout import Layout
from runner.sandbox import Box
from runner.sessions import SessionExists, SessionSpec, TmuxBackend

logger = logging.getLogger(__name__)

CHUNK: t.Final = 256 << 10
"""Most bytes of one log or escapes file sent per sync (the rest comes with the next)."""
FILE_MAX: t.Final = 8 << 20
WATCH_EVERY: t.Final = 0.2
SETUP_TIMEOUT: t.Final = 1800.0
WHERE: t.Final = ("box", "clone")


class Refused(RunnerError):
    def __init__(self, message: str, kind: str = "error") -> None:
        self.kind = kind
        super().__init__(message)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


class HostAgent:
    """The requests of one ``serve`` process (see the module docstring)."""

    def __init__(self, root: pathlib.Path) -> None:
        root = root.absolute()
        root.mkdir(parents=True, exist_ok=True)
        self.layout = Layout.of(root)
        self.root = root
        notify = pathlib.Path(self.layout.notify)
        notify.mkdir(parents=True, exist_ok=True)
        self.tmux = TmuxBackend(self.layout.socket, notify_dir=notify)
        self.changed = threading.Event()
        self.tmux.set_exit_callback(lambda _name: self.changed.set())

    def close(self) -> None:
        self.tmux.close()

    def handle(self, request: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        op = request.get("op")
        method = getattr(self, f"op_{op}", None) if isinstance(op, str) else None
        if method is None:
            raise Refused(f"unknown op {op!r}", "usage")
        result: dict[str, t.Any] = method(request)
        return result

    # -- ops -------------------------------------------------------------------------------

    def op_hello(self, _req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {
            "protocol": HOST_PROTOCOL,
            "python": sys.executable,
            "root": str(self.root),
            "socket": self.layout.socket,
            "pid": os.getpid(),
            "path": os.environ.get("PATH", os.defpath),
        }

    def op_init(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The bare repository the mayor pushes into, with the repository's excludes."""
        bare = pathlib.Path(self.layout.bare)
        if not (bare / "HEAD").is_file():
            aside = bare.with_name(f".{bare.name}.creating")
            shutil.rmtree(aside, ignore_errors=True)
            proc.run("git", "init", "-q", "--bare", str(aside))
            aside.rename(bare)
        info = bare / "info"
        info.mkdir(exist_ok=True)
        (info / "exclude").write_text(str(req.get("exclude", "")))
        return {"bare": str(bare)}

    def op_start(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        run_id, task_id, worker = str(req["run"]), str(req["task"]), str(req["worker"])
        branch = task_branch(run_id, task_id)
        clone = pathlib.Path(self.layout.clone(run_id, task_id))
        box = self.layout.box(run_id, task_id, worker)
        box.prepare(())
        bare = pathlib.Path(self.layout.bare)
        worktrees.create_clone(bare, clone, branch, str(req["base"]))
        worktrees.sync_excludes(bare, clone)
        for where, rel, data, mode in req.get("files", ()):
            self._put(box if where == "box" else clone, rel, unb64(data), int(mode))
        store = MailStore(box.mail)  # the inbox and outbox ledgers (keys written above kept)
        store.register(worker)
        store.register(MAYOR)
        agent_worker.swarm_shim(self.root, sys.executable)  # <root>/bin/swarm
        env = {str(k): str(v) for k, v in dict(req.get("env", {})).items()}
        self._setup(box, clone, tuple(req.get("setup", ())), env)
        spec = SessionSpec(
            name=str(req["session"]),
            argv=tuple(str(a) for a in req["argv"]),
            cwd=clone,
            env=env,
            log_path=pathlib.Path(self.layout.pane_log(run_id, task_id)),
        )
        try:
            self.tmux.start(spec)
        except SessionExists as exc:
            raise Refused(str(exc), "exists") from None
        return {"clone": str(clone)}

    def op_session(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """A bare session (paths in the host's terms), for a backend user that is no worker."""
        spec = SessionSpec(
            name=str(req["name"]),
            argv=tuple(str(a) for a in req["argv"]),
            cwd=pathlib.Path(str(req["cwd"])),
            env={str(k): str(v) for k, v in dict(req.get("env", {})).items()},
            log_path=pathlib.Path(str(req["log"])),
        )
        try:
            self.tmux.start(spec)
        except SessionExists as exc:
            raise Refused(str(exc), "exists") from None
        return {}

    def op_statuses(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        found = self.tmux.statuses(str(req.get("prefix", "")))
        return {"sessions": {name: list(status) for name, status in found.items()}}

    def op_kill(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        self.tmux.kill(str(req["name"]))
        return {}

    def op_capture(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {"text": self.tmux.capture(str(req["name"]), int(req.get("lines", 50)))}

    def op_screen(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {"text": self.tmux.screen(str(req["name"]))}

    def op_send_text(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        return {"sent": self.tmux.send_text(str(req["name"]), str(req["text"]))}

    def op_sync(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Per task: deliver its incoming mail, then hand over its outbox, result, new log and
        escape bytes, and (read last, so an offer in the mail is never newer than them) its
        branch tip and HEAD."""
        out: dict[str, t.Any] = {}
        for task_id, ask in dict(req.get("tasks", {})).items():
            run_id, worker = str(ask["run"]), str(ask["worker"])
            box = self.layout.box(run_id, task_id, worker)
            if not pathlib.Path(box.root).is_dir():
                out[task_id] = {"missing": True}
                continue
            self._deliver(box, ask.get("inbox", ()))
            clone = pathlib.Path(self.layout.clone(run_id, task_id))
            log = pathlib.Path(self.layout.pane_log(run_id, task_id))
            out[task_id] = {
                "mail": self._outbox(box),
                "result": self._result(box, task_id),
                "log": b64(_read_from(log, int(ask.get("log", 0)))),
                "escapes": b64(_read_from(box.escapes, int(ask.get("escapes", 0)))),
                **_heads(clone, task_branch(run_id, task_id)),
            }
        return {"tasks": out}

    def op_ack(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """The mayor stored these: remove them from the boxes."""
        for task_id, done in dict(req.get("tasks", {})).items():
            box = self.layout.box(str(done["run"]), task_id, str(done["worker"]))
            for name in done.get("mail", ()):
                if "/" not in name and name not in (".", ".."):
                    with contextlib.suppress(FileNotFoundError):
                        (box.outbox / "new" / name).unlink()
            if done.get("result"):
                with contextlib.suppress(FileNotFoundError):
                    (box.results / f"{task_id}.json").unlink()
        return {}

    def op_remove(self, req: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
        """Remove a task's clone and box (``swarm clean``), its session first."""
        run_id, task_id = str(req["run"]), str(req["task"])
        if req.get("session"):
            self.tmux.kill(str(req["session"]))
        for path in (self.layout.clone(run_id, task_id), self.layout.box_root(run_id, task_id)):
            shutil.rmtree(pathlib.Path(path), ignore_errors=True)
        return {}

    # -- helpers ---------------------------------------------------------------------------

    def _put(self, base: Box | pathlib.Path, rel: str, data: bytes, mode: int) -> None:
        root = pathlib.Path(base.root if isinstance(base, Box) else base)
        parts = pathlib.PurePosixPath(rel).parts
        if not parts or rel.startswith("/") or ".." in parts:
            raise Refused(f"refusing to write {rel!r}: not a path inside the box or clone", "usage")
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        tmp.replace(target)

    def _setup(
        self, box: Box, clone: pathlib.Path, commands: t.Sequence[str], env: t.Mapping[str, str]
    ) -> None:
        """The plan's setup commands in the clone, once per clone (until they all pass)."""
        done = box.root / "setup.done"
        if not commands or done.exists():
            return
        with (box.root / "setup.log").open("a") as log:
            for command in commands:
                result = proc.run(
                    "sh", "-c", command, cwd=clone, env=env, check=False, timeout=SETUP_TIMEOUT
                )
                code = result.returncode
                log.write(f"$ {command}\n{result.stdout}{result.stderr}[exit {code}]\n")
                if result.returncode != 0:
                    last = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
                    raise Refused(
                        f"setup command {command!r} exited {result.returncode}: {last[0][:200]}"
                    )
        done.touch()

    def _deliver(self, box: Box, inbox: t.Iterable[str]) -> None:
        """The mayor's mail to this worker, into its inbox, once each (idempotency key)."""
        envelopes = list(inbox)
        if not envelopes:
            return
        store = MailStore(box.mail)
        try:
            relay_key = load_key(store.key_path(MAYOR))
        except OSError:
            return  # no relay key yet: the next start writes it
        for text in envelopes:
            env = Envelope.model_validate_json(text)
            fresh = env.model_copy(
                update={"id": "", "seq": 0, "sig": "", "idempotency_key": f"relay:{env.id}"[:200]}
            )
            try:
                store.send(fresh, key=relay_key)
            except AgentMailError as exc:
                logger.warning("could not deliver relayed mail: %s", exc)

    def _outbox(self, box: Box) -> list[list[str]]:
        new = box.outbox / "new"
        found: list[list[str]] = []
        with contextlib.suppress(FileNotFoundError):
            for name in _names(new):
                data = _read_regular(new / name)
                if data is not None:
                    found.append([name, b64(data)])
        return found

    def _result(self, box: Box, task_id: str) -> str | None:
        data = _read_regular(box.results / f"{task_id}.json")
        return None if data is None else b64(data)

    def fingerprint(self) -> tuple[t.Any, ...]:
        """What the watcher compares: every box's outbox names, results and escapes size."""
        marks: list[t.Any] = []
        boxes = self.root / "boxes"
        with contextlib.suppress(FileNotFoundError):
            for run in _names(boxes):
                with contextlib.suppress(OSError):
                    for task in _names(boxes / run):
                        swarm = boxes / run / task / "swarm"
                        marks.append((run, task, *_names(swarm / "mail" / MAYOR / "new")))
                        marks.append(_names(swarm / "results"))
                        with contextlib.suppress(OSError):
                            marks.append((swarm / "scope-escapes.jsonl").stat().st_size)
        return tuple(marks)


def _names(folder: pathlib.Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(p.name for p in folder.iterdir()))
    except OSError:
        return ()


def _read_regular(path: pathlib.Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > FILE_MAX:
            return None
        return fh.read()


def _read_from(path: pathlib.Path, offset: int) -> bytes:
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if offset > size:
                offset = 0  # the file was replaced: the mayor's mirror starts over
            fh.seek(offset)
            return fh.read(CHUNK)
    except OSError:
        return b""


def _heads(clone: pathlib.Path, branch: str) -> dict[str, str | None]:
    if not (clone / ".git").is_dir():
        return {"tip": None, "head": None}
    found = {}
    for key, ref in (("tip", f"refs/heads/{branch}"), ("head", "HEAD")):
        try:
            found[key] = git.resolve(clone, ref)
        except CommandError:
            found[key] = None
    return found


def serve(root: pathlib.Path, stdin: t.BinaryIO, stdout: t.BinaryIO) -> int:
    """Answer requests from ``stdin`` until it closes; 0 then."""
    agent = HostAgent(root)
    lock = threading.Lock()
    stop = threading.Event()

    def emit(doc: t.Mapping[str, t.Any]) -> None:
        line = json.dumps(doc, separators=(",", ":")).encode() + b"\n"
        with lock:
            try:
                stdout.write(line)
                stdout.flush()
            except (BrokenPipeError, ValueError, OSError):
                stop.set()

    def watch() -> None:
        last = agent.fingerprint()
        while not stop.wait(WATCH_EVERY):
            now = agent.fingerprint()
            if now != last or agent.changed.is_set():
                agent.changed.clear()
                last = now
                emit({"event": "changed"})

    watcher = threading.Thread(target=watch, name="swarm-host-watch", daemon=True)
    watcher.start()
    try:
        for raw in iter(stdin.readline, b""):
            if not raw.strip():
                continue
            try:
                request = json.loads(raw)
            except ValueError:
                emit({"id": None, "error": "not a JSON line", "kind": "usage"})
                continue
            rid = request.get("id") if isinstance(request, dict) else None
            started = time.monotonic()
            try:
                emit({"id": rid, "ok": agent.handle(request)})
            except Refused as exc:
                emit({"id": rid, "error": str(exc), "kind": exc.kind})
            except (RunnerError, OSError, ValueError, KeyError, TypeError) as exc:
                emit({"id": rid, "error": f"{type(exc).__name__}: {exc}", "kind": "error"})
            logger.debug("handled %s in %.3fs", request.get("op"), time.monotonic() - started)
            if stop.is_set():
                break
    finally:
        stop.set()
        agent.close()
    return 0
