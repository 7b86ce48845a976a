"""Watch worker panes: what each agent's screen shows, and what to do about it.

:class:`PaneWatch` is fed one screen per worker per mayor step (``observe``). It keeps, per
task, the adapter's verdict (:meth:`runner.agents.adapter.Adapter.classify`) and when the
screen's *content* last changed (digits and spinner glyphs ignored, so a ticking timer or a
redrawn title is not progress). It answers with at most one :class:`PaneReport`:

- ``blocked``: the agent has sat at a dialog or a permission prompt for ``block_after``
  seconds (default 4 s: reported well within 30 s), once per screen;
- ``nudge``: an interactive agent has been idle at its prompt, without having reported, for
  ``nudge_after`` seconds: type :meth:`Adapter.nudge_text` into its pane; after one nudge that
  changed nothing, ``blocked`` (a human is asked).

A CLI's own hooks (:meth:`Adapter.hook_hint`) may say more than its screen: a hint newer than
the screen's last content change decides the state, so an agent whose ``Stop`` hook fired is
idle however its screen looks. :meth:`PaneWatch.states` is every known pane's state, which the
mayor records when it changes (``task_pane``: shown by ``swarm status`` and ``swarm watch``).

Pure bookkeeping: the caller captures the screen, types the nudge and records the events.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from runner.agents.adapter import Adapter, Hint, PaneState

_NOISE: t.Final = re.compile(r"[0-9]+|[⠀-⣿✻✶✳✢·✽*●◐◓◑◒|/\\-]")
SCREEN_TAIL: t.Final = 30
HINT_SLACK: t.Final = 2.0
"""A hook event this close before the screen's last change still describes it (the CLI draws
its final frame just after the hook ran)."""


class PaneReport(t.NamedTuple):
    kind: t.Literal["blocked", "nudge"]
    state: PaneState
    what: str
    screen: str
    """The pane's last rows, for the human."""
    text: str = ""
    """For ``nudge``: what to type."""


@dataclasses.dataclass
class _Seen:
    state: PaneState = "unknown"
    what: str = ""
    since: float = 0.0
    """When the current verdict began."""
    content: str = ""
    changed: float = 0.0
    """When the content last changed."""
    reported: str = ""
    """The last (state, what, content) reported as blocked: each screen is reported once."""
    nudged_at: float | None = None


def _hint_decides(screen_state: PaneState, hint: Hint, changed: float) -> bool:
    """A dialog or prompt on the screen is its own proof; otherwise a hook event not older
    than the screen's content (or a screen that shows nothing known) decides."""
    if screen_state in ("dialog", "permission"):
        return False
    return screen_state == "unknown" or hint.at >= changed - HINT_SLACK


def _tail(screen: str) -> str:
    rows = [row.rstrip() for row in screen.splitlines()]
    while rows and not rows[-1]:
        rows.pop()
    return "\n".join(rows[-SCREEN_TAIL:])


class PaneWatch:
    def __init__(self, *, block_after: float = 4.0, nudge_after: float = 45.0) -> None:
        self.block_after = block_after
        self.nudge_after = nudge_after
        self._seen: dict[str, _Seen] = {}

    def forget(self, task_id: str) -> None:
        self._seen.pop(task_id, None)

    def idle_for(self, task_id: str, now: float) -> float | None:
        """Seconds since the task's screen content last changed (None: never seen)."""
        seen = self._seen.get(task_id)
        return None if seen is None else now - seen.changed

    def state(self, task_id: str) -> PaneState:
        seen = self._seen.get(task_id)
        return seen.state if seen else "unknown"

    def states(self) -> dict[str, PaneState]:
        """Every watched pane's known state (``unknown`` left out)."""
        return {tid: seen.state for tid, seen in self._seen.items() if seen.state != "unknown"}

    def observe(
        self,
        task_id: str,
        adapter: Adapter,
        screen: str,
        now: float,
        *,
        swarm: str = "swarm",
        hint: Hint | None = None,
    ) -> PaneReport | None:
        if not screen.strip():
            return None
        seen = self._seen.setdefault(task_id, _Seen(since=now, changed=now))
        content = _NOISE.sub("", screen)
        if content != seen.content:
            seen.content, seen.changed = content, now
        verdict = adapter.classify(screen)
        if hint is not None and _hint_decides(verdict.state, hint, seen.changed):
            verdict = hint.verdict
        if (verdict.state, verdict.what) != (seen.state, seen.what):
            seen.state, seen.what, seen.since = verdict.state, verdict.what, now
        if seen.state not in ("idle",):
            seen.nudged_at = None if seen.state == "working" else seen.nudged_at
        lasted = now - seen.since
        tail = _tail(screen)
        if seen.state in ("dialog", "permission") and lasted >= self.block_after:
            key = f"{seen.state}|{seen.what}|{content}"
            if key != seen.reported:
                seen.reported = key
                return PaneReport("blocked", seen.state, seen.what, tail)
            return None
        if seen.state == "idle" and adapter.interactive:
            if seen.nudged_at is None and lasted >= self.nudge_after:
                seen.nudged_at = now
                return PaneReport("nudge", "idle", seen.what, tail, adapter.nudge_text(swarm))
            if seen.nudged_at is not None and now - seen.nudged_at >= self.nudge_after:
                key = f"idle|nudged|{content}"
                if key != seen.reported and now - seen.changed >= self.nudge_after:
                    seen.reported = key
                    return PaneReport(
                        "blocked", "idle", "idle at its prompt after a nudge, not reported", tail
                    )
        return None
