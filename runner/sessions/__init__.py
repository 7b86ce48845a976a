"""Where worker agents run: the :class:`SessionBackend` protocol and its two implementations.

:class:`TmuxBackend` (``--mode=distributed``) runs each agent in its own session of a private tmux
server (``tmux -L <socket>``), so a closed terminal or a dead mayor costs nothing and
``swarm attach`` can watch any worker. :class:`ProcessBackend` (``--mode=local``) runs plain child
processes. Both append the agent's whole output to a log file and call an exit callback soon
after an agent exits, so the mayor never busy-polls.

How a tmux worker starts (each step closes a race or a silent failure seen in peers), all in
ONE tmux client: a command list (``tmux new-session ... ; set-option ... ; ...``) that the server
runs in order, stopping at the first error, without interleaving other clients' commands and
without reading any pane or reaping any child in between (a command list is executed in one go
by the server's single thread; none of its commands waits):

1. ``new-session -d`` in the worktree, with the worker environment, running the agent under
   ``/bin/sh -c <wrapper> swarm-agent <argv...>`` in tmux's argv form: argv is never joined into
   a shell string, a missing binary exits 127 as in a shell, and the wrapper records the exit
   status and notifies by itself because tmux 3.3 sometimes loses both for commands that exit
   at once (see :func:`_wrapper`);
2. ``remain-on-exit on`` (the exit status is kept), a ``pane-died`` hook that touches a file in
   ``notify_dir`` (a watchdog observer there calls the exit callback), ``pipe-pane -o`` to the log,
   each targeting the new session by exact name (``=NAME:``: the pane id is not known yet). The
   server reads the new pane only after the list, so even a command that prints and exits at
   once is logged from its first byte and kept dead with its status (the tests start forty).

Earlier versions started a placeholder (``sleep``) and respawned the pane with the agent as a
last step; a session such a start left with its placeholder still counts as dead.
A name already taken is found by ``new-session`` itself (``duplicate session``): only then is the
old session's status asked, and a dead one is killed and the list sent again.

``SessionStatus.pid`` is the wrapper's pid (the agent is its child, in the same process group).
"""

from __future__ import annotations

import typing as t

from runner.sessions.base import (
    EXIT_OPTION,
    MISSING,
    PANE_OPTION,
    PLACEHOLDER,
    AgentNotFound,
    ExitCallback,
    SessionBackend,
    SessionExists,
    SessionSpec,
    SessionStatus,
    check_session_name,
    find_executable,
    session_name,
)

if t.TYPE_CHECKING:
    from runner.sessions.process import ProcessBackend
    from runner.sessions.tmux import TmuxBackend


def __getattr__(name: str) -> t.Any:
    """The backends load on first use (PEP 562): a command that only names a session, or
    reads a run, never imports libtmux."""
    if name == "ProcessBackend":
        from runner.sessions.process import ProcessBackend

        return ProcessBackend
    if name == "TmuxBackend":
        from runner.sessions.tmux import TmuxBackend

        return TmuxBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EXIT_OPTION",
    "MISSING",
    "PANE_OPTION",
    "PLACEHOLDER",
    "AgentNotFound",
    "ExitCallback",
    "ProcessBackend",
    "SessionBackend",
    "SessionExists",
    "SessionSpec",
    "SessionStatus",
    "TmuxBackend",
    "check_session_name",
    "find_executable",
    "session_name",
]
