"""The status bar of a swarm session: which run, task, state and attempt it is (tmux formats)."""

from __future__ import annotations

import pathlib
import shlex
import sys
import typing as t


def format_escape(text: str) -> str:
    """Keep ``#`` literal in strings tmux expands as formats (pipe-pane, run-shell, status)."""
    return text.replace("#", "##")


STATUS_LEFT_LENGTH: t.Final = 60
_STATE_OF: t.Final = (
    "import json,sys;"
    "t=json.load(open(sys.argv[1]))['tasks'].get(sys.argv[2],dict());"
    "print(t.get('state','?'),*(['pane',t['pane']] if t.get('pane') else []))"
)
"""Prints a task's state (and pane state) from ``state.json``; nothing when it cannot."""


def status_left(name: str, env: t.Mapping[str, str]) -> str:
    """The session's status-left: ``[swarm RUN TASK STATE try N]`` for a worker, the state
    read from ``state.json`` by a ``#()`` job each ``status-interval`` (tmux runs it only while
    a client shows the status line); the session name for any other session (the mayor's)."""
    run, task, home = env.get("SWARM_RUN"), env.get("SWARM_TASK"), env.get("SWARM_HOME")
    if not (run and task and home):
        return format_escape(f"[{name}] ")
    state_file = str(pathlib.Path(home) / "runs" / run / "state.json")
    job = shlex.join([sys.executable, "-c", _STATE_OF, state_file, task]) + " 2>/dev/null"
    attempt = env.get("SWARM_ATTEMPT", "1")
    label = format_escape(f"swarm {run} {task}")
    return f"[{label} #({format_escape(job)}) try {format_escape(attempt)}] "
