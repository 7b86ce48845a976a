"""Codex CLI (npm ``@openai/codex``), tested 0.171.0.

Every worker runs its own Codex (``--no-daemon``: no shared background server whose commands
would run with the first worker's environment) with login shells off (a login profile resets
PATH). Commands run in Codex's workspace-write sandbox, which keeps a worktree's git metadata
(in the main repository's ``.git``) read-only, so ``git add``, ``git commit`` and
``swarm worker`` (which writes mail under ``SWARM_HOME``) are allowed to run outside it by a
project rules file in the worktree, ``.codex/rules/swarm-runner.rules`` (excluded from git).
Trust is ``[projects."<path>"] trust_level = "trusted"`` in ``$CODEX_HOME/config.toml``; a
worktree of a trusted main repository is trusted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import tempfile
import tomllib
import typing as t

from runner.agents import _files
from runner.agents.adapter import Adapter, WorkerContext, fp

TESTED_VERSION: t.Final = "0.171.0"
RULES: t.Final = ".codex/rules/swarm-runner.rules"
EXCLUDES: t.Final = (f"/{RULES}",)


def codex_home(home: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(os.environ.get("CODEX_HOME") or home / ".codex")


def _projects(home: pathlib.Path) -> dict[str, t.Any]:
    try:
        doc = tomllib.loads((codex_home(home) / "config.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    projects = doc.get("projects")
    return projects if isinstance(projects, dict) else {}


def own_tmpdir(ctx: WorkerContext) -> dict[str, str]:
    """``TMPDIR`` for a Codex whose home lies in the temp folder (a CI container, a test): it
    then refuses to create its sandbox helper (``codex-linux-sandbox``) and, where the system
    has bubblewrap, every sandboxed command fails with "bwrap: execvp codex-linux-sandbox: No
    such file or directory" (seen with 0.171.0; openai/codex#24341). A temp folder of its own,
    outside its home, lets it."""
    home = codex_home(ctx.home).resolve()
    if not _files.within(home, pathlib.Path(tempfile.gettempdir()).resolve()):
        return {}
    own = ctx.swarm_home / "tmp" / "codex"
    own.mkdir(parents=True, exist_ok=True)
    return {"TMPDIR": str(own)}


def drop_tables(text: str, headers: t.Collection[str]) -> tuple[str, int]:
    """``text`` without the TOML tables whose header line is one of ``headers`` (each up to the
    next header), and how many went; every other line is kept byte for byte."""
    out: list[str] = []
    gone = 0
    dropping = False
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("["):
            dropping = stripped in headers
            if dropping:
                gone += 1
                if out and not out[-1].strip():  # the blank line prepare put before it
                    out.pop()
        if not dropping:
            out.append(line)
    return "".join(out), gone


def rules_text(ctx: WorkerContext) -> str:
    prefixes = [[str(ctx.swarm), "worker"], ["git", "add"], ["git", "commit"]]
    lines = ["# written by swarm-runner for this worktree only; never merged"]
    lines += [f'prefix_rule(pattern = {json.dumps(p)}, decision = "allow")' for p in prefixes]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class CodexAdapter(Adapter):
    def argv(self, ctx: WorkerContext) -> tuple[str, ...]:
        head: tuple[str, ...] = (
            (self.program, "resume", "--last") if ctx.resume else (self.program,)
        )
        mode = (
            ("--dangerously-bypass-approvals-and-sandbox",)
            if ctx.permissions == "full"
            else ("--approve-for-me",)
        )
        return (*head, "--no-daemon", *mode, "-c", "allow_login_shell=false", ctx.prompt)

    def trusted(self, ctx: WorkerContext) -> bool | None:
        for path, entry in _projects(ctx.home).items():
            if not isinstance(entry, dict) or entry.get("trust_level") != "trusted":
                continue
            folder = pathlib.Path(path)
            if ctx.worktree == folder or ctx.repo == folder:
                return True
        return False

    def prepare(self, ctx: WorkerContext) -> dict[str, str]:
        _files.write_atomic(ctx.worktree / RULES, rules_text(ctx), mode=0o644)
        if ctx.trust_worktrees and not self.trusted(ctx):
            config = codex_home(ctx.home) / "config.toml"
            try:
                text = config.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            if text and not text.endswith("\n"):
                text += "\n"
            text += f'\n[projects.{json.dumps(str(ctx.worktree))}]\ntrust_level = "trusted"\n'
            _files.write_atomic(config, text)
        return own_tmpdir(ctx)

    def forget_trust(self, home: pathlib.Path, worktrees: t.Collection[pathlib.Path]) -> int:
        config = codex_home(home) / "config.toml"
        try:
            text = config.read_text(encoding="utf-8")
        except OSError:
            return 0
        headers = {f"[projects.{json.dumps(str(path))}]" for path in worktrees}
        kept, gone = drop_tables(text, headers)
        if gone:
            _files.write_atomic(config, kept)
        return gone

    def trust_fix(self, ctx: WorkerContext) -> str:
        return (
            f"run `codex` once in {ctx.repo} and choose 'Trust and continue', or set "
            "`trust_worktrees = true` in .swarm.toml to let swarm record trust for this run's "
            "worktrees only"
        )

    def flags_for_help(self) -> tuple[str, ...]:
        return ("--no-daemon", "--approve-for-me", "--config")


ADAPTER: t.Final = CodexAdapter(
    name="codex",
    program="codex",
    tested_version=TESTED_VERSION,
    package="npm @openai/codex",
    fingerprints=(
        fp("dialog", r"Trust this folder\?|Trust and continue", "the folder-trust dialog"),
        fp("dialog", r"Sign in with ChatGPT|Provide your own API key", "the login screen"),
        fp(
            "permission",
            r"Would you like to (run|make|allow|apply)|Allow command\?|Yes, proceed|"
            r"approve this",
            "a permission prompt",
        ),
        fp("working", r"esc to interrupt", "working"),
        fp("idle", r"Ask Codex to do anything|^› ", "idle at its prompt"),
    ),
)
