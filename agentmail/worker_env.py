"""The worker environment (DESIGN.md "Worker environment") and the files a worker writes
besides mail: ``results/<task>.json`` and ``scope-escapes.jsonl``."""

from __future__ import annotations

import json
import os
import pathlib
import typing as t

from agentmail.errors import BadInput, NotInWorker
from agentmail.fs import append_line, write_atomic
from protocol.ids import check_id

if t.TYPE_CHECKING:
    from protocol.results import ScopeEscape, WorkerResult

VARIABLES: t.Final = (
    "SWARM_HOME",
    "SWARM_RUN",
    "SWARM_TASK",
    "SWARM_WORKER",
    "SWARM_MAYOR",
    "SWARM_KEY_FILE",
    "SWARM_BRIEF",
    "SWARM_WORKTREE",
    "SWARM_ATTEMPT",
)
REQUIRED: t.Final = ("SWARM_HOME", "SWARM_RUN", "SWARM_TASK", "SWARM_WORKER", "SWARM_MAYOR")


class WorkerEnv(t.NamedTuple):
    """What an agent in a worker pane knows about itself (a NamedTuple, not a dataclass: the
    dataclasses module costs a report from a fresh process more than all the rest of it)."""

    home: pathlib.Path
    run: str
    task: str
    worker: str
    mayor: str
    key_file: pathlib.Path | None = None
    brief: pathlib.Path | None = None
    worktree: pathlib.Path | None = None
    attempt: int = 1

    @classmethod
    def from_environ(cls, environ: t.Mapping[str, str] | None = None) -> WorkerEnv:
        """Read the ``SWARM_*`` variables; raise :class:`NotInWorker` naming a missing one."""
        env = os.environ if environ is None else environ
        for name in REQUIRED:
            if not env.get(name):
                raise NotInWorker(name)
        for name in ("SWARM_RUN", "SWARM_TASK", "SWARM_WORKER", "SWARM_MAYOR"):
            try:
                check_id(env[name])
            except ValueError as exc:
                raise BadInput(f"${name}: {exc}") from None
        attempt_text = env.get("SWARM_ATTEMPT") or "1"
        if not attempt_text.isdigit():
            raise BadInput(f"$SWARM_ATTEMPT must be a positive integer, not {attempt_text!r}")

        def path(name: str) -> pathlib.Path | None:
            value = env.get(name)
            return pathlib.Path(value) if value else None

        return cls(
            home=pathlib.Path(env["SWARM_HOME"]),
            run=env["SWARM_RUN"],
            task=env["SWARM_TASK"],
            worker=env["SWARM_WORKER"],
            mayor=env["SWARM_MAYOR"],
            key_file=path("SWARM_KEY_FILE"),
            brief=path("SWARM_BRIEF"),
            worktree=path("SWARM_WORKTREE"),
            attempt=int(attempt_text),
        )

    def to_environ(self) -> dict[str, str]:
        """The variables to set in a worker pane (the inverse of :meth:`from_environ`)."""
        env = {
            "SWARM_HOME": str(self.home),
            "SWARM_RUN": self.run,
            "SWARM_TASK": self.task,
            "SWARM_WORKER": self.worker,
            "SWARM_MAYOR": self.mayor,
            "SWARM_ATTEMPT": str(self.attempt),
        }
        for name, value in (
            ("SWARM_KEY_FILE", self.key_file),
            ("SWARM_BRIEF", self.brief),
            ("SWARM_WORKTREE", self.worktree),
        ):
            if value is not None:
                env[name] = str(value)
        return env

    @property
    def mail_root(self) -> pathlib.Path:
        return self.home / "mail"

    @property
    def results_dir(self) -> pathlib.Path:
        return self.home / "results"

    @property
    def escapes_path(self) -> pathlib.Path:
        return self.home / "scope-escapes.jsonl"


Doc = t.Mapping[str, t.Any]


def write_result(home: pathlib.Path, result: WorkerResult | Doc) -> pathlib.Path:
    """Write ``<home>/results/<issue_id>.json`` atomically; return its path.

    ``result`` is the model or its ``model_dump(mode="json")`` (the text is the same: what
    ``model_dump_json(indent=2, exclude_none=True)`` writes)."""
    if isinstance(result, t.Mapping):
        kept = {k: v for k, v in result.items() if v is not None}
    else:
        kept = result.model_dump(mode="json", exclude_none=True)
    results = home / "results"
    results.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = results / f"{check_id(kept['issue_id'])}.json"
    write_atomic(path, (json.dumps(kept, indent=2, ensure_ascii=False) + "\n").encode())
    return path


def append_escape(home: pathlib.Path, escape: ScopeEscape | Doc) -> pathlib.Path:
    """Append one line to ``<home>/scope-escapes.jsonl`` (one ``write()`` under ``flock``);
    ``escape`` is the model or its ``model_dump(mode="json")``."""
    doc = escape if isinstance(escape, t.Mapping) else escape.model_dump(mode="json")
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "scope-escapes.jsonl"
    append_line(path, json.dumps(doc, separators=(",", ":"), ensure_ascii=False))
    return path
