"""Shared CLI plumbing: exit codes, error reporting, ``--json`` output, repository discovery."""

from __future__ import annotations

import functools
import json
import logging
import os
import pathlib
import sys
import traceback
import typing as t

import click
from pydantic import ValidationError

from runner.errors import RunnerError, exit_code_for

if t.TYPE_CHECKING:
    from protocol.state import RunState

EXIT_OK: t.Final = 0
EXIT_FAILED: t.Final = 1
EXIT_USAGE: t.Final = 2
EXIT_UNEXPECTED: t.Final = 3
EXIT_TIMEOUT: t.Final = 4
EXIT_INTERRUPTED: t.Final = 130

JSON_VERSION: t.Final = 1

P = t.ParamSpec("P")
R = t.TypeVar("R")

logger = logging.getLogger(__name__)


def fail(message: str, code: int = EXIT_FAILED) -> t.NoReturn:
    """Print one line to stderr and exit with ``code``."""
    click.echo(f"swarm: {message}", err=True)
    sys.exit(code)


def handle_errors(func: t.Callable[P, R]) -> t.Callable[P, R]:
    """Map library exceptions to the documented exit codes with a one-line message.

    Expected errors (``RunnerError``, ``AgentMailError``, ``ValueError``) print one line; anything
    else is a bug: exit 3 with the traceback written to ``$SWARM_HOME``'s crash log when known.
    """

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("swarm: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `swarm ... | head`: the reader has what it wanted
            from runner.cli.fast import broken_pipe

            broken_pipe()
        except (RunnerError, ValueError, ValidationError, OSError) as exc:
            if _is_expected(exc):
                fail(_one_line(exc), exit_code_for(exc))
            raise _unexpected(exc) from exc
        except Exception as exc:
            if _is_expected(exc):  # AgentMailError (LeaseConflict, NotHolder, ...)
                fail(_one_line(exc), exit_code_for(exc))
            raise _unexpected(exc) from exc

    return wrapper


def _is_expected(exc: BaseException) -> bool:
    from agentmail.errors import AgentMailError

    return isinstance(exc, RunnerError | AgentMailError | ValueError | ValidationError | OSError)


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()
        first = errs[0]
        where = ".".join(str(p) for p in first["loc"])
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        return f"{exc.title}: {where}: {first['msg']}{more}"
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _unexpected(exc: BaseException) -> SystemExit:
    from runner.paths import state_home

    home = os.environ.get("SWARM_HOME")
    log_dir = pathlib.Path(home) / "logs" if home else state_home() / "swarm"
    tb = "".join(traceback.format_exception(exc))
    where = "stderr"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / "crash.log"
        with path.open("a") as fh:
            fh.write(tb + "\n")
        where = str(path)
    except OSError:
        click.echo(tb, err=True)
    click.echo(f"swarm: unexpected error: {exc!r} (traceback in {where})", err=True)
    return SystemExit(EXIT_UNEXPECTED)


def run_exit_code(state: RunState) -> int:
    """The exit code of a run that ended: 0 done, 4 stopped by its timeout, else 1."""
    if state.status == "done":
        return EXIT_OK
    if state.status == "stopped" and state.stop_reason == "timeout":
        return EXIT_TIMEOUT
    return EXIT_FAILED


def echo_json(kind: str, doc: t.Mapping[str, t.Any]) -> None:
    """Print one versioned JSON document on stdout (and nothing else there)."""
    click.echo(json.dumps({"version": JSON_VERSION, "kind": kind, **doc}, indent=2, default=str))


run_option = click.option("--run", "run_id", default=None, help="Run id (default: the latest).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
repo_option = click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Repository to act on (default: the one containing the current directory).",
)


def find_repo(repo: pathlib.Path | None) -> pathlib.Path:
    """The top of the git work tree containing ``repo`` (or the cwd); exit 2 if none."""
    start = (repo or pathlib.Path.cwd()).resolve()
    for path in (start, *start.parents):
        if (path / ".git").exists():
            return path
    fail(f"not a git repository: {start} (use --repo DIR or cd into a repository)", EXIT_USAGE)
