"""A scripted fake model on 127.0.0.1 that the real agent CLIs talk to.

One stdlib HTTP server (random port) speaks the four wire formats the CLIs use:

- Anthropic Messages, streamed as SSE with ``tool_use`` blocks (Claude Code);
- OpenAI Responses, streamed as SSE with ``function_call`` items (Codex);
- OpenAI Chat Completions, plain or streamed (aider);
- Gemini ``generateContent`` / ``streamGenerateContent?alt=sse`` with ``functionCall`` parts.

It plays a model that does one swarm task the way a good agent would: read the brief, report
``swarm worker accepted``, write the manifest's first file, ``git add``, ``git commit``, report
``swarm worker offer``, then say it is done. Every request carries the whole conversation, so the
server keeps no state: the next step is the number of tool calls already in the conversation,
and the task is found from the brief path in the prompt (several workers at once never mix).
Side requests (titles, summaries, commit messages, "who speaks next") get short plain answers.

Every request is recorded (``requests``), and with ``log_path`` appended as one JSON line, which
is how the CLIs' request shapes were learnt.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import pathlib
import re
import threading
import time
import typing as t
import uuid

BRIEF_RE: t.Final = re.compile(r"(/[^\s`'\"]*?/brief\.md)")
SWARM_RE: t.Final = re.compile(r"(/[^\s`'\"]*?/swarm) worker accepted")
MANIFEST_RE: t.Final = re.compile(r"^- `([^`*?\[]+)`$", re.M)
TASK_RE: t.Final = re.compile(r"^# Task ([^:\s]+):", re.M)
FIRST_RE: t.Final = re.compile(r"fake-model-first: `([^`]+)`")
"""A task description may name a command the model runs first (to meet a permission prompt)."""
LAZY: t.Final = "fake-model-lazy"
"""A task description with this word plays a model that commits, then ends its turn without
reporting; once swarm's nudge (typed into the CLI's prompt) is in the conversation, it offers."""
NUDGED: t.Final = "You have not reported to swarm yet"


class Step(t.NamedTuple):
    kind: t.Literal["read", "shell", "write", "done"]
    path: str = ""
    command: str = ""
    content: str = ""


@dataclasses.dataclass
class Brief:
    path: str
    task: str
    swarm: str
    file: str
    first: str = ""
    lazy: bool = False

    @classmethod
    def find(cls, text: str) -> Brief | None:
        """The brief named in ``text`` (or the brief itself, for aider's --message-file)."""
        body = ""
        match = BRIEF_RE.search(text)
        path = match.group(1) if match else ""
        if path:
            try:
                body = pathlib.Path(path).read_text(encoding="utf-8")
            except OSError:
                body = ""
        if not body and TASK_RE.search(text):
            body = text
        task = TASK_RE.search(body)
        if task is None:
            return None
        section = body.split("## File manifest", 1)[-1]
        files = MANIFEST_RE.findall(section)
        swarm = SWARM_RE.search(body)
        first = FIRST_RE.search(body)
        return cls(
            path=path,
            task=task.group(1),
            swarm=swarm.group(1) if swarm else "swarm",
            file=files[0] if files else f"{task.group(1)}.txt",
            first=first.group(1) if first else "",
            lazy=LAZY in body,
        )

    def steps(self, *, nudged: bool = False) -> list[Step]:
        message = f"{self.task}: add {self.file}"
        offer = Step("shell", command=f"{self.swarm} worker offer '{message}'")
        if self.lazy and not nudged:
            offer = Step("done", content="All done: the file is committed.")
        return [
            Step("read", path=self.path),
            Step("shell", command=f"{self.swarm} worker accepted"),
            *([Step("shell", command=self.first)] if self.first else []),
            Step("write", path=self.file, content=f"written by the fake model for {self.task}\n"),
            Step("shell", command=f"git add {self.file}"),
            Step("shell", command=f"git commit -m '{message}'"),
            offer,
            Step("done", content=f"Task {self.task} is done and offered."),
        ]

    def write_step(self) -> Step:
        return next(s for s in self.steps() if s.kind == "write")

    def step(self, calls: int, *, nudged: bool = False) -> Step:
        steps = [s for s in self.steps(nudged=nudged) if s.kind != "read" or s.path]
        return steps[min(calls, len(steps) - 1)]


class Recorded(t.NamedTuple):
    time: float
    method: str
    path: str
    body: t.Any


class FakeModel:
    """``with FakeModel() as model:`` serves on ``model.url`` until the block ends."""

    def __init__(self, log_path: pathlib.Path | None = None, *, delay: float = 0.0) -> None:
        self.log_path = log_path
        self.delay = delay
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"model": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeModel:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def record(self, method: str, path: str, body: t.Any) -> None:
        entry = Recorded(time.time(), method, path, body)
        with self._lock:
            self.requests.append(entry)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry._asdict(), default=str) + "\n")

    def tasks_seen(self) -> set[str]:
        """Tasks whose brief appeared in some request."""
        seen: set[str] = set()
        for entry in self.requests:
            brief = Brief.find("\n".join(_texts(entry.body)))
            if brief is not None:
                seen.add(brief.task)
        return seen


# --- the wire formats --------------------------------------------------------------------------


def _texts(value: t.Any) -> t.Iterator[str]:
    """Every string inside a JSON value (to find the brief path wherever a CLI put it)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)


def _user_text(body: t.Any, key: str) -> str:
    """The text of the conversation's user turns, tools' results left out."""
    out: list[str] = []
    for message in body.get(key) or ():
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content", message.get("parts"))
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") in (None, "text", "input_text"):
                    text = part.get("text")
                    if isinstance(text, str):
                        out.append(text)
    return "\n".join(out)


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    model: t.ClassVar[FakeModel]
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: t.Any) -> None:
        pass

    # plumbing

    def _body(self) -> t.Any:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            return {"raw": raw.decode("utf-8", "replace")}

    def _json(self, status: int, payload: t.Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: t.Iterable[tuple[str | None, t.Any]]) -> None:
        chunks = []
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            chunks.append((f"event: {name}\n" if name else "") + f"data: {text}\n\n")
        payload = "".join(chunks).encode()
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self.model.record("GET", self.path, None)
        path = self.path.split("?", 1)[0]
        if path.endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
        else:
            self._json(404, {"error": {"message": f"no such endpoint {path}"}})

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self._body()
        self.model.record("POST", self.path, body)
        if self.model.delay:
            time.sleep(self.model.delay)
        path = self.path.split("?", 1)[0]
        try:
            if path.endswith("/messages/count_tokens"):
                self._json(200, {"input_tokens": 100})
            elif path.endswith("/messages"):
                self._anthropic(body)
            elif path.endswith("/responses"):
                self._responses(body)
            elif path.endswith("/chat/completions"):
                self._chat(body)
            elif ":countTokens" in path:
                self._json(200, {"totalTokens": 100})
            elif ":streamGenerateContent" in path or ":generateContent" in path:
                self._gemini(body, stream=":stream" in path)
            else:
                self._json(404, {"error": {"message": f"no such endpoint {path}"}})
        except (BrokenPipeError, ConnectionResetError):
            pass

    # Anthropic Messages

    def _anthropic(self, body: t.Any) -> None:
        tools = {tool.get("name") for tool in body.get("tools") or () if isinstance(tool, dict)}
        calls = sum(
            1
            for message in body.get("messages") or ()
            if message.get("role") == "assistant" and isinstance(message.get("content"), list)
            for block in message["content"]
            if isinstance(block, dict) and block.get("type") == "tool_use"
        )
        said = _user_text(body, "messages")
        brief = Brief.find(said)
        block: dict[str, t.Any]
        if brief is None or "Bash" not in tools:
            block, stop = {"type": "text", "text": "OK."}, "end_turn"
        else:
            step = brief.step(calls, nudged=NUDGED in said)
            stop = "tool_use"
            if step.kind == "read":
                block = _tool_use("Read", {"file_path": step.path})
            elif step.kind == "write":
                block = _tool_use("Write", {"file_path": step.path, "content": step.content})
            elif step.kind == "shell":
                block = _tool_use("Bash", {"command": step.command, "description": step.command})
            else:
                block, stop = {"type": "text", "text": step.content}, "end_turn"
        message_id = _id("msg")
        usage = {"input_tokens": 100, "output_tokens": 20}
        message: dict[str, t.Any] = {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "fake-model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        start = {"type": "message_start", "message": message}
        if not body.get("stream"):
            self._json(
                200,
                {
                    **message,
                    "content": [block],
                    "stop_reason": stop,
                    "usage": usage,
                },
            )
            return
        events: list[tuple[str | None, t.Any]] = [("message_start", start)]
        if block["type"] == "text":
            events += [
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    },
                ),
            ]
        else:
            events += [
                (
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {**block, "input": {}},
                    },
                ),
                (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {
                            "type": "input_json_delta",
                            "partial_json": json.dumps(block["input"]),
                        },
                    },
                ),
            ]
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": None},
                    "usage": {"output_tokens": 20},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        self._sse(events)

    # OpenAI Responses

    def _responses(self, body: t.Any) -> None:
        items = body.get("input") or []
        tools = {
            tool.get("name") or tool.get("type")
            for tool in body.get("tools") or ()
            if isinstance(tool, dict)
        }
        calls = sum(
            1
            for item in items
            if isinstance(item, dict)
            and item.get("type") in ("function_call", "custom_tool_call", "local_shell_call")
        )
        brief = Brief.find(_user_text({"input": items}, "input"))
        shell = next(
            (n for n in ("shell_command", "exec_command", "shell") if n in tools),
            None,
        )
        item: dict[str, t.Any]
        if brief is None or shell is None:
            item = _output_message("OK.")
        else:
            step = brief.step(calls)
            command = _shell_of(step)
            if command is None:
                item = _output_message(step.content)
            else:
                args: dict[str, t.Any] = (
                    {"command": ["bash", "-c", command]} if shell == "shell" else {}
                )
                if shell == "shell_command":
                    args = {"command": command}
                elif shell == "exec_command":
                    args = {"cmd": command}
                item = {
                    "type": "function_call",
                    "id": _id("fc"),
                    "call_id": _id("call"),
                    "name": shell,
                    "arguments": json.dumps(args),
                    "status": "completed",
                }
        response_id = _id("resp")
        base = {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "fake-model"),
        }
        usage = {
            "input_tokens": 100,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 20,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 120,
        }
        done = {**base, "status": "completed", "output": [item], "usage": usage}
        if not body.get("stream"):
            self._json(200, done)
            return
        self._sse(
            [
                (
                    "response.created",
                    {
                        "type": "response.created",
                        "response": {**base, "status": "in_progress", "output": []},
                    },
                ),
                (
                    "response.output_item.added",
                    {"type": "response.output_item.added", "output_index": 0, "item": item},
                ),
                (
                    "response.output_item.done",
                    {"type": "response.output_item.done", "output_index": 0, "item": item},
                ),
                ("response.completed", {"type": "response.completed", "response": done}),
            ]
        )

    # OpenAI Chat Completions (aider)

    def _chat(self, body: t.Any) -> None:
        messages = body.get("messages") or []
        system = "\n".join(
            str(m.get("content"))
            for m in messages
            if isinstance(m, dict) and m.get("role") == "system"
        )
        text = "\n".join(str(m.get("content")) for m in messages if isinstance(m, dict))
        brief = Brief.find(_user_text(body, "messages"))
        if "commit message" in system.lower() or brief is None:
            reply = "add the requested file"
        elif "SEARCH" in system and "REPLACE" in system:
            step = brief.write_step()
            reply = (
                f"{step.path}\n```\n<<<<<<< SEARCH\n=======\n{step.content}>>>>>>> REPLACE\n```\n"
            )
        else:
            step = brief.write_step()
            reply = f"{step.path}\n```\n{step.content}```\n"
        if "written by the fake model" in text and "commit message" not in system.lower():
            reply = "Done."  # a reflection turn after the edit was applied
        created = int(time.time())
        base = {"id": _id("chatcmpl"), "created": created, "model": body.get("model", "fake")}
        usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
        if not body.get("stream"):
            self._json(
                200,
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        chunk = {**base, "object": "chat.completion.chunk"}
        self._sse(
            [
                (
                    None,
                    {
                        **chunk,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"role": "assistant", "content": reply},
                                "finish_reason": None,
                            }
                        ],
                    },
                ),
                (
                    None,
                    {
                        **chunk,
                        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": usage,
                    },
                ),
                (None, "[DONE]"),
            ]
        )

    # Gemini

    def _gemini(self, body: t.Any, *, stream: bool) -> None:
        contents = body.get("contents") or []
        declared = {
            decl.get("name")
            for tool in body.get("tools") or ()
            if isinstance(tool, dict)
            for decl in tool.get("functionDeclarations") or ()
        }
        calls = sum(
            1
            for content in contents
            if isinstance(content, dict) and content.get("role") == "model"
            for part in content.get("parts") or ()
            if isinstance(part, dict) and "functionCall" in part
        )
        brief = Brief.find(_user_text(body, "contents") or "")
        part: dict[str, t.Any]
        config = body.get("generationConfig") or body.get("config") or {}
        if "run_shell_command" not in declared or brief is None:
            if config.get("responseMimeType") == "application/json" or config.get(
                "responseJsonSchema"
            ):
                part = {"text": json.dumps({"reasoning": "done", "next_speaker": "user"})}
            else:
                part = {"text": "OK."}
        else:
            step = brief.step(calls)
            if step.kind == "read":
                part = {"functionCall": {"name": "read_file", "args": {"file_path": step.path}}}
            elif step.kind == "write":
                part = {
                    "functionCall": {
                        "name": "write_file",
                        "args": {"file_path": step.path, "content": step.content},
                    }
                }
            elif step.kind == "shell":
                part = {
                    "functionCall": {
                        "name": "run_shell_command",
                        "args": {"command": step.command, "description": step.command},
                    }
                }
            else:
                part = {"text": step.content}
        payload = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [part]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 100,
                "candidatesTokenCount": 20,
                "totalTokenCount": 120,
            },
            "modelVersion": "gemini-2.5-pro",
        }
        if stream:
            self._sse([(None, payload)])
        else:
            self._json(200, payload)


def _tool_use(name: str, args: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"type": "tool_use", "id": _id("toolu"), "name": name, "input": args}


def _output_message(text: str) -> dict[str, t.Any]:
    return {
        "type": "message",
        "id": _id("msg"),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _shell_of(step: Step) -> str | None:
    """A step as one shell command (Codex does everything through its shell tool)."""
    if step.kind == "shell":
        return step.command
    if step.kind == "read":
        return f"cat {step.path}"
    if step.kind == "write":
        folder = str(pathlib.PurePosixPath(step.path).parent)
        mkdir = f"mkdir -p {folder} && " if folder != "." else ""
        return f"{mkdir}printf '%s' '{step.content.rstrip()}' > {step.path}"
    return None
