"""Shared pieces of the benchmarks in ``scripts/bench/``: result rows and the markdown table,
throw-away repositories and tmux servers, ``swarm`` subprocesses, agent start stamps, /proc
readings, and ``run-all`` (what ``scripts/bench/run_all`` calls).

Every benchmark prints a table ``| metric | ours | baseline | ratio | target | met? |`` whose
baseline is measured in the same run on the same machine, and writes the same figures as JSON
with ``--json FILE``.

    .venv/bin/python scripts/bench/common.py run-all [--quick] [--json FILE] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pathlib
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import typing as t

ROOT: t.Final = pathlib.Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from protocol.state import Event  # noqa: E402
from runner.events import read_events  # noqa: E402
from runner.paths import SwarmPaths  # noqa: E402

PYTHON: t.Final = sys.executable
BENCH_DIR: t.Final = pathlib.Path(__file__).resolve().parent
GIT_ENV: t.Final = {
    "GIT_AUTHOR_NAME": "Swarm Bench",
    "GIT_AUTHOR_EMAIL": "swarm-bench@example.invalid",
    "GIT_COMMITTER_NAME": "Swarm Bench",
    "GIT_COMMITTER_EMAIL": "swarm-bench@example.invalid",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_CONFIG_NOSYSTEM": "1",
}
BENCHES: t.Final = (
    "mail",
    "cli_latency",
    "dispatch",
    "scheduling",
    "scale",
    "arbiter",
    "recovery",
    "isolation",
    "hosts",
)
MINUTE_S: t.Final = 0.05
"""Seconds of ``sleep`` per minute of plan effort in live runs (1 min of effort = 0.05 s)."""


# ------------------------------------------------------------------------------- result rows


class Row(t.NamedTuple):
    """One line of the table. ``ratio`` is ours / baseline when both are numbers."""

    bench: str
    metric: str
    ours: float | None
    baseline: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or self.baseline == 0:
            return None
        return self.ours / self.baseline

    def as_json(self) -> dict[str, t.Any]:
        return {**self._asdict(), "ratio": self.ratio}

    @classmethod
    def from_json(cls, data: t.Mapping[str, t.Any]) -> Row:
        return cls(**{k: data[k] for k in cls._fields if k in data})


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if value == 0:
        text = "0"
    elif abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    elif abs(value) >= 0.1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".rstrip()


def table(rows: t.Sequence[Row]) -> str:
    lines = [
        "| bench | metric | ours | baseline | ratio | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ratio = row.ratio
        met = "" if row.met is None else ("yes" if row.met else "**no**")
        metric = row.metric + (f" ({row.note})" if row.note else "")
        lines.append(
            f"| {row.bench} | {metric} | {number(row.ours, row.unit)} | "
            f"{number(row.baseline, row.unit)} | {'' if ratio is None else number(ratio) + 'x'} | "
            f"{row.target} | {met} |"
        )
    return "\n".join(lines)


def percentile(samples: t.Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; needs at least one sample."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    at = q * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def summary(samples: t.Sequence[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50": percentile(samples, 0.5),
        "p90": percentile(samples, 0.9),
        "max": max(samples),
        "mean": statistics.fmean(samples),
    }


def parser(doc: str | None) -> argparse.ArgumentParser:
    """The options every benchmark script takes."""
    first = (doc or "").strip().splitlines()[0] if doc else None
    p = argparse.ArgumentParser(description=first)
    p.add_argument("--quick", action="store_true", help="the short variant (run_all --quick)")
    p.add_argument("--json", type=pathlib.Path, default=None, help="write the figures here")
    p.add_argument(
        "--profile",
        action="store_true",
        help="run the mayor under pyinstrument (needs it in .venv: run_all --profile)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return p


def profile_path(bench: str, enabled: bool, suffix: str = "") -> pathlib.Path | None:
    """Where the mayor's pyinstrument report goes (``bench-results/profile-<bench>.txt``)."""
    if not enabled:
        return None
    out = ROOT / "bench-results"
    out.mkdir(parents=True, exist_ok=True)
    return out / f"profile-{bench}{suffix}.txt"


def emit(
    bench: str,
    rows: t.Sequence[Row],
    details: t.Mapping[str, t.Any],
    json_path: pathlib.Path | None,
) -> None:
    """Print the table and write ``{"bench", "rows", "details"}`` to ``json_path``."""
    print(table(rows), flush=True)
    if json_path is not None:
        doc = {"bench": bench, "rows": [r.as_json() for r in rows], "details": details}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- the work space


def bench_env(home: pathlib.Path) -> dict[str, str]:
    """The environment of every process a benchmark starts: fixed git identity and no user git
    config, no outer tmux or swarm identity, HOME and XDG state in the temporary directory."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SWARM_", "GIT_")) and k not in ("TMUX", "TMUX_PANE")
    }
    env.update(GIT_ENV)
    env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), SHELL="/bin/sh")
    return env


class Workspace:
    """A temporary directory with a private tmux socket name; ``close()`` kills that tmux
    server (only ours: the name carries our pid) and removes the directory."""

    def __init__(self, name: str, *, keep: bool = False) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix=f"swarm-bench-{name}-"))
        self.socket = f"bench-{os.getpid()}-{name}"
        self.keep = keep
        (self.dir / "home").mkdir()
        self.env = bench_env(self.dir / "home")
        self.stamps = self.dir / "stamps"
        self.stamps.mkdir()
        self._extra: list[str] = []

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for socket in (self.socket, *self._extra):
            tmux_kill_server(socket)
        if self.keep:
            print(f"kept {self.dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def new_socket(self) -> str:
        """Another private socket of this workspace (killed by :meth:`close` too)."""
        name = f"{self.socket}-{len(self._extra) + 1}"
        self._extra.append(name)
        return name

    def repo(self, name: str = "repo") -> pathlib.Path:
        """A fresh repository on ``main`` with one commit."""
        repo = self.dir / name
        repo.mkdir()
        self.git(repo, "init", "-q", "-b", "main")
        (repo / "README.md").write_text("# bench\n")
        self.git(repo, "add", "-A")
        self.git(repo, "commit", "-q", "-m", "initial")
        return repo

    def git(self, cwd: pathlib.Path, *args: str) -> str:
        out = subprocess.run(
            ["git", *args], cwd=cwd, env=self.env, check=True, capture_output=True, text=True
        )
        return out.stdout.strip()

    def swarm_argv(self, *args: str, profile: pathlib.Path | None = None) -> list[str]:
        """``python -m runner ARGS``; under pyinstrument writing ``profile`` when given."""
        if profile is None:
            return [PYTHON, "-m", "runner", *args]
        return [PYTHON, "-m", "pyinstrument", "-r", "text", "-o", str(profile),
                "-p", "processor_options.filter_threshold=0.0005",
                "-m", "runner", *args]  # fmt: skip

    def swarm(
        self, *args: str, profile: pathlib.Path | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.swarm_argv(*args, profile=profile),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def swarm_popen(
        self, *args: str, profile: pathlib.Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = (self.dir / f"swarm-{time.monotonic_ns()}.log").open("wb")
        return subprocess.Popen(
            self.swarm_argv(*args, profile=profile),
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def run_args(
        self,
        repo: pathlib.Path,
        plan: pathlib.Path,
        run_id: str,
        *extra: str,
        socket: str | None = None,
        stamped: bool = True,
    ) -> list[str]:
        """Arguments of a foreground ``swarm run`` in this workspace."""
        args = [
            "run", str(plan), "--repo", str(repo), "--run-id", run_id,
            "--worktree-root", str(self.dir / "wt"), "--foreground",
            "--tmux-socket", socket or self.socket, *extra,
        ]  # fmt: skip
        if stamped:
            args += ["--agent-cmd", stamp_template(self.stamps)]
        return args


def tmux_kill_server(socket: str) -> None:
    """Kill the tmux server on ``socket`` (benchmarks only ever name their own sockets)."""
    subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)


STAMP_SCRIPT: t.Final = 'date +%s.%N > "$0/$1"; shift; exec "$@"'


def stamp_template(stamp_dir: pathlib.Path) -> str:
    """An ``--agent-cmd`` template whose process first writes the wall-clock time it started to
    ``<stamp_dir>/<task>`` (``date``: no interpreter start-up first), then execs the scripted
    agent."""
    head = shlex.join(["/bin/sh", "-c", STAMP_SCRIPT, str(stamp_dir)])
    return f"{head} {{task}} {{python}} -m runner.agents.scripted"


def stamp_argv(stamp_dir: pathlib.Path, name: str, *argv: str) -> list[str]:
    """The same stamp in front of any command (for the baselines)."""
    return ["/bin/sh", "-c", STAMP_SCRIPT, str(stamp_dir), name, *argv]


def read_stamps(stamp_dir: pathlib.Path) -> dict[str, float]:
    stamps: dict[str, float] = {}
    for path in stamp_dir.iterdir():
        text = path.read_text().strip()
        if text:
            stamps[path.name] = float(text)
    return stamps


def write_plan(
    path: pathlib.Path, tasks: t.Sequence[t.Mapping[str, t.Any]], **extra: t.Any
) -> pathlib.Path:
    path.write_text(json.dumps({"name": path.stem, "tasks": list(tasks), **extra}, indent=1))
    return path


def sleep_task(tid: str, minutes: float, blocked_by: t.Sequence[str] = ()) -> dict[str, t.Any]:
    """A sleep-only scripted task of ``minutes`` effort (``MINUTE_S`` seconds per minute)."""
    return {
        "id": tid,
        "subject": f"task {tid}",
        "files": [f"out/{tid}.txt"],
        "effort": f"{minutes:g}min",
        "blocked_by": list(blocked_by),
        "script": [{"sleep": round(minutes * MINUTE_S, 4)}],
        "allow_empty": True,  # sleeps only: nothing to merge, as in the baseline
    }


def run_events(repo: pathlib.Path, run_id: str) -> list[Event]:
    return read_events(SwarmPaths.for_repo(repo).run(run_id).events)


def ts(event: Event) -> float:
    return event.ts.timestamp()


def first(events: t.Iterable[Event], kind: str, task_id: str | None = None) -> Event | None:
    return next(
        (e for e in events if e.kind == kind and (task_id is None or e.task_id == task_id)), None
    )


def wait_for(
    predicate: t.Callable[[], bool], timeout: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def check_run(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip()[-3000:]
        raise RuntimeError(f"{what} exited {result.returncode}:\n{tail}")


# ------------------------------------------------------------------------------------- /proc

CLK_TCK: t.Final = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own user+system CPU, CPU of its reaped children) of ``pid`` in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of ``pid`` in MB."""
    out: dict[str, float] = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def machine() -> dict[str, t.Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0.0
    with contextlib.suppress(OSError, ValueError):
        first_line = pathlib.Path("/proc/meminfo").read_text().splitlines()[0]
        mem = int(first_line.split()[1]) / 1024 / 1024

    def version(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "missing"

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gb": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "tmux": version("tmux", "-V"),
        "git": version("git", "--version"),
        "load_avg_at_start": os.getloadavg(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------------ run-all


def mail_rows(figures: t.Mapping[str, t.Any]) -> list[Row]:
    """The rows of ``mail.py --json`` figures (its own format)."""
    watch, poll = figures["watch_ms"], figures["poll_1s_ms"]
    t1, t8 = figures["throughput_1"]["per_second"], figures["throughput_8"]["per_second"]
    rows = [
        Row("mail", "send -> callback p50", watch["p50"], poll["p50"], "ms",
            "<= 2 ms", watch["p50"] <= 2, "baseline: 1 s poller"),
        Row("mail", "send -> callback p99", watch["p99"], poll["p99"], "ms",
            "<= 10 ms", watch["p99"] <= 10, "baseline: 1 s poller"),
        Row("mail", "durable throughput, 1 writer", t1, None, "msg/s", ">= 1,000", t1 >= 1000),
        Row("mail", "durable throughput, 8 writers", t8, None, "msg/s", ">= 2,000", t8 >= 2000),
    ]  # fmt: skip
    paging = figures.get("paging")
    if paging:
        newest, floor = paging["newest_50_ms"]["p50"], paging["newest_50_floor_ms"]["p50"]
        every, raw = paging["page_all_newest_s"], paging["read_all_floor_s"]
        forward = paging["page_all_forward_s"]
        note = "baseline: read + parse the same files raw"
        if "page_all_newest_cpu_s" in paging:
            cpu = f"CPU {paging['page_all_newest_cpu_s']:.2f} s; {note}"
        else:
            cpu = note
        rows += [
            Row("mail", "newest 50 of 10,000", newest, floor, "ms", "< 20 ms", newest < 20, note),
            Row("mail", "10,000 in pages of 50, newest first", every, raw, "s", "< 1 s",
                every < 1, cpu),
            Row("mail", "10,000 in pages of 50, oldest first", forward, raw, "s", "< 1 s",
                forward < 1, note),
        ]  # fmt: skip
        if "page_all_models_s" in paging:
            models_cpu = f"CPU {paging['page_all_models_cpu_s']:.2f} s; {note}"
            rows.append(Row("mail", "  the same newest first through the models (the mayor's "
                            "read of what it acts on)", paging["page_all_models_s"], raw, "s",
                            note=models_cpu))  # fmt: skip
    return rows


def run_all(argv: t.Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="run_all", description="Run every benchmark.")
    p.add_argument("--quick", action="store_true", help="short variants (under 5 minutes)")
    p.add_argument("--json", type=pathlib.Path, default=ROOT / "bench-results" / "latest.json")
    p.add_argument("--profile", action="store_true", help="profile the mayor (pyinstrument)")
    p.add_argument("--only", default=",".join(BENCHES), help="comma-separated benchmarks")
    args = p.parse_args(argv)
    out_dir = args.json.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, t.Any] = {"quick": args.quick, "machine": machine(), "benches": {}}
    rows: list[Row] = []
    started = time.monotonic()
    for bench in [b for b in args.only.split(",") if b]:
        if bench not in BENCHES:
            print(
                f"run_all: unknown benchmark {bench!r}: use {', '.join(BENCHES)}", file=sys.stderr
            )
            return 2
        part = out_dir / f"{bench}.json"
        part.unlink(missing_ok=True)
        cmd = [PYTHON, str(BENCH_DIR / f"{bench}.py"), "--json", str(part)]
        if args.quick:
            cmd.append("--quick")
        if args.profile and bench != "mail":
            cmd.append("--profile")
        print(f"==> {bench}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        result = subprocess.run(cmd, cwd=ROOT, check=False)
        seconds = time.monotonic() - t0
        entry: dict[str, t.Any] = {"seconds": round(seconds, 1), "exit": result.returncode}
        if result.returncode == 0 and part.exists():
            data = json.loads(part.read_text())
            if bench == "mail":
                bench_rows = mail_rows(data)
                entry.update(rows=[r.as_json() for r in bench_rows], details=data)
            else:
                bench_rows = [Row.from_json(r) for r in data["rows"]]
                entry.update(rows=data["rows"], details=data["details"])
            rows += bench_rows
        else:
            rows.append(Row(bench, "benchmark failed", None, None, "", met=False,
                            note=f"exit {result.returncode}"))  # fmt: skip
        doc["benches"][bench] = entry
    doc["seconds"] = round(time.monotonic() - started, 1)
    doc["rows"] = [r.as_json() for r in rows]
    args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print()
    print(
        f"## swarm-runner benchmarks ({'quick' if args.quick else 'full'}, {doc['seconds']:.0f} s)"
    )
    print()
    print(table(rows))
    print()
    missed = [r for r in rows if r.met is False]
    print(f"{len(rows)} rows, {len(missed)} target(s) missed; figures in {args.json}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["run-all"]:
        sys.exit(run_all(sys.argv[2:]))
    print("usage: common.py run-all [--quick] [--json FILE] [--profile]", file=sys.stderr)
    sys.exit(2)
