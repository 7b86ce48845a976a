"""`swarm mail`: read and write Agent Mail as any identity (docs/agent-mail.md).

The mail root is ``$SWARM_HOME/mail``, else ``<repo>/.agents/swarm/mail`` for the repository in
the current directory; ``--repo`` overrides both. ``--agent`` (reading) and ``--from``
(sending) default to ``$SWARM_WORKER``; inside a worker pane sending as anyone else is refused.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import threading
import typing as t

import click

from agentmail import compose
from agentmail.errors import BadInput
from agentmail.store import MailStore, Stored
from runner.cli import fast
from runner.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    echo_json,
    fail,
    find_repo,
    handle_errors,
    json_option,
    repo_option,
)

if t.TYPE_CHECKING:
    from agentmail.leases import Lease

IMPORTANCE: t.Final = ("low", "normal", "high", "urgent")


def mail_root(repo: pathlib.Path | None) -> pathlib.Path:
    """``--repo``'s mail, else ``$SWARM_HOME/mail``, else the current repository's."""
    if repo is None and os.environ.get("SWARM_HOME"):
        return pathlib.Path(os.environ["SWARM_HOME"]) / "mail"
    return find_repo(repo) / ".agents" / "swarm" / "mail"


def open_store(repo: pathlib.Path | None) -> MailStore:
    return MailStore(mail_root(repo))


def stored_doc(stored: Stored) -> dict[str, t.Any]:
    doc: dict[str, t.Any] = json.loads(stored.envelope.to_json())
    doc["read"] = stored.read
    doc["acked"] = stored.acked
    doc["cursor"] = f"{stored.dseq:012d}"
    return doc


def _type_option(required: bool = False) -> t.Callable[[t.Callable[..., t.Any]], t.Any]:
    return click.option(
        "--type",
        "mtype",
        type=click.Choice(fast.MESSAGE_TYPES, case_sensitive=False),
        required=required,
        default=None,
        help="Message type (default: from the subject).",
    )


agent_option = click.option("--agent", default=None, help="Whose inbox (default: $SWARM_WORKER).")


@click.group(name="mail")
def command() -> None:
    """Agent Mail: the file-based inboxes of the mayor, the workers and humans.

    \b
    Examples:
      swarm mail register mayor
      swarm mail inbox --agent mayor --unread
      swarm mail watch --agent mayor
    """


@command.command()
@click.argument("agent")
@repo_option
@json_option
@handle_errors
def register(agent: str, repo: pathlib.Path | None, as_json: bool) -> None:
    """Create AGENT's inbox and signing key (idempotent).

    \b
    Examples:
      swarm mail register human
      swarm mail register worker-1 --json
    """
    store = open_store(repo)
    key_path = store.register(agent)
    if as_json:
        echo_json("mail.register", {"agent": agent, "key_file": str(key_path)})
    else:
        click.echo(str(key_path))


@command.command()
@click.option("--from", "sender", default=None, help="Sender (default: $SWARM_WORKER).")
@click.option("--to", "to", multiple=True, required=True, help="Recipient(s), repeat or a,b.")
@click.option("--cc", multiple=True, help="Copy recipient(s).")
@_type_option()
@click.option("--subject", default="", help="Subject, e.g. '[task-1] PROGRESS'.")
@click.option("--body", default=None, help="Body (markdown, agentops format).")
@click.option(
    "--body-file", type=click.File("r"), default=None, help="Read the body from a file (- stdin)."
)
@click.option("--thread", default=None, help="Thread id (default: the task id in the subject).")
@click.option("--ack-required/--no-ack-required", default=None, help="Ask for an ack.")
@click.option("--importance", type=click.Choice(IMPORTANCE), default="normal", show_default=True)
@click.option("--reply-to", default=None, help="Id of the message this answers.")
@click.option("--run", "run_id", default=None, help="Run id.")
@click.option("--idempotency-key", default=None, help="A retry with the same key is a no-op.")
@repo_option
@json_option
@handle_errors
def send(
    sender: str | None,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    mtype: str | None,
    subject: str,
    body: str | None,
    body_file: t.TextIO | None,
    thread: str | None,
    ack_required: bool | None,
    importance: str,
    reply_to: str | None,
    run_id: str | None,
    idempotency_key: str | None,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Send a message; the agentops subject/body pair is parsed into typed fields.

    \b
    Examples:
      swarm mail send --from human --to mayor --type GUIDANCE --body 'merge t1 first'
      swarm mail send --from w1 --to mayor --subject '[t1] PROGRESS' --body-file body.md
    """
    name, key = compose.sender_identity(sender)
    if body is not None and body_file is not None:
        fail("pass --body or --body-file, not both", EXIT_USAGE)
    envelope = compose.compose(
        name,
        to,
        body=body_file.read() if body_file is not None else (body or ""),
        mtype=mtype,
        subject=subject,
        cc=cc,
        thread=thread,
        ack_required=ack_required,
        importance=importance,
        reply_to=reply_to,
        run_id=run_id,
        idempotency_key=idempotency_key,
    )
    stored = open_store(repo).send(envelope, key=key)
    if as_json:
        echo_json("mail.message", {"message": json.loads(stored.to_json())})
    else:
        click.echo(stored.id)


@command.command()
@agent_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most N messages.")
@click.option(
    "--after",
    "--since",
    "cursor",
    default=None,
    help="Only messages after this cursor (or message id).",
)
@click.option("--before", default=None, help="Only messages before this cursor (or message id).")
@click.option("--newest", is_flag=True, help="Newest first (page on with --before NEXT_CURSOR).")
@click.option("--unread", is_flag=True, help="Only messages not marked read.")
@click.option("--unacked", is_flag=True, help="Only messages that want an ack and have none.")
@_type_option()
@click.option("--thread", default=None, help="Only this thread.")
@click.option("--from", "sender", default=None, help="Only from this sender.")
@repo_option
@json_option
@handle_errors
def inbox(
    agent: str | None,
    limit: int | None,
    cursor: str | None,
    before: str | None,
    newest: bool,
    unread: bool,
    unacked: bool,
    mtype: str | None,
    thread: str | None,
    sender: str | None,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """List an inbox (changes nothing), oldest first; page on with --after NEXT_CURSOR, or
    newest first with --newest and --before NEXT_CURSOR. A page costs what it lists.

    \b
    Examples:
      swarm mail inbox --agent mayor --unread
      swarm mail inbox --agent mayor --limit 20 --after 000000000040 --json
      swarm mail inbox --agent mayor --newest --limit 50
      swarm mail inbox --agent mayor --newest --limit 50 --before 000000009951
    """
    name = compose.reader_identity(agent)
    page = open_store(repo).list_docs(
        name,
        cursor=cursor,
        before=before,
        newest=newest,
        limit=limit,
        unread=True if unread else None,
        unacked=True if unacked else None,
        type=mtype.upper() if mtype else None,
        thread=thread,
        sender=sender,
    )
    fast.print_inbox(page, name, newest=newest, as_json=as_json)


@command.command()
@click.argument("msg_id")
@agent_option
@click.option("--peek", is_flag=True, help="Show it without marking it read.")
@repo_option
@json_option
@handle_errors
def read(
    msg_id: str, agent: str | None, peek: bool, repo: pathlib.Path | None, as_json: bool
) -> None:
    """Show a message and mark it read.

    \b
    Examples:
      swarm mail read 01JD7Q7K3M4S6V8X9Y0Z1A2B3C --agent human
      swarm mail read 01JD7Q7K3M4S6V8X9Y0Z1A2B3C --peek --json
    """
    name = compose.reader_identity(agent)
    store = open_store(repo)
    if not peek:
        store.mark_read(name, msg_id)
    stored = store.get(name, msg_id)
    if as_json:
        echo_json("mail.message", {"message": stored_doc(stored)})
        return
    env = stored.envelope
    click.echo(f"id: {env.id}\nfrom: {env.sender}\nto: {', '.join(env.to)}")
    click.echo(f"type: {env.type.value}\nsubject: {env.subject}\ncreated: {env.created}")
    if env.thread_id:
        click.echo(f"thread: {env.thread_id}")
    click.echo("")
    click.echo(env.body_md)


@command.command()
@click.argument("msg_ids", nargs=-1, required=True)
@agent_option
@repo_option
@json_option
@handle_errors
def ack(
    msg_ids: tuple[str, ...], agent: str | None, repo: pathlib.Path | None, as_json: bool
) -> None:
    """Acknowledge message(s) (idempotent).

    \b
    Examples:
      swarm mail ack 01JD7Q7K3M4S6V8X9Y0Z1A2B3C --agent mayor
    """
    name = compose.reader_identity(agent)
    store = open_store(repo)
    for msg_id in msg_ids:
        store.ack(name, msg_id)
    if as_json:
        echo_json("mail.ack", {"agent": name, "acked": list(msg_ids)})
    else:
        click.echo(f"acked {len(msg_ids)} message(s)")


@command.command()
@click.argument("thread_id")
@agent_option
@repo_option
@json_option
@handle_errors
def thread(thread_id: str, agent: str | None, repo: pathlib.Path | None, as_json: bool) -> None:
    """List one thread of an inbox.

    \b
    Examples:
      swarm mail thread task-1 --agent mayor
      swarm mail thread task-1 --agent human --json
    """
    name = compose.reader_identity(agent)
    messages = open_store(repo).thread(name, thread_id)
    if as_json:
        echo_json(
            "mail.thread",
            {"agent": name, "thread": thread_id, "messages": [stored_doc(s) for s in messages]},
        )
    else:
        fast.print_messages([stored_doc(s) for s in messages])


@command.command()
@agent_option
@click.option("--include-read", is_flag=True, help="Also messages already marked read.")
@click.option("--polling", is_flag=True, help="Poll instead of inotify.")
@click.option("--rescan", type=float, default=2.0, show_default=True, help="Rescan period (s).")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Stop after N messages.")
@repo_option
@json_option
@handle_errors
def watch(
    agent: str | None,
    include_read: bool,
    polling: bool,
    rescan: float,
    count: int | None,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Stream one JSON line per message (unread ones first) until interrupted.

    \b
    Examples:
      swarm mail watch --agent human
      swarm mail watch --agent mayor --include-read --count 10
    """
    from agentmail.watch import Watcher  # watchdog: only the command that watches loads it

    name = compose.reader_identity(agent)
    store = open_store(repo)
    done = threading.Event()
    seen = [0]

    def emit(stored: Stored) -> None:
        if done.is_set():
            return
        sys.stdout.write(json.dumps(stored_doc(stored), default=str) + "\n")
        sys.stdout.flush()
        seen[0] += 1
        if count is not None and seen[0] >= count:
            done.set()

    watcher = Watcher(
        store, name, emit, rescan_interval=rescan, include_read=include_read, polling=polling
    )
    watcher.start()
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    finally:
        watcher.stop()


def _lease_line(lease: Lease) -> str:
    kind = "exclusive" if lease.exclusive else "shared"
    reason = f"  ({lease.reason})" if lease.reason else ""
    return (
        f"{lease.id}  {lease.agent}  {kind}  until {lease.expires_at:%Y-%m-%dT%H:%M:%SZ}  "
        f"{', '.join(lease.patterns)}{reason}"
    )


def _ttl(value: str) -> float:
    from protocol.plan import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadInput(f"--ttl: {exc}") from None


@command.command()
@click.argument("patterns", nargs=-1, required=True)
@agent_option
@click.option("--shared", is_flag=True, help="A shared (non-exclusive) lease.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 30m, 2h or seconds.")
@click.option("--reason", default="", help="Why (e.g. the task id).")
@repo_option
@json_option
@handle_errors
def reserve(
    patterns: tuple[str, ...],
    agent: str | None,
    shared: bool,
    ttl: str,
    reason: str,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Reserve path patterns (refused if they overlap another agent's lease).

    \b
    Examples:
      swarm mail reserve 'src/api/' --agent w1 --ttl 30m --reason task-1
      swarm mail reserve README.md --agent w2 --shared
    """
    from agentmail.leases import Leases, dump

    name = compose.reader_identity(agent)
    lease = Leases(mail_root(repo)).reserve(
        name, patterns, exclusive=not shared, ttl=_ttl(ttl), reason=reason
    )
    if as_json:
        echo_json("mail.lease", {"lease": dump(lease)})
    else:
        click.echo(lease.id)


@command.command()
@click.argument("lease_id", required=False)
@agent_option
@click.option("--all", "release_all", is_flag=True, help="Release every lease of the agent.")
@repo_option
@json_option
@handle_errors
def release(
    lease_id: str | None,
    agent: str | None,
    release_all: bool,
    repo: pathlib.Path | None,
    as_json: bool,
) -> None:
    """Release a lease (only its holder may).

    \b
    Examples:
      swarm mail release 01JD7Q7K3M4S6V8X9Y0Z1A2B3C --agent w1
      swarm mail release --all --agent w1
    """
    if (lease_id is None) == (not release_all):
        fail("pass a LEASE_ID or --all", EXIT_USAGE)
    from agentmail.leases import Leases

    name = compose.reader_identity(agent)
    count = Leases(mail_root(repo)).release(lease_id, name)
    if as_json:
        echo_json("mail.release", {"agent": name, "released": count})
    else:
        click.echo(f"released {count} lease(s)")


@command.command()
@repo_option
@json_option
@handle_errors
def leases(repo: pathlib.Path | None, as_json: bool) -> None:
    """List live leases.

    \b
    Examples:
      swarm mail leases
      swarm mail leases --json
    """
    from agentmail.leases import Leases, dump

    live = Leases(mail_root(repo)).list()
    if as_json:
        echo_json("mail.leases", {"leases": [dump(lease) for lease in live]})
        return
    if not live:
        click.echo("no leases")
    for lease in live:
        click.echo(_lease_line(lease))
