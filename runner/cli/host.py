"""``swarm host serve --root DIR``: the remote half of a host (docs/hosts.md), started by the
mayor over ssh; JSON lines on stdin/stdout (:mod:`runner.hosts.agent`). People do not run it
by hand, except to check that a host has a working swarm: ``ssh HOST swarm host serve --root
DIR < /dev/null`` exits 0."""

from __future__ import annotations

import pathlib
import sys

import click

from runner.cli.common import handle_errors


@click.group(name="host")
def command() -> None:
    """The remote half of a host: what the mayor runs over ssh (docs/hosts.md).

    \b
    Examples:
      ssh build1 swarm host serve --root /srv/swarm < /dev/null   # does the host answer?
    """


@command.command(name="serve")
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    help="The host's work root (its bare repository, clones and worker boxes).",
)
@handle_errors
def serve_command(root: pathlib.Path) -> None:
    """Answer the mayor's JSON-line requests on stdin until it closes (exit 0).

    \b
    Examples:
      ssh build1 swarm host serve --root /srv/swarm < /dev/null
      printf '{"id":1,"op":"hello"}\\n' | swarm host serve --root /tmp/h
    """
    from runner.hosts.agent import serve

    sys.exit(serve(root, sys.stdin.buffer, sys.stdout.buffer))
