"""The fast path of ``swarm worker <verb>``, ``swarm mail send``, ``swarm mail inbox`` and
``swarm status``: no click, no pydantic (and for status no rich).

An agent reports with ``swarm worker ...`` many times per task, and polls its inbox, each time
from a fresh process, so the interpreter's start-up is most of what a command costs: this module
parses the command line of the click commands (:mod:`runner.cli.worker`, :mod:`runner.cli.mail`)
by itself and calls the same library (:mod:`runner.worker_report`, which builds the message
without pydantic; :meth:`agentmail.store.MailStore.list_docs`, which lists without it). The
inbox's output is printed by :func:`print_inbox` on both paths. ``swarm status`` reads
``state.json`` as plain JSON when it covers every event (:func:`runner.status_view.current_doc`)
and prints it with :func:`print_status`, as the click command does with the fold it reads.

It is only a shortcut. :func:`run` returns None, and the click command runs instead, for any
command line it does not fully understand (``--help``, an unknown or malformed option, a value
click would refuse, ``mail send`` of a structured type, which needs the agentops parser) and for
any error before the message is sent, so messages, exit codes and ``--json`` output have one
source: the click commands. A report retried that way is not sent twice (its idempotency key is
the same, see :mod:`runner.worker_report`). ``tests/runner/test_cli_fast.py`` runs both.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import typing as t

if t.TYPE_CHECKING:
    from agentmail.store import DocPage, StoredDoc
    from runner.paths import RunPaths
    from runner.report import StateDoc

Check = tuple[str, ...] | tuple[int, int | None] | None
"""How click checks a value: a choice (case-insensitive unless ``=`` leads), an int range
(``(min, max)``, max None for none), or nothing."""


class Verb(t.NamedTuple):
    arguments: tuple[str, ...]
    options: t.Mapping[str, Check]
    flags: frozenset[str] = frozenset({"--json"})


PASS_FAIL: t.Final = ("PASS", "FAIL")
OFFER: t.Final = Verb(
    ("summary",),
    {
        "--commit": None,
        "--files": None,
        "--tests": PASS_FAIL,
        "--lint": PASS_FAIL,
        "--build": PASS_FAIL,
    },
)


def _verbs() -> dict[str, Verb]:
    from runner import worker_report as report

    return {
        "accepted": Verb((), {"--title": None}),
        "progress": Verb(("text",), {"--step": None, "--context-usage": (0, 100), "--files": None}),
        "help": Verb(
            ("text",),
            {
                "--issue-type": report.ISSUE_TYPES,
                "--question": None,
                "--tried": None,
                "--files": None,
            },
        ),
        "escape": Verb(
            (),
            {
                "--finding": None,
                "--files": None,
                "--intent": None,
                "--severity": ("=", *report.SEVERITIES),  # click's Choice is case-sensitive here
            },
        ),
        "offer": OFFER,
        "done": OFFER,
        "fail": Verb(
            ("reason",),
            {
                "--type": report.FAILURE_TYPES,
                "--attempts": (0, None),
                "--commit": None,
                "--files": None,
            },
        ),
        "checkpoint": Verb(
            (),
            {
                "--reason": report.CHECKPOINT_REASONS,
                "--commit": None,
                "--progress": None,
                "--next": None,
                "--context-usage": (0, 100),
            },
        ),
    }


REQUIRED: t.Final = {"escape": ("--finding", "--files")}


class Parsed(t.NamedTuple):
    arguments: list[str]
    options: dict[str, str]
    flags: set[str]


def parse(args: t.Sequence[str], verb: Verb) -> Parsed | None:
    """The arguments, options and flags of ``args``, or None where click should judge them."""
    arguments: list[str] = []
    options: dict[str, str] = {}
    flags: set[str] = set()
    rest = iter(args)
    for arg in rest:
        if not arg.startswith("-") or arg == "-":
            arguments.append(arg)
            continue
        name, eq, value = arg.partition("=")
        if name in verb.flags and not eq:
            flags.add(name)
            continue
        if name not in verb.options:
            return None  # --help, --, an unknown or abbreviated option: click's to answer
        if not eq:
            following = next(rest, None)
            if following is None:
                return None
            value = following
        if not _valid(value, verb.options[name]):
            return None
        options[name] = value  # the last one wins, as in click
    if len(arguments) != len(verb.arguments):
        return None
    return Parsed(arguments, options, flags)


def _valid(value: str, check: Check) -> bool:
    if check is None:
        return True
    if isinstance(check[0], int):
        low, high = check
        digits = value.lstrip("+-")
        if not digits.isdigit():
            return False
        number = int(value)
        return number >= low and (high is None or number <= high)
    if check[0] == "=":
        return value in check[1:]
    return value.upper() in (str(c).upper() for c in check)


def _files(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(f.strip() for f in value.split(",") if f.strip())


def _echo(kind: str, doc: t.Mapping[str, t.Any], as_json: bool, msg_id: str) -> None:
    """What the click commands print: the message id, or with ``--json`` one document
    (``runner.cli.common.echo_json``)."""
    sys.stdout.write(json_text(kind, doc) if as_json else msg_id + "\n")
    sys.stdout.flush()


def json_text(kind: str, doc: t.Mapping[str, t.Any]) -> str:
    """``runner.cli.common.echo_json``'s text: one versioned document and a newline."""
    return json.dumps({"version": 1, "kind": kind, **doc}, indent=2, default=str) + "\n"


def broken_pipe() -> t.NoReturn:
    """End quietly, exit 1, after a write to a closed pipe (``swarm mail read ID | head -3``),
    as rich's console does for the tables: stdout goes to /dev/null first, so the flush at exit
    cannot fail again with a traceback."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(1)


def run(args: t.Sequence[str]) -> int | None:
    """Run ``swarm ARGS`` if this path can (the exit code), else None (click runs it)."""
    if args[:1] == ["status"]:
        return _status(args[1:])
    if args[:2] == ["mail", "send"]:
        return _mail_send(args[2:])
    if args[:2] == ["mail", "inbox"]:
        return _mail_inbox(args[2:])
    if len(args) < 2:
        return None
    verb = _verbs().get(args[1])
    if verb is None:
        return None
    parsed = parse(args[2:], verb)
    if parsed is None or any(o not in parsed.options for o in REQUIRED.get(args[1], ())):
        return None
    try:
        sent = _report(args[1], parsed)
    except Exception:
        return None
    _echo(
        "worker.message",
        {"message": dict(sent.doc), **sent.files},
        "--json" in parsed.flags,
        sent.id,
    )
    return 0


def _report(name: str, parsed: Parsed) -> t.Any:
    from agentmail.worker_env import WorkerEnv
    from runner import worker_report as report

    env = WorkerEnv.from_environ()
    opts = parsed.options
    arg = parsed.arguments[0] if parsed.arguments else ""
    if name == "accepted":
        return report.accepted(env, title=opts.get("--title", ""))
    if name == "progress":
        return report.progress(
            env,
            arg,
            step=opts.get("--step", ""),
            context_usage=int(opts.get("--context-usage", "0")),
            files=_files(opts.get("--files")),
        )
    if name == "help":
        return report.help_request(
            env,
            arg,
            issue_type=opts.get("--issue-type", "STUCK"),
            question=opts.get("--question", ""),
            tried=opts.get("--tried", ""),
            files=_files(opts.get("--files")),
        )
    if name == "escape":
        return report.escape(
            env,
            finding=opts["--finding"],
            files=_files(opts["--files"]),
            intent=opts.get("--intent", ""),
            severity=opts.get("--severity", "medium"),
        )
    if name in ("offer", "done"):
        files = opts.get("--files")
        return report.offer(
            env,
            arg,
            cwd=pathlib.Path.cwd(),
            done=name == "done",
            commit=opts.get("--commit"),
            files=_files(files) if files is not None else None,
            tests=opts.get("--tests"),
            lint=opts.get("--lint"),
            build=opts.get("--build"),
        )
    if name == "fail":
        return report.fail(
            env,
            arg,
            failure_type=opts.get("--type", "ERROR"),
            attempts=int(opts.get("--attempts", "1")),
            commit=opts.get("--commit", ""),
            files=_files(opts.get("--files")),
        )
    return report.checkpoint(
        env,
        reason=opts.get("--reason", "MANUAL"),
        commit=opts.get("--commit", ""),
        progress_text=opts.get("--progress", ""),
        context_usage=int(opts.get("--context-usage", "0")),
        next_steps=opts.get("--next", ""),
    )


TEXT_TYPES: t.Final = ("HELP_RESPONSE", "GUIDANCE", "NUDGE", "TERMINATE", "UNKNOWN")
"""The free-text types: their fields are the trimmed body, no agentops parsing needed."""
MAIL_SEND: t.Final = Verb(
    (),
    {
        "--from": None,
        "--to": None,
        "--cc": None,
        "--type": TEXT_TYPES,
        "--body": None,
        "--thread": None,
        "--importance": ("=", "low", "normal", "high", "urgent"),
        "--reply-to": None,
        "--run": None,
        "--idempotency-key": None,
    },
    frozenset({"--json", "--ack-required", "--no-ack-required"}),
)
MULTIPLE: t.Final = ("--to", "--cc")


def _mail_send(args: t.Sequence[str]) -> int | None:
    """``swarm mail send`` of a free-text type inside a worker (``$SWARM_HOME`` names the mail);
    anything else is click's (``runner.cli.mail.send``)."""
    home = os.environ.get("SWARM_HOME")
    if not home or any(a in ("--subject", "--body-file", "--repo") for a in args):
        return None
    multiple: dict[str, list[str]] = {"--to": [], "--cc": []}
    single: list[str] = []
    rest = iter(args)
    for arg in rest:  # collect the repeatable options; the rest goes through parse()
        name, eq, value = arg.partition("=")
        if name in MULTIPLE:
            value = value if eq else next(rest, "")
            if not value:
                return None
            multiple[name].append(value)
        else:
            single.append(arg)
    parsed = parse(single, MAIL_SEND)
    if parsed is None or not multiple["--to"] or "--type" not in parsed.options:
        return None
    if {"--ack-required", "--no-ack-required"} <= parsed.flags:
        return None
    root = pathlib.Path(home) / "mail"
    try:
        doc, key = _compose_text(root, parsed, multiple)
    except Exception:
        return None
    try:  # not twice: without an idempotency key a second send is a second message
        doc = _send(root, doc, key)
    except Exception as exc:
        from runner.errors import exit_code_for

        text = str(exc).strip()
        sys.stderr.write(f"swarm: {text.splitlines()[0] if text else type(exc).__name__}\n")
        return exit_code_for(exc) if isinstance(exc, OSError | ValueError) else 3
    _echo("mail.message", {"message": doc}, "--json" in parsed.flags, doc["id"])
    return 0


def _compose_text(
    root: pathlib.Path, parsed: Parsed, multiple: t.Mapping[str, t.Sequence[str]]
) -> tuple[dict[str, t.Any], bytes]:
    """The envelope document and signing key of ``compose.compose`` for a free-text type."""
    from agentmail import compose, wire
    from agentmail.delivery import load_key
    from protocol.agentops_text import trim
    from protocol.ids import check_id

    opts = parsed.options
    name, key = compose.sender_identity(opts.get("--from"))
    if key is None:
        key = load_key(root / ".keys" / f"{check_id(name)}.key")
    to = compose.split_names(multiple["--to"])
    cc = compose.split_names(multiple["--cc"])
    mtype = opts["--type"].upper()
    thread = opts.get("--thread") or None
    run_id = opts.get("--run") or os.environ.get("SWARM_RUN") or None
    idem = opts.get("--idempotency-key")
    for value in (*to, *cc, *filter(None, (thread, run_id))):
        check_id(value)  # the envelope's Id fields: a bad one is click's (pydantic's) to report
    if idem is not None and len(idem) > 200:
        raise ValueError("idempotency key too long")
    body = opts.get("--body", "")
    ack = None
    if parsed.flags & {"--ack-required", "--no-ack-required"}:
        ack = "--ack-required" in parsed.flags
    doc = wire.envelope_doc(
        sender=name,
        to=to,
        mtype=mtype,
        fields=wire.fields_doc(mtype, text=trim(body)),
        thread_id=thread,
        run_id=run_id,
        subject=f"[{thread}] {mtype}" if thread else mtype,
        body_md=body,
        ack_required=ack,
    )
    doc.update(cc=list(cc), importance=opts.get("--importance", "normal"))
    doc.update(in_reply_to=opts.get("--reply-to"), idempotency_key=idem)
    return doc, key


def _send(root: pathlib.Path, doc: dict[str, t.Any], key: bytes) -> dict[str, t.Any]:
    from agentmail import ledger, ulid
    from agentmail.delivery import send_doc

    def redeliver(previous: t.Mapping[str, t.Any]) -> None:
        ledger.redeliver(root, previous)

    return send_doc(root, doc, key, new_id=ulid.UlidGenerator().new, redeliver=redeliver).doc


MESSAGE_TYPES: t.Final = (
    "BEAD_ACCEPTED", "PROGRESS", "HELP_REQUEST", "HELP_RESPONSE", "OFFERING_READY", "DONE",
    "FAILED", "CHECKPOINT", "SPAWN_REQUEST", "SPAWN_ACK", "OFFERING_ACCEPTED", "RETRY_REQUIRED",
    "GUIDANCE", "NUDGE", "TERMINATE", "ASSIGN", "SCOPE_ESCAPE", "MERGED", "MERGE_FAILED",
    "UNKNOWN",
)  # fmt: skip
"""``protocol.messages.MessageType`` by value (``tests/runner/test_cli_mail.py`` compares)."""
MAIL_INBOX: t.Final = Verb(
    (),
    {
        "--agent": None,
        "--limit": (1, None),
        "--after": None,
        "--since": None,
        "--before": None,
        "--type": MESSAGE_TYPES,
        "--thread": None,
        "--from": None,
        "--repo": None,
    },
    frozenset({"--json", "--newest", "--unread", "--unacked"}),
)


def _mail_root(repo: str | None) -> pathlib.Path | None:
    """``runner.cli.mail.mail_root`` where it needs no click: None where click must answer."""
    home = os.environ.get("SWARM_HOME")
    if repo is None and home:
        return pathlib.Path(home) / "mail"
    top = _repo_top(repo)
    return None if top is None else top / ".agents" / "swarm" / "mail"


def _repo_top(repo: str | None) -> pathlib.Path | None:
    """``runner.cli.common.find_repo`` of ``--repo``: None where click must answer."""
    start = pathlib.Path(repo) if repo is not None else pathlib.Path.cwd()
    if start.is_file():
        return None  # click's Path(file_okay=False) refuses it
    start = start.resolve()
    for path in (start, *start.parents):
        if (path / ".git").exists():
            return path
    return None  # "not a git repository": click's message


def _mail_inbox(args: t.Sequence[str]) -> int | None:
    parsed = parse(args, MAIL_INBOX)
    if parsed is None or {"--after", "--since"} <= parsed.options.keys():
        return None  # both spellings of one option: click decides which wins
    opts = parsed.options
    root = _mail_root(opts.get("--repo"))
    if root is None:
        return None
    from agentmail import compose
    from agentmail.store import MailStore

    newest = "--newest" in parsed.flags
    try:
        name = compose.reader_identity(opts.get("--agent"))
        page = MailStore(root).list_docs(
            name,
            cursor=opts.get("--after", opts.get("--since")),
            before=opts.get("--before"),
            newest=newest,
            limit=int(opts["--limit"]) if "--limit" in opts else None,
            unread=True if "--unread" in parsed.flags else None,
            unacked=True if "--unacked" in parsed.flags else None,
            type=opts["--type"].upper() if "--type" in opts else None,
            thread=opts.get("--thread"),
            sender=opts.get("--from"),
        )
    except Exception:
        return None  # an unknown agent, a bad cursor ...: click's to report (listing is
        # idempotent: what it quarantined stays quarantined)
    print_inbox(page, name, newest=newest, as_json="--json" in parsed.flags)
    return 0


def inbox_message(stored: StoredDoc) -> dict[str, t.Any]:
    """One message of ``swarm mail inbox --json`` (a ``StoredDoc``): the envelope's document
    and its state in the inbox."""
    return {
        **stored.doc,
        "read": stored.read,
        "acked": stored.acked,
        "cursor": f"{stored.dseq:012d}",
    }


def print_inbox(page: DocPage, agent: str, *, newest: bool, as_json: bool) -> None:
    """What ``swarm mail inbox`` prints for a ``DocPage``: one JSON document, or a table and
    the next cursor (on stderr)."""
    if as_json:
        doc = {
            "agent": agent,
            "messages": [inbox_message(s) for s in page.messages],
            "next_cursor": page.next_cursor,
            "has_more": page.has_more,
            "order": "newest" if newest else "oldest",
        }
        _echo("mail.inbox", doc, True, "")
        return
    print_messages([inbox_message(s) for s in page.messages])
    if page.next_cursor is not None:
        more = " (more)" if page.has_more else ""
        again = "--before" if newest else "--after"
        sys.stderr.write(f"next cursor: {page.next_cursor}{more} (pass {again})\n")


def print_messages(messages: t.Sequence[t.Mapping[str, t.Any]]) -> None:
    """A table of messages (their ``--json`` documents), or "no messages"."""
    if not messages:
        sys.stdout.write("no messages\n")
        sys.stdout.flush()
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "from", "type", "subject", "state"):
        table.add_column(column)
    for doc in messages:
        state = ("read" if doc["read"] else "new") + (" acked" if doc["acked"] else "")
        if doc["ack_required"] and not doc["acked"]:
            state += " ack-required"
        # escape: "[t1] PROGRESS" is a subject, not rich markup
        table.add_row(doc["id"], doc["from"], doc["type"], escape(doc["subject"]), state)
    Console(soft_wrap=True).print(table)


STATUS: t.Final = Verb((), {"--repo": None})
STATUS_RUN: t.Final = Verb(("run",), {"--repo": None})


def _status(args: t.Sequence[str]) -> int | None:
    """``swarm status [RUN] [--repo R] [--json]`` of a run whose ``state.json`` is current;
    anything else (``--rebuild``, events after the state, an error) is click's
    (``runner.cli.status``)."""
    parsed = parse(args, STATUS) or parse(args, STATUS_RUN)
    if parsed is None:
        return None
    top = _repo_top(parsed.options.get("--repo"))
    if top is None:
        return None
    from runner import status_view
    from runner.paths import SwarmPaths

    try:
        rid = status_view.resolve_run(top, parsed.arguments[0] if parsed.arguments else None)
        run = SwarmPaths.for_repo(top).run(rid)
        doc = status_view.current_doc(run)
        if doc is None:
            return None
        text: str | None
        if "--json" in parsed.flags:
            document = status_view.json_document(run, doc, status_view.whys(run, doc))
            text = json_text("status", document)
        else:
            text = status_text(run, doc)
    except Exception:
        return None  # printed nothing yet: click reads it again and reports what is wrong
    if text is None:
        return None
    sys.stdout.write(text)  # outside the try: a closed pipe is no reason to run it again
    sys.stdout.flush()
    return 0


def print_status(run: RunPaths, doc: StateDoc) -> bool:
    """Print what ``swarm status`` shows of the run ``doc`` (:func:`status_text`); False,
    having printed nothing, where that must be drawn by rich."""
    text = status_text(run, doc)
    if text is None:
        return False
    sys.stdout.write(text)
    sys.stdout.flush()
    return True


def status_text(run: RunPaths, doc: StateDoc) -> str | None:
    """:func:`runner.status_view.render` for this output (its width and styles)."""
    from runner import status_view

    return status_view.render(
        doc,
        whys=status_view.whys(run, doc),
        missing=status_view.mayor_missing(run, doc["run_id"], doc["status"]),
        width=status_view.terminal_width(sys.stdout),
        style=status_view.Style.detect(sys.stdout),
    )
