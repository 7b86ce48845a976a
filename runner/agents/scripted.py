"""The built-in scripted agent: ``python -m runner.agents.scripted`` (preset ``scripted``).

A fake coding agent for tests, demos and benchmarks. It runs in its worktree with the worker
environment, reads the run's plan (``$SWARM_HOME/runs/$SWARM_RUN/plan.json``), finds task
``$SWARM_TASK`` and runs its ``script`` steps in order, sending the reports a real agent sends
with ``swarm worker`` (in process, through :mod:`runner.worker_report`). Each step is a one-key
mapping, optionally with ``attempt: N`` (run only when ``$SWARM_ATTEMPT == N``)::

    write: {path, content}        append: {path, content}      delete: PATH
    patch: DIFF (git apply)       run: CMD (sh -c; non-zero fails the task with its output tail)
    sleep: SECONDS                progress: TEXT                commit: MESSAGE
    escape: {finding, files, intent, severity}                  help: TEXT
    offer: SUMMARY | {summary, commit: false}                   fail: REASON | {type, reason}
    crash: EXIT_CODE (exit without reporting)                   hang: true (sleep forever)

It first reports ``accepted``. Without an ``offer``/``fail``/``crash``/``hang`` step it commits
what changed at the end (``swarm(<task>): <subject>``) and offers. A task with no script at all
(a follow-up or remediation task the mayor spawned) gets a stand-in change inside its manifest,
since an offer that changes nothing is refused. An ``offer`` commits pending
changes first (unless ``commit: false``) and names the head commit.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time
import typing as t

from agentmail.errors import AgentMailError, BadInput
from agentmail.worker_env import WorkerEnv
from protocol.manifest import is_glob
from protocol.plan import Plan, Task
from runner import git, proc, worker_report
from runner.errors import CommandError, RunnerError, UsageError, exit_code_for
from runner.paths import SwarmPaths
from runner.plan.script import STEP_KINDS

Reporter = t.Callable[[t.Sequence[str]], None]
ACTIONS: t.Final = STEP_KINDS
TERMINAL: t.Final = frozenset({"offer", "fail", "crash", "hang"})
FAILURE_TYPE_OF: t.Final = {"command": "BUILD_FAIL", "script": "ERROR"}
"""The agentops failure type (``swarm worker fail --type``) of a failed step's kind."""
TAIL_CHARS: t.Final = 1500
EXIT_UNEXPECTED: t.Final = 3


class ScriptError(RunnerError):
    """A step is malformed or could not be carried out; the task fails with this reason and
    failure ``kind`` (``script`` for a bad step, ``command`` for a failing ``run``)."""

    def __init__(self, message: str, kind: str = "script") -> None:
        self.kind = kind
        super().__init__(message)


class Crash(Exception):
    """Exit now with ``code`` and without reporting (the ``crash`` step)."""

    def __init__(self, code: int) -> None:
        self.code = code
        super().__init__(code)


class _Verb(t.NamedTuple):
    arguments: tuple[str, ...]
    options: frozenset[str] = frozenset()


REPORT_VERBS: t.Final = {
    "accepted": _Verb((), frozenset({"--title"})),
    "progress": _Verb(("TEXT",)),
    "help": _Verb(("TEXT",)),
    "escape": _Verb((), frozenset({"--finding", "--files", "--intent", "--severity"})),
    "offer": _Verb(("SUMMARY",), frozenset({"--commit"})),
    "fail": _Verb(("REASON",), frozenset({"--type"})),
}
"""The reports the agent makes, written as ``swarm worker`` argv (what a real agent runs, and
what the tests' reporters record): the arguments and options each one takes."""


def parse_report(args: t.Sequence[str]) -> tuple[str, list[str], dict[str, str]]:
    """``["offer", "done", "--commit", sha]`` -> verb, arguments, options; BadInput if bad."""
    if not args or args[0] not in REPORT_VERBS:
        got = repr(args[0]) if args else "nothing"
        raise BadInput(f"no such report {got}: one of {', '.join(REPORT_VERBS)}")
    verb = REPORT_VERBS[args[0]]
    arguments: list[str] = []
    options: dict[str, str] = {}
    rest = iter(args[1:])
    for arg in rest:
        if not arg.startswith("--"):
            arguments.append(arg)
            continue
        if arg not in verb.options:
            raise BadInput(f"{args[0]}: no such option {arg}")
        value = next(rest, None)
        if value is None:
            raise BadInput(f"{args[0]}: option {arg} requires an argument")
        options[arg] = value
    if len(arguments) < len(verb.arguments):
        raise BadInput(f"{args[0]}: Missing argument {verb.arguments[len(arguments)]!r}")
    if len(arguments) > len(verb.arguments):
        raise BadInput(f"{args[0]}: unexpected extra argument {arguments[len(verb.arguments)]!r}")
    return args[0], arguments, options


def send_report(args: t.Sequence[str], env: WorkerEnv, cwd: pathlib.Path) -> None:
    """Send the report ``args`` (``swarm worker`` argv) through :mod:`runner.worker_report`."""
    verb, arguments, opts = parse_report(args)
    if verb == "accepted":
        worker_report.accepted(env, title=opts.get("--title", ""))
    elif verb == "progress":
        worker_report.progress(env, arguments[0])
    elif verb == "help":
        worker_report.help_request(env, arguments[0])
    elif verb == "escape":
        files = [f.strip() for f in opts.get("--files", "").split(",") if f.strip()]
        worker_report.escape(
            env,
            finding=opts.get("--finding", ""),
            files=files,
            intent=opts.get("--intent", ""),
            severity=opts.get("--severity", "medium"),
        )
    elif verb == "offer":
        worker_report.offer(env, arguments[0], cwd=cwd, commit=opts.get("--commit"))
    else:
        worker_report.fail(env, arguments[0], failure_type=opts.get("--type", "ERROR"))


def worker_reporter(cwd: pathlib.Path) -> Reporter:
    """Report in this process through :mod:`runner.worker_report`, the library under the
    ``swarm worker`` commands a real agent runs: the same signed message in the mayor's inbox,
    results file and escapes line, without an interpreter start-up per report. Identity comes
    from this process's environment (``$SWARM_*``), as for ``swarm worker``; git runs in
    ``cwd``. Nothing is printed; a failed report raises :class:`CommandError` with the exit
    status ``swarm worker`` would have had and its one-line message as stderr."""

    def report(args: t.Sequence[str]) -> None:
        try:
            send_report(args, WorkerEnv.from_environ(), cwd)
        except (AgentMailError, RunnerError, ValueError, OSError) as exc:
            raise _report_failed(args, exit_code_for(exc), exc) from exc
        except Exception as exc:  # a bug: what handle_errors would have made of it
            raise _report_failed(args, EXIT_UNEXPECTED, exc) from exc

    return report


def _report_failed(args: t.Sequence[str], code: int, exc: BaseException) -> CommandError:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return CommandError(("swarm", "worker", *args), code, "", f"swarm: {line}\n")


@dataclasses.dataclass
class ScriptedAgent:
    task: Task
    attempt: int
    cwd: pathlib.Path
    report: Reporter
    out: t.TextIO = dataclasses.field(default_factory=lambda: sys.stdout)
    ended: bool = False
    """An offer or a fail was reported: no automatic offer at the end."""

    def say(self, text: str) -> None:
        print(f"[scripted {self.task.id}] {text}", file=self.out, flush=True)

    def run(self) -> None:
        """Run the whole script; raises :class:`Crash` for a ``crash`` step and
        :class:`ScriptError` when a step fails (the caller reports it)."""
        self.say(f"attempt {self.attempt}: accepted")
        self.report(["accepted", "--title", self.task.title])
        for index, step in enumerate(self.task.script or ()):
            action, value = parse_step(step, index, self.task.id)
            wanted = step.get("attempt")
            if wanted is not None and int(wanted) != self.attempt:
                continue
            try:
                getattr(self, f"do_{action}")(value)
            except ScriptError as exc:
                raise ScriptError(f"step {index + 1} ({action}): {exc}", kind=exc.kind) from exc
        if not self.task.script:
            self.stand_in()
        if not self.ended:
            self.do_offer({"summary": f"{self.task.title}: done"})

    def stand_in(self) -> None:
        """The smallest change inside the manifest: an existing file gets a trailing newline;
        otherwise a marker file is written where the first manifest entry names one."""
        entry = next(iter(self.task.files), "**")
        marker = f"swarm-{self.task.id}"
        if is_glob(entry):  # a name the glob matches: ** and * become the marker
            name = re.sub(r"\[(.)[^]]*\]", r"\1", entry.replace("**/", ""))
            entry = name.replace("**", marker).replace("*", marker).replace("?", "x")
        elif entry.endswith("/") or (self.cwd / entry).is_dir():
            entry = f"{entry.rstrip('/')}/{marker}"
        path = self.cwd / entry
        if path.exists():
            with path.open("a") as fh:
                fh.write("\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"stand-in work of the scripted agent for task {self.task.id}\n")
        self.say(f"stand-in change: {path.relative_to(self.cwd)}")

    # file and git steps

    def path(self, value: t.Any) -> pathlib.Path:
        if not isinstance(value, str) or not value:
            raise ScriptError(f"task {self.task.id}: a path must be a non-empty string")
        target = (self.cwd / value).resolve()
        if not target.is_relative_to(self.cwd.resolve()):
            raise ScriptError(f"task {self.task.id}: path {value!r} is outside the worktree")
        return target

    def _file_args(self, value: t.Any, action: str) -> tuple[pathlib.Path, str]:
        if not isinstance(value, dict) or "path" not in value:
            raise ScriptError(f"task {self.task.id}: {action} needs {{path, content}}")
        content = value.get("content", "")
        return self.path(value["path"]), str(content)

    def do_write(self, value: t.Any) -> None:
        target, content = self._file_args(value, "write")
        self.say(f"write {target.relative_to(self.cwd.resolve())}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    def do_append(self, value: t.Any) -> None:
        target, content = self._file_args(value, "append")
        self.say(f"append {target.relative_to(self.cwd.resolve())}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("a") as fh:
            fh.write(content)

    def do_delete(self, value: t.Any) -> None:
        target = self.path(value)
        self.say(f"delete {value}")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    def do_patch(self, value: t.Any) -> None:
        self.say("patch")
        diff = str(value)
        if not diff.endswith("\n"):
            diff += "\n"
        try:
            proc.run("git", "apply", "--whitespace=nowarn", "-", cwd=self.cwd, input=diff)
        except CommandError as exc:
            raise ScriptError(f"git apply failed: {exc.stderr.strip()}") from exc

    def do_commit(self, value: t.Any) -> None:
        message = str(value) or f"swarm({self.task.id}): {self.task.title}"
        sha = git.commit_all(self.cwd, message)
        self.say(f"commit {sha[:12] if sha else '(nothing to commit)'}: {message}")

    def do_run(self, value: t.Any) -> None:
        command = str(value)
        self.say(f"run {command}")
        result = subprocess.run(
            ["sh", "-c", command],
            cwd=self.cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            check=False,
        )
        if result.stdout:
            self.out.write(result.stdout)
            self.out.flush()
        if result.returncode != 0:
            tail = result.stdout.strip()[-TAIL_CHARS:]
            raise ScriptError(
                f"command {command!r} exited {result.returncode}" + (f": {tail}" if tail else ""),
                kind="command",
            )

    def do_sleep(self, value: t.Any) -> None:
        seconds = float(value)
        self.say(f"sleep {seconds:g}s")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 1.0))

    # reporting steps

    def do_progress(self, value: t.Any) -> None:
        self.say(f"progress {value}")
        self.report(["progress", str(value)])

    def do_help(self, value: t.Any) -> None:
        self.say(f"help {value}")
        self.report(["help", str(value)])

    def do_escape(self, value: t.Any) -> None:
        if not isinstance(value, dict) or "finding" not in value:
            raise ScriptError(
                f"task {self.task.id}: escape needs {{finding, files, intent, severity}}"
            )
        files = value.get("files", ())
        files_arg = files if isinstance(files, str) else ",".join(str(f) for f in files)
        args = ["escape", "--finding", str(value["finding"]), "--files", files_arg]
        if value.get("intent"):
            args += ["--intent", str(value["intent"])]
        if value.get("severity"):
            args += ["--severity", str(value["severity"])]
        self.say(f"escape {value['finding']} ({files_arg})")
        self.report(args)

    def do_offer(self, value: t.Any) -> None:
        if isinstance(value, dict):
            summary = str(value.get("summary", "")) or f"{self.task.title}: done"
            auto_commit = bool(value.get("commit", True))
        else:
            summary, auto_commit = str(value), True
        if auto_commit:
            git.commit_all(self.cwd, f"swarm({self.task.id}): {self.task.title}")
        head = git.head_sha(self.cwd)
        self.say(f"offer {head[:12]}: {summary}")
        self.report(["offer", summary, "--commit", head])
        self.ended = True

    def do_fail(self, value: t.Any) -> None:
        if isinstance(value, dict):
            reason, kind = str(value.get("reason", "")), value.get("type")
        else:
            reason, kind = str(value), None
        reason = reason or "scripted failure"
        self.say(f"fail {reason}")
        self.report(["fail", reason, *(["--type", str(kind)] if kind else [])])
        self.ended = True

    def do_crash(self, value: t.Any) -> None:
        code = 1 if value is True or value is None else int(value)
        self.say(f"crash with exit {code}")
        raise Crash(code)

    def do_hang(self, value: t.Any) -> None:
        if not value:
            return
        self.say("hang")
        while True:
            time.sleep(3600)


def parse_step(step: t.Mapping[str, t.Any], index: int, task_id: str) -> tuple[str, t.Any]:
    """The (action, value) of one step; :class:`ScriptError` naming the step if malformed."""
    keys = [k for k in step if k != "attempt"]
    if len(keys) != 1 or keys[0] not in ACTIONS:
        raise ScriptError(
            f"task {task_id} script step {index + 1}: expected one of {', '.join(ACTIONS)} "
            f"(plus optional attempt), got {', '.join(map(str, keys)) or 'nothing'}"
        )
    return keys[0], step[keys[0]]


def load_task(env: t.Mapping[str, str]) -> tuple[Task, int]:
    """The task and attempt from the worker environment and the run's plan."""
    missing = [v for v in ("SWARM_HOME", "SWARM_RUN", "SWARM_TASK") if not env.get(v)]
    if missing:
        raise UsageError(
            f"the scripted agent runs inside a swarm worker: {', '.join(missing)} not set"
        )
    plan_path = SwarmPaths(pathlib.Path(env["SWARM_HOME"])).run(env["SWARM_RUN"]).plan
    try:
        plan = Plan.model_validate_json(plan_path.read_text())
    except FileNotFoundError as exc:
        raise UsageError(f"no plan at {plan_path}: is SWARM_RUN right?") from exc
    try:
        task = plan.task(env["SWARM_TASK"])
    except KeyError as exc:
        raise UsageError(f"task {env['SWARM_TASK']} is not in {plan_path}") from exc
    try:
        attempt = int(env.get("SWARM_ATTEMPT") or 1)
    except ValueError as exc:
        raise UsageError(f"SWARM_ATTEMPT must be a number, not {env['SWARM_ATTEMPT']!r}") from exc
    return task, attempt


def main(
    env: t.Mapping[str, str] | None = None,
    cwd: pathlib.Path | None = None,
    report: Reporter | None = None,
    out: t.TextIO | None = None,
) -> int:
    """Run the scripted agent; returns the process exit status."""
    env = os.environ if env is None else env
    cwd = cwd or pathlib.Path.cwd()
    out = out or sys.stdout
    try:
        task, attempt = load_task(env)
    except UsageError as exc:
        print(f"scripted agent: {exc}", file=sys.stderr, flush=True)
        return 2
    agent = ScriptedAgent(task, attempt, cwd, report or worker_reporter(cwd), out)
    try:
        agent.run()
    except Crash as crash:
        return crash.code
    except (ScriptError, CommandError, OSError, ValueError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        agent.say(f"step failed: {reason}")
        try:
            kind = FAILURE_TYPE_OF.get(getattr(exc, "kind", ""), "ERROR")
            agent.report(["fail", reason, "--type", kind])
        except CommandError as report_exc:
            agent.say(f"could not report the failure: {report_exc}")
            return 3
        return 1
    agent.say("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
