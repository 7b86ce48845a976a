"""The tmux backend (``--mode=distributed``): see :mod:`runner.sessions`."""

from __future__ import annotations

import logging
import pathlib
import shlex
import shutil
import threading
import time
import typing as t

import libtmux
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from agentmail.watch import start_observer
from runner.errors import CommandError, UsageError
from runner.sessions.base import (
    EXIT_OPTION,
    GIT_LOCATION_VARS,
    MISSING,
    PANE_OPTION,
    PLACEHOLDER,
    ExitCallback,
    SessionExists,
    SessionSpec,
    SessionStatus,
    _notify,
    _tail,
    check_session_name,
    find_executable,
)
from runner.sessions.statusbar import STATUS_LEFT_LENGTH, format_escape, status_left

logger = logging.getLogger(__name__)

# --- tmux -----------------------------------------------------------------------------------


def _tmux_quote(arg: str) -> str:
    """Quote one argument for tmux's command parser (used for hook commands)."""
    if "'" not in arg:
        return f"'{arg}'"
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


_GONE_MARKERS: t.Final = (
    "can't find",
    "no server running",
    "error connecting",
    "no such file or directory",
    "session not found",
    "server exited",
    # a server with no session left that has not exited yet: no session to find either
    "no current target",
)


def _is_gone(stderr: t.Sequence[str]) -> bool:
    text = " ".join(stderr).lower()
    return any(marker in text for marker in _GONE_MARKERS)


def _int_or_none(text: str) -> int | None:
    return int(text) if text.lstrip("-").isdigit() else None


def _command_list(commands: t.Iterable[t.Sequence[str]]) -> list[str]:
    """The argv of one tmux client running ``commands`` in order (``cmd1 ... ; cmd2 ...``).

    tmux ends a command at any argument ending in ``;`` and reads a trailing ``\\;`` as a
    literal ``;``, so every argument ending in ``;`` gets its last ``;`` escaped that way.
    """
    argv: list[str] = []
    for command in commands:
        if argv:
            argv.append(";")
        argv += [arg[:-1] + "\\;" if arg.endswith(";") else arg for arg in command]
    return argv


def _is_duplicate(stderr: t.Sequence[str]) -> bool:
    return any("duplicate session" in line for line in stderr)


class _Pane(t.NamedTuple):
    id: str
    dead: bool
    status: int | None
    pid: int | None


_PANE_FIELDS: t.Final = (
    "pane_id",
    "pane_dead",
    "pane_dead_status",
    "pane_pid",
    PANE_OPTION,
    EXIT_OPTION,
    "pane_start_command",
)
"""What :func:`_agent_pane_of` reads about each pane (``list-panes -F``), in this order."""


def _agent_pane_of(rows: t.Sequence[t.Sequence[str]]) -> _Pane | None:
    """The agent pane among one session's ``list-panes`` rows (fields :data:`_PANE_FIELDS`):
    the pane named by :data:`PANE_OPTION` (a user may have split the window), else the first."""
    if not rows:
        return None
    row = next((r for r in rows if r[0] == r[4]), rows[0])
    if row[6].strip('"').endswith(PLACEHOLDER[-1]):
        # an earlier version's start() interrupted before it launched the agent: the
        # placeholder would wait forever, so the session counts as dead, status unknown
        return _Pane(id=row[0], dead=True, status=None, pid=_int_or_none(row[3]))
    return _Pane(
        id=row[0],
        # the wrapper records the status just before it exits: the agent is gone already
        dead=row[1] == "1" or bool(row[5]),
        status=_int_or_none(row[5]) if row[5] else _int_or_none(row[2]),
        pid=_int_or_none(row[3]),
    )


def _status_of(pane: _Pane | None) -> SessionStatus:
    if pane is None:
        return MISSING
    return SessionStatus(
        exists=True,
        alive=not pane.dead,
        exit_status=pane.status if pane.dead else None,
        pid=pane.pid,
    )


def _wrapper(unset: t.Sequence[str]) -> str:
    """The ``/bin/sh -c`` script that runs the agent: ``sh -c SCRIPT swarm-agent TMUX NOTIFY
    ARGV...`` (everything arrives as positional arguments, nothing is quoted into the script).

    tmux 3.3 sometimes loses ``pane_dead_status`` *and* skips the ``pane-died`` hook for a
    command that exits within milliseconds, so the wrapper itself records ``$?`` in the pane
    option :data:`EXIT_OPTION` and then touches ``NOTIFY.<pid>`` (the hook stays as a backup for
    a wrapper that is killed). A missing binary gives 127, as in any shell. ``trap : INT`` keeps
    the wrapper alive through a Ctrl-C meant for the agent (a handler, unlike an ignored signal,
    is not inherited by the agent).
    """
    prefix = f"unset {' '.join(unset)}; " if unset else ""
    # tmux gives a new pane the PATH of the client that made it, whatever `-e PATH=` says; the
    # worker's PATH therefore travels as SWARM_AGENT_PATH and is put in place here
    prefix += 'if [ -n "${SWARM_AGENT_PATH:-}" ]; then PATH=$SWARM_AGENT_PATH; export PATH; fi; '

    return (
        f'{prefix}t=$1 n=$2; shift 2; trap : INT; "$@"; s=$?; '
        f'"$t" set-option -p -t "$TMUX_PANE" {EXIT_OPTION} "$s" >/dev/null 2>&1; '
        ': > "$n.$$"; exit "$s"'
    )


class _NotifyHandler(FileSystemEventHandler):
    def __init__(self, drain: t.Callable[[], None]) -> None:
        self._drain = drain

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory and event.event_type != "deleted":
            self._drain()


class TmuxBackend:
    """Agents in sessions of the private tmux server ``tmux -L <socket_name>``.

    Never touches the user's default server and never kills the server. Exit notification: a
    ``pane-died`` hook touches ``<notify_dir>/<session>.<pid>``; a watchdog observer on
    ``notify_dir`` drains those files into the exit callback, and a safety thread rescans both
    the directory and the server's dead panes every ``safety_interval`` seconds.
    """

    def __init__(
        self,
        socket_name: str,
        *,
        notify_dir: pathlib.Path,
        safety_interval: float = 2.0,
        width: int = 200,
        height: int = 50,
    ) -> None:
        if not socket_name:
            raise UsageError("the tmux backend needs a private socket name (tmux -L NAME)")
        self.socket_name = socket_name
        self.server = libtmux.Server(socket_name=socket_name)
        self._tmux_bin = shutil.which("tmux") or "tmux"
        self.notify_dir = notify_dir
        self.safety_interval = safety_interval
        self.size = (width, height)
        self._lock = threading.Lock()
        self._callback: ExitCallback | None = None
        self._observer: t.Any = None
        self._safety: threading.Thread | None = None
        self._stop = threading.Event()
        self._reported: set[tuple[str, int | None]] = set()
        self._seen_alive: set[str] = set()

    # plumbing

    def _tmux(self, *args: str, check: bool = True) -> t.Any:
        result = self.server.cmd(*args)
        if check and result.returncode != 0:
            raise CommandError(
                ("tmux", "-L", self.socket_name, *args),
                result.returncode,
                "\n".join(result.stdout),
                "\n".join(result.stderr),
            )
        return result

    def _agent_pane(self, name: str) -> _Pane | None:
        """The agent pane of session ``name`` (exact match), None if there is no such session."""
        fmt = "\t".join(f"#{{{f}}}" for f in _PANE_FIELDS)
        result = self._tmux("list-panes", "-s", "-t", f"={name}:", "-F", fmt, check=False)
        if result.returncode != 0:
            if _is_gone(result.stderr):
                return None
            raise CommandError(
                ("tmux", "list-panes", "-t", f"={name}:"),
                result.returncode,
                "",
                "\n".join(result.stderr),
            )
        tabs = len(_PANE_FIELDS) - 1
        return _agent_pane_of(
            [line.split("\t") for line in result.stdout if line.count("\t") == tabs]
        )

    # SessionBackend

    def start(self, spec: SessionSpec, *, check_binary: bool = True) -> None:
        """Start ``spec.argv`` in a new detached session. Raises :class:`AgentNotFound` at once
        when ``check_binary`` and the executable cannot be found, :class:`SessionExists` when a
        live session has that name (a dead one is replaced).

        One tmux client in the usual case (see the module docstring); a taken name costs a
        status query, and a dead session's kill and a second try."""
        name = check_session_name(spec.name)
        if not spec.cwd.is_dir():
            raise UsageError(
                f"cannot start session {name}: working directory {spec.cwd} is missing"
            )
        if check_binary or not spec.argv:
            find_executable(spec.argv, spec.cwd, spec.env)
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.notify_dir.mkdir(parents=True, exist_ok=True)
        argv = self._start_commands(name, spec)
        result = self._send(argv)
        if result.returncode != 0 and _is_duplicate(result.stderr):
            # nothing of the list ran: tmux stops at the failed new-session
            current = self.status(name)
            if current.alive:
                raise SessionExists(name)
            # kill and recreate in one list: a server whose last session this was would
            # otherwise start exiting under the new-session
            kill = ["kill-session", "-t", f"={name}", ";"] if current.exists else []
            result = self._send([*kill, *argv])
        if result.returncode != 0:
            if not _is_duplicate(result.stderr):
                self._tmux("kill-session", "-t", f"={name}", check=False)
            raise CommandError(
                ("tmux", "-L", self.socket_name, *argv),
                result.returncode,
                "\n".join(result.stdout),
                "\n".join(result.stderr),
            )
        pane = result.stdout[0].strip() if result.stdout else ""
        logger.info("started session", extra={"session": name, "pane": pane})

    def _send(self, argv: t.Sequence[str], timeout: float = 5.0) -> t.Any:
        """Run one tmux client; again while it meets a server that is exiting (its last session
        just went): such a server ran none of the commands, the next client starts a new one."""
        deadline = time.monotonic() + timeout
        while True:
            result = self._tmux(*argv, check=False)
            exiting = any("server exited" in line for line in result.stderr)
            if result.returncode == 0 or not exiting or time.monotonic() > deadline:
                return result
            time.sleep(0.01)

    def _start_commands(self, name: str, spec: SessionSpec) -> list[str]:
        """The tmux command list that starts ``spec`` in session ``name`` (module docstring)."""
        env = dict(spec.env)
        if "PATH" in env:
            env["SWARM_AGENT_PATH"] = env["PATH"]
        env_args: list[str] = []
        for key, value in env.items():
            env_args += ["-e", f"{key}={value}"]
        width, height = self.size
        target = f"={name}:"
        marker = format_escape(str(self.notify_dir / f"{name}."))
        hook = f"touch {shlex.quote(marker)}#{{pane_pid}}"
        log = format_escape(shlex.quote(str(spec.log_path)))
        script = _wrapper([v for v in GIT_LOCATION_VARS if v not in spec.env])
        notify = str(self.notify_dir / name)
        return _command_list(
            [
                (
                    "new-session", "-d", "-s", name, "-c", str(spec.cwd),
                    "-x", str(width), "-y", str(height), *env_args,
                    "-P", "-F", "#{pane_id}",
                    "/bin/sh", "-c", script, "swarm-agent", self._tmux_bin, notify, *spec.argv,
                ),
                # -F: the value is the format, expanded in the new session's only pane
                ("set-option", "-F", "-t", target, PANE_OPTION, "#{pane_id}"),
                ("set-option", "-w", "-t", target, "remain-on-exit", "on"),
                ("set-option", "-t", target, "status-left-length", str(STATUS_LEFT_LENGTH)),
                ("set-option", "-t", target, "status-left", status_left(name, spec.env)),
                ("set-hook", "-w", "-t", target, "pane-died", f"run-shell -b {_tmux_quote(hook)}"),
                ("pipe-pane", "-o", "-t", target, f"exec cat >> {log}"),
            ]
        )  # fmt: skip

    def status(self, name: str) -> SessionStatus:
        return _status_of(self._agent_pane(name))

    def statuses(self, prefix: str) -> dict[str, SessionStatus]:
        """Every session of this server whose name starts with ``prefix``, with its status, from
        one ``list-panes -a`` (one tmux client however many sessions)."""
        fmt = "\t".join(f"#{{{f}}}" for f in ("session_name", *_PANE_FIELDS))
        result = self._tmux("list-panes", "-a", "-F", fmt, check=False)
        if result.returncode != 0:
            if _is_gone(result.stderr):
                return {}
            raise CommandError(
                ("tmux", "list-panes", "-a"), result.returncode, "", "\n".join(result.stderr)
            )
        panes: dict[str, list[list[str]]] = {}
        for line in result.stdout:
            row = line.split("\t")
            if len(row) == len(_PANE_FIELDS) + 1 and row[0].startswith(prefix):
                panes.setdefault(row[0], []).append(row[1:])
        return {name: _status_of(_agent_pane_of(rows)) for name, rows in sorted(panes.items())}

    def list_sessions(self, prefix: str) -> list[str]:
        result = self._tmux("list-sessions", "-F", "#{session_name}", check=False)
        if result.returncode != 0:
            if _is_gone(result.stderr):
                return []
            raise CommandError(
                ("tmux", "list-sessions"), result.returncode, "", "\n".join(result.stderr)
            )
        return sorted(n for n in result.stdout if n and n.startswith(prefix))

    def kill(self, name: str) -> None:
        result = self._tmux("kill-session", "-t", f"={name}", check=False)
        if result.returncode != 0 and not _is_gone(result.stderr):
            raise CommandError(
                ("tmux", "kill-session", "-t", f"={name}"),
                result.returncode,
                "",
                "\n".join(result.stderr),
            )
        logger.debug("killed session", extra={"session": name})

    def capture(self, name: str, lines: int = 50) -> str:
        pane = self._agent_pane(name)
        if pane is None:
            return ""
        result = self._tmux("capture-pane", "-p", "-J", "-t", pane.id, "-S", f"-{max(lines, 0)}")
        return _tail("\n".join(result.stdout), lines)

    def screen(self, name: str) -> str:
        pane = self._agent_pane(name)
        if pane is None or pane.dead:
            return ""
        result = self._tmux("capture-pane", "-p", "-t", pane.id, check=False)
        return "\n".join(result.stdout) if result.returncode == 0 else ""

    def send_text(self, name: str, text: str, *, chunk: int = 200, settle: float = 1.0) -> bool:
        """Type ``text`` literally into the agent pane, then Enter; check the Enter took.

        A pane in copy mode (someone scrolled while attached) is taken out of it first, or
        the keys would move its cursor instead. The text goes in chunks of ``chunk``
        characters with ``send-keys -l`` (literal: no key names, no tmux parsing), newlines
        as spaces (an Enter inside would submit half of it). The Enter took when the screen
        changes within ``settle`` seconds of it; else Enter is sent once more (a TUI busy
        redrawing may drop the first)."""
        pane = self._agent_pane(name)
        if pane is None or pane.dead:
            return False
        mode = self._tmux("display-message", "-p", "-t", pane.id, "#{pane_in_mode}", check=False)
        if mode.returncode == 0 and mode.stdout and mode.stdout[0].strip() == "1":
            self._tmux("send-keys", "-t", pane.id, "-X", "cancel", check=False)
        flat = " ".join(text.split())
        for start in range(0, len(flat), chunk):
            piece = flat[start : start + chunk]
            if self._tmux("send-keys", "-t", pane.id, "-l", "--", piece, check=False).returncode:
                return False
        for _ in range(2):
            time.sleep(0.2)  # let the TUI take the text in before the Enter
            before = self.screen(name)
            self._tmux("send-keys", "-t", pane.id, "Enter", check=False)
            deadline = time.monotonic() + settle
            while time.monotonic() < deadline:
                if self.screen(name) != before:
                    logger.info("typed into the pane", extra={"session": name})
                    return True
                time.sleep(0.1)
        return False

    def set_exit_callback(self, callback: ExitCallback) -> None:
        with self._lock:
            self._callback = callback
            if self._observer is not None:
                return
            self.notify_dir.mkdir(parents=True, exist_ok=True)
            self._stop.clear()
            self._observer = start_observer(_NotifyHandler(self._drain), self.notify_dir)
            self._safety = threading.Thread(
                target=self._safety_loop, name=f"swarm-tmux-safety-{self.socket_name}", daemon=True
            )
            self._safety.start()
        self._drain()  # sessions that died before we were watching

    def close(self) -> None:
        with self._lock:
            observer, safety = self._observer, self._safety
            self._observer = self._safety = None
            self._callback = None
        self._stop.set()
        if observer is not None:
            observer.stop()
            observer.join()
        if safety is not None:
            safety.join()

    # exit notification

    def _notify(self, name: str) -> None:
        _notify(self._callback, name)

    def _drain(self) -> None:
        """Turn every notify file into one callback (whoever unlinks it first calls)."""
        try:
            entries = list(self.notify_dir.iterdir())
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.name.rsplit(".", 1)[0]
            try:
                entry.unlink()
            except FileNotFoundError:
                continue
            logger.debug("pane died", extra={"session": name})
            self._notify(name)

    def _safety_loop(self) -> None:
        while not self._stop.wait(self.safety_interval):
            try:
                self._drain()
                self._check_panes()
            except Exception:
                logger.exception("session safety check failed")

    def _check_panes(self) -> None:
        """Report dead agents the hook missed, and sessions that vanished while alive."""
        try:
            current = self.statuses("")
        except CommandError:
            return
        self._reported = {(n, p) for n, p in self._reported if n in current}
        for name in sorted(self._seen_alive - current.keys()):
            self._seen_alive.discard(name)
            self._notify(name)
        for name, status in current.items():
            if status.alive:
                self._seen_alive.add(name)
                continue
            self._seen_alive.discard(name)
            if (name, status.pid) not in self._reported:
                self._reported.add((name, status.pid))
                self._notify(name)
