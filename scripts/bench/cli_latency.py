"""CLI latency: the commands people and agents type, each from a fresh process, against a bare
``python -c pass`` of the same interpreter, alternating in the same run (issues #17 and #18).

    .venv/bin/python scripts/bench/cli_latency.py [--quick] [--json FILE] [--rounds N]

Rows: ``swarm worker progress`` and ``swarm mail send`` (target: within 2x bare Python start-up),
``swarm status`` of a finished run and ``swarm mail inbox --newest 20`` of a 2,000-message inbox
(target: within 4x), and for reference what importing the pydantic base model costs (the floor
of any command that reads a file through the models: ``swarm status`` does). Each round runs
the baseline and every command once, in that order, so a busy machine slows all of them alike;
the ratio is of the wall-clock p50s (the CPU time of each is in the note). Bytecode is written
as an installed package has it (``PYTHONDONTWRITEBYTECODE`` is dropped from the commands'
environment).
"""

from __future__ import annotations

import os
import pathlib
import resource
import subprocess
import sys
import time
import typing as t

import common

SWARM: t.Final = str(pathlib.Path(sys.executable).with_name("swarm"))
"""The installed ``swarm`` (what an agent's shell runs), next to this interpreter."""
INBOX_SIZE: t.Final = 2000


class Command(t.NamedTuple):
    metric: str
    argv: tuple[str, ...]
    """``{i}`` is the round's number: each report is a new one, as an agent's are."""
    target: float
    """Ratio of the p50s that meets the target (0: a reference row, no target)."""


def _setup(ws: common.Workspace) -> tuple[dict[str, str], list[Command]]:
    """A repository with a finished one-task run, a worker identity and a full mayor inbox."""
    from agentmail.store import MailStore
    from protocol.messages import Envelope

    repo = ws.repo()
    plan = common.write_plan(ws.dir / "plan.json", [common.sleep_task("t1", 0.1)])
    common.check_run(ws.swarm(*ws.run_args(repo, plan, "lat")), "the run for swarm status")
    home = repo / ".agents" / "swarm"
    store = MailStore(home / "mail")
    key = store.register("w-lat")
    store.register("mayor")
    store.register("human")
    for i in range(INBOX_SIZE):
        doc = {"from": "human", "to": ["mayor"], "type": "NUDGE", "body_md": f"n{i}"}
        store.send(Envelope.model_validate(doc))
    env = {
        **{k: v for k, v in ws.env.items() if k != "PYTHONDONTWRITEBYTECODE"},  # as installed
        "SWARM_HOME": str(home),
        "SWARM_RUN": "lat",
        "SWARM_TASK": "t-lat",
        "SWARM_WORKER": "w-lat",
        "SWARM_MAYOR": "human",  # the reports go to a quiet inbox, not the one being listed
        "SWARM_KEY_FILE": str(key),
    }
    commands = [
        Command("swarm worker progress", (SWARM, "worker", "progress", "step {i} done"), 2.0),
        Command(
            "swarm mail send",
            (SWARM, "mail", "send", "--to", "human", "--type", "NUDGE", "--body", "hi {i}"),
            2.0,
        ),
        Command("swarm status", (SWARM, "status", "--repo", str(repo)), 4.0),
        Command(
            f"swarm mail inbox --newest 20 ({INBOX_SIZE:,} messages)",
            (SWARM, "mail", "inbox", "--agent", "mayor", "--newest", "--limit", "20", "--json"),
            4.0,
        ),
        Command(
            "  floor of a command that builds a pydantic model: importing protocol.base",
            (sys.executable, "-c", "import protocol.base"),
            0.0,
        ),
    ]
    return env, commands


def _time(
    argv: t.Sequence[str], env: t.Mapping[str, str], cwd: pathlib.Path
) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) milliseconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    if result.returncode != 0:
        raise SystemExit(f"cli_latency: {' '.join(argv)} failed: {result.stderr.decode()[-500:]}")
    return elapsed, cpu


def measure(rounds: int) -> tuple[list[common.Row], dict[str, t.Any]]:
    """Every command and the baseline once per round, in turn."""
    with common.Workspace("cli") as ws:
        env, commands = _setup(ws)
        cwd = ws.dir / "repo"
        bare = (sys.executable, "-c", "pass")
        names = ["bare", *(c.metric for c in commands)]
        samples: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        argvs = (bare, *(c.argv for c in commands))
        for argv in argvs:  # warm the caches, write bytecode
            _time([a.format(i="warm-up") for a in argv], env, cwd)
        for i in range(rounds):
            for name, argv in zip(names, argvs, strict=True):
                wall, used = _time([a.format(i=i) for a in argv], env, cwd)
                samples[name].append(wall)
                cpu[name].append(used)
    base = common.summary(samples["bare"])
    base_cpu = common.summary(cpu["bare"])
    rows = []
    for command in commands:
        ours = common.summary(samples[command.metric])
        ratio = ours["p50"] / base["p50"]
        spent = common.summary(cpu[command.metric])
        note = (
            f"p90 {ours['p90']:.0f} vs {base['p90']:.0f} ms; CPU p50 {spent['p50']:.0f} vs "
            f"{base_cpu['p50']:.0f} ms; baseline: python -c pass"
        )
        rows.append(
            common.Row(
                "cli",
                f"{command.metric} p50",
                ours["p50"],
                base["p50"],
                "ms",
                f"<= {command.target:g}x" if command.target else "",
                ratio <= command.target if command.target else None,
                note,
            )
        )
    details = {
        "rounds": rounds,
        "wall_ms": {name: common.summary(samples[name]) for name in names},
        "cpu_ms": {name: common.summary(cpu[name]) for name in names},
        "load_avg": os.getloadavg(),
    }
    return rows, details


def main(argv: t.Sequence[str] | None = None) -> int:
    p = common.parser(__doc__)
    p.add_argument("--rounds", type=int, default=None, help="alternating rounds (default 20/60)")
    args = p.parse_args(argv)
    rows, details = measure(args.rounds or (20 if args.quick else 60))
    common.emit("cli", rows, details, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
