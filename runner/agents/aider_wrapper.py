"""Report for aider, which cannot report by itself unattended.

``python -m runner.agents.aider_wrapper --swarm /abs/swarm -- aider ARGS...``: reports
``accepted``, runs aider (output passes through to the pane), then ``offer`` when aider exited
0 and the worktree has commits since ``SWARM_BASE``, else ``fail`` with the exit status and
aider's last lines. Exits with aider's status (0 after a successful offer).
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import typing as t

TAIL_LINES: t.Final = 15


def _git(*args: str) -> str:
    out = subprocess.run(["git", *args], capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else ""


def _run_teed(argv: t.Sequence[str]) -> tuple[int, list[str]]:
    """Run ``argv`` with its output passed through; return its status and last lines."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    except OSError as exc:
        return 127, [f"{argv[0]}: {exc.strerror or exc}"]
    assert proc.stdout is not None
    for raw in proc.stdout:
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        tail.append(raw.decode("utf-8", "replace").rstrip())
    return proc.wait(), list(tail)


def _report(swarm: str, *args: str) -> int:
    """``swarm worker ARGS``; its failure is printed, never raised (aider's work stays)."""
    try:
        return subprocess.run([swarm, "worker", *args], check=False).returncode
    except OSError as exc:
        print(f"aider_wrapper: cannot run {swarm}: {exc}", file=sys.stderr)
        return 127


def main(argv: t.Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aider_wrapper")
    parser.add_argument("--swarm", default="swarm")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the aider command after --")
    swarm = args.swarm
    _report(swarm, "accepted")
    base = os.environ.get("SWARM_BASE", "")
    status, tail = _run_teed(command)
    commits = int(_git("rev-list", "--count", f"{base}..HEAD") or 0) if base else 0
    if status == 0 and commits:
        subject = _git("log", "-1", "--format=%s")
        # the sha, never the name HEAD: a clone's offer is checked against its branch's sha
        return _report(swarm, "offer", f"aider: {subject}", "--commit", _git("rev-parse", "HEAD"))
    why = (
        f"aider exited with status {status}"
        if status
        else "aider exited 0 without committing anything"
    )
    last = "\n".join(line for line in tail if line)
    _report(swarm, "fail", f"{why}; its last lines:\n{last}")
    return status or 1


if __name__ == "__main__":
    sys.exit(main())
