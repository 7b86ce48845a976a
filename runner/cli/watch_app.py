"""The interactive ``swarm watch``: a Textual app over the same pure pieces as the plain view.

Event-driven like the plain view: a watchdog observer on the run directory wakes the app when
``events.jsonl`` changes (the tail then folds only the new lines); a timer redraws elapsed times
and the selected worker's pane preview every ``--refresh`` seconds. Whatever talks to git or
tmux (the detail, a nudge) runs in a worker thread, so a key never waits for it; threads hand
results back with ``post_message`` (never the blocking ``call_from_thread``, which would hang a
thread, and so the exit, once the app stops).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import subprocess
import sys
import typing as t

from rich.console import Group, RenderableType
from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.message import Message
from textual.widgets import DataTable, Footer, Input, Static

from protocol.plan import Plan
from protocol.state import TRANSITIONS, RunState
from runner import control, detail, launch, why
from runner.cli.common import EXIT_INTERRUPTED, run_exit_code
from runner.dashboard import (
    ESCAPE_KINDS,
    HELP_KIND,
    EventTail,
    clock,
    escape_text,
    header_lines,
    inbox_line,
)
from runner.errors import RunnerError
from runner.paths import SwarmPaths
from runner.report import status_rows
from runner.sessions.base import SessionBackend

# the tmux backend loads before Textual captures stdout: libtmux reads sys.stdout.encoding when
# it is imported, which Textual's capture object does not have
from runner.sessions.tmux import TmuxBackend as _TmuxBackend  # noqa: F401

NUDGE_TEXT: t.Final = (
    "Please go on with your task; report with `swarm worker progress`, and "
    "`swarm worker offer` when it is committed."
)
INBOX_LINES: t.Final = 20
RETRYABLE: t.Final = TRANSITIONS["task_retried"].sources
"""Tasks the retry key runs again (``swarm retry``); on a running task it restarts the worker."""
COLUMNS: t.Final = ("task", "state", "try", "elapsed", "last")
KEYS_HINT: t.Final = "↑↓ move  enter attach (read-only)  w read-write  i inbox"
Prompt = t.Literal["nudge", "answer", "restart", "stop"]
_PROMPTS: t.Final[dict[str, str]] = {
    "nudge": "nudge {task} (Enter sends, Esc cancels): ",
    "answer": "answer {task}'s help request (Enter sends, Esc cancels): ",
    "restart": "retry {task} (a running worker restarts, an ended task runs again)? y and Enter: ",
    "stop": "stop run {run} (no new workers; running ones finish)? type y and Enter: ",
}


class Changed(Message):
    """The run's events file changed (posted from the watchdog thread: never blocks it)."""


class DetailLoaded(Message):
    def __init__(self, found: detail.Detail) -> None:
        super().__init__()
        self.detail = found


class Notice(Message):
    def __init__(self, text: str, severity: t.Literal["information", "error"] = "information"):
        super().__init__()
        self.text = text
        self.severity: t.Literal["information", "error"] = severity


class WatchApp(App[None]):
    """Drive a run: move through its tasks, look into one, attach, nudge, answer, restart."""

    CSS = """
    #header { height: auto; }
    #tasks { height: auto; max-height: 45%; }
    #detail { height: 1fr; }
    #prompt { display: none; }
    #prompt.asking { display: block; }
    """
    BINDINGS: t.ClassVar = [
        Binding("j", "down", "down", show=False),
        Binding("k", "up", "up", show=False),
        Binding("enter", "attach", "attach"),
        Binding("w", "attach_rw", "attach rw"),
        Binding("n", "ask('nudge')", "nudge"),
        Binding("a", "ask('answer')", "answer"),
        Binding("r", "ask('restart')", "retry"),
        Binding("s", "ask('stop')", "stop"),
        Binding("i", "inbox", "inbox"),
        Binding("q", "quit_watch", "quit"),
        Binding("ctrl+c", "interrupt", "quit", show=False, priority=True),
    ]

    def __init__(
        self, repo: pathlib.Path, run_id: str, plan: Plan | None, *, refresh: float = 1.0
    ) -> None:
        super().__init__()
        self.repo = repo
        self.run_id = run_id
        self.plan = plan
        self.every = refresh
        self.paths = SwarmPaths.for_repo(repo).run(run_id)
        self.tail = EventTail(self.paths.events, kinds={*ESCAPE_KINDS, HELP_KIND, "task_offered"})
        self.tail.poll()
        self.selected: str | None = None
        self.show_inbox = False
        self.asking: tuple[Prompt, str] | None = None
        self.detail: detail.Detail | None = None
        self.whys: list[why.Why] = []
        self.mayor: str | None = None
        self._backend: SessionBackend | None = None
        self._observer: t.Any = None

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        table: DataTable[t.Any] = DataTable(id="tasks", cursor_type="row", zebra_stripes=False)
        yield table
        yield VerticalScroll(Static(id="detail-text"), id="detail")
        yield Input(id="prompt")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#tasks", DataTable)
        for label, width in (("task", 14), ("state", 10), ("try", 3), ("elapsed", 7)):
            table.add_column(label, key=label, width=width)
        table.add_column("last", key="last", width=max(8, self.size.width - 48))
        from runner.cli.watch import watching_observer

        self._observer = watching_observer(self.paths.dir, lambda: self.post_message(Changed()))
        self.set_interval(self.every, self.tick)
        self.changed()

    def on_unmount(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        if self._backend is not None:
            self._backend.close()

    # -- state -----------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        assert self.tail.state is not None
        return self.tail.state

    def changed(self) -> None:
        """The events file changed (or first draw): fold, then redraw everything."""
        self.tail.poll()
        if self.tail.state is None:
            return
        self.whys = why.of_run(self.paths, self.state)
        self.tick()

    def tick(self) -> None:
        if self.tail.state is None:
            return
        self.mayor = launch.mayor_missing(self.repo, self.state)
        with contextlib.suppress(NoMatches):  # the app is closing
            self._draw_header()
            self._draw_table()
            self.load_detail()

    def _draw_header(self) -> None:
        width = self.size.width or 80
        lines: list[RenderableType] = [
            *header_lines(self.state, self.plan, self.tail.events, width=width, mayor=self.mayor)
        ]
        lines.append(Text(inbox_line(self.tail.events)))
        if self.state.status != "running":
            lines.append(Text(f"the run ended ({self.state.status}): q quits", style="bold"))
        self.query_one("#header", Static).update(Group(*lines))

    def _draw_table(self) -> None:
        table = self.query_one("#tasks", DataTable)
        state = self.state
        for row in status_rows(state, clock(state, self.mayor)):
            remote = row["host"] not in ("", "local")
            cells = (
                f"{row['task']}@{row['host']}" if remote else row["task"],
                row["shown"],
                str(row["attempt"]),
                row["elapsed"],
                row["last"].replace("\n", " "),
            )
            if row["task"] in table.rows:
                for key, value in zip(COLUMNS, cells, strict=True):
                    table.update_cell(row["task"], key, value)
            else:
                table.add_row(*cells, key=row["task"])
        if self.selected is None and state.task_order:
            self.selected = state.task_order[0]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and key != self.selected:
            self.selected = key
            self.detail = None
            self._draw_detail()
            self.load_detail()

    def on_data_table_row_selected(self, _event: DataTable.RowSelected) -> None:
        self.action_attach()

    # -- the detail ------------------------------------------------------------------------

    def backend(self) -> SessionBackend | None:
        """The run's tmux backend (for capture, typing, ending a session); None in local mode."""
        if self.state.tmux_socket is None:
            return None
        if self._backend is None:
            self._backend = launch.make_backend(self.state, self.paths.dir / "notify")
        return self._backend

    @work(thread=True, exclusive=True, group="detail")
    def load_detail(self) -> None:
        task = self.selected
        if task is None or self.tail.state is None:
            return
        backend = self.backend()
        found = detail.task_detail(
            self.repo,
            self.state,
            task,
            capture=backend.capture if backend is not None else None,
            lines=max(4, self.size.height - 20),
        )
        self.post_message(DetailLoaded(found))

    def on_changed(self, _message: Changed) -> None:
        self.changed()

    def on_notice(self, message: Notice) -> None:
        self.notify(message.text, severity=message.severity)

    def on_detail_loaded(self, message: DetailLoaded) -> None:
        found = message.detail
        if found.task_id == self.selected:
            self.detail = found
            with contextlib.suppress(NoMatches):  # the app is closing: nothing to draw on
                self._draw_detail()

    def _draw_detail(self) -> None:
        target = self.query_one("#detail-text", Static)
        if self.show_inbox:
            target.update(self._inbox())
            return
        task = self.selected
        if task is None or task not in self.state.tasks:
            target.update("")
            return
        record = self.state.tasks[task]
        head = Text(f"{task}", style="bold")
        head.append(f"  {record.state}  attempt {record.attempt}", style="bold")
        if record.session:
            head.append(f"  session {record.session}")
        if record.pane and record.state == "running":
            head.append(f"  pane {record.pane}")
        parts: list[RenderableType] = [head, Text(KEYS_HINT, style="dim")]
        found = self.detail
        if found is None:
            parts.append(Text("...", style="dim"))
        else:
            parts.append(Text(detail.position_text(found, self.state.integration_branch)))
            if found.why is not None:
                hint = why.logs_hint(found.why, self.run_id)
                parts += [Text(line) for line in why.text_lines(found.why, hint=hint)]
            title = {"pane": "pane (live)", "pane.log": "pane.log (end)"}.get(found.preview_from)
            if title:
                parts.append(Text(f"── {title} ──", style="dim"))
                parts.append(Text(found.preview, no_wrap=True, overflow="ellipsis"))
        target.update(Group(*parts))

    def _inbox(self) -> RenderableType:
        """Every help request and scope escape of the run, newest last."""
        lines = [Text("inbox: help requests and scope escapes (i: back)", style="bold")]
        for event in self.tail.events[-INBOX_LINES:]:
            if event.kind == HELP_KIND:
                lines.append(Text(f"help  {event.task_id or '?'}: {event.data.get('text', '')}"))
            elif event.kind in ESCAPE_KINDS:
                lines.append(Text(f"scope {escape_text(event)}"))
        if len(lines) == 1:
            lines.append(Text("  none", style="dim"))
        return Group(*lines)

    # -- keys ------------------------------------------------------------------------------

    def action_down(self) -> None:
        self.query_one("#tasks", DataTable).action_cursor_down()

    def action_up(self) -> None:
        self.query_one("#tasks", DataTable).action_cursor_up()

    def action_inbox(self) -> None:
        self.show_inbox = not self.show_inbox
        self._draw_detail()

    def action_attach(self) -> None:
        self._attach_session(rw=False)

    def action_attach_rw(self) -> None:
        self._attach_session(rw=True)

    def _attach_session(self, *, rw: bool) -> None:
        if self.selected is None:
            return
        try:
            argv = control.attach_argv(self.state, self.selected, rw=rw)
        except RunnerError as exc:
            self.notify(str(exc), severity="warning")
            return
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
        with self.suspend():
            subprocess.run(argv, env=env, check=False)
        self.tick()

    def action_ask(self, kind: Prompt) -> None:
        if self.selected is None and kind != "stop":
            return
        self.asking = (kind, self.selected or "")
        prompt = self.query_one("#prompt", Input)
        prompt.placeholder = ""
        prompt.value = NUDGE_TEXT if kind == "nudge" else ""
        label = _PROMPTS[kind].format(task=self.selected, run=self.run_id)
        prompt.border_title = label
        prompt.add_class("asking")
        prompt.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        asking, self.asking = self.asking, None
        event.input.remove_class("asking")
        self.query_one("#tasks", DataTable).focus()
        if asking is None:
            return
        kind, task = asking
        text = event.value.strip()
        if kind in ("restart", "stop") and text.lower() not in ("y", "yes"):
            self.notify("not done", timeout=2)
            return
        if text:
            self.steer(kind, task, text)

    def on_key(self, event: t.Any) -> None:
        if event.key == "escape" and self.asking is not None:
            self.asking = None
            self.query_one("#prompt", Input).remove_class("asking")
            self.query_one("#tasks", DataTable).focus()

    @work(thread=True, group="steer")
    def steer(self, kind: Prompt, task: str, text: str) -> None:
        """Carry out a prompt's answer (off the UI thread: typing into a pane takes a second)."""
        try:
            message = self._steer(kind, task, text)
        except (RunnerError, OSError, ValueError) as exc:
            self.post_message(Notice(str(exc), "error"))
            return
        self.post_message(Notice(message))

    def _steer(self, kind: Prompt, task: str, text: str) -> str:
        if kind == "stop":
            outcome = control.stop(self.repo, self.run_id)
            return f"run {self.run_id}: {outcome.outcome}"
        if kind == "restart" and self.state.tasks[task].state in RETRYABLE:
            result = control.retry(self.repo, self.run_id, [task])
            again = f"{', '.join(result.tasks)}: will run again"
            if result.outcome == "asked":
                return again
            state = launch.read_state(self.repo, self.run_id)
            if state.mode == "local":
                return f"{again} once you run: swarm resume {self.run_id} --foreground"
            launch.start_mayor_session(self.repo, state, sys.executable)
            return f"{again}; the run was reopened and its mayor started"
        backend = self.backend()
        if backend is None:
            raise RunnerError("a local-mode run has no panes to steer; use `swarm stop`")
        if kind == "restart":
            detail.restart(self.state, task, backend)
            return f"{task}: its worker was ended; the mayor starts the next attempt"
        send = detail.nudge if kind == "nudge" else detail.answer
        typed = send(self.repo, self.state, task, text, backend)
        return f"{task}: {kind} sent" + ("" if typed else " (mail only: the pane did not take it)")

    def action_quit_watch(self) -> None:
        ended = self.tail.state is not None and self.state.status != "running"
        self.exit(return_code=run_exit_code(self.state) if ended else 0)

    def action_interrupt(self) -> None:
        self.exit(return_code=EXIT_INTERRUPTED)


def run_app(repo: pathlib.Path, run_id: str, plan: Plan | None, *, refresh: float) -> int:
    app = WatchApp(repo, run_id, plan, refresh=refresh)
    app.run()
    return app.return_code or 0
