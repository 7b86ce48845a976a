"""CLI latency: the commands people and agents type, each from a fresh process, against a bare
``python -c pass`` of the same interpreter, alternating in the same run (issues #17 and #18).

    .venv/bin/python scripts/bench/cli_latency.py [--quick] [--json FILE] [--rounds N]

Rows: ``swarm worker progress`` and ``swarm mail send`` (target: within 2x bare Python start-up),
``swarm status`` of a finished run and ``swarm mail inbox --newest 20`` of a 2,000-message inbox
(target: within 4x). Each round runs the baseline and every command once, in that order, so a
busy machine slows all of them alike; the ratio is of the p50s.
"""

from __future__ import annotations

import os
import pathlib
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
    target: float
    """Ratio of the p50s that meets the target."""


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
        **ws.env,
        "SWARM_HOME": str(home),
        "SWARM_RUN": "lat",
        "SWARM_TASK": "t-lat",
        "SWARM_WORKER": "w-lat",
        "SWARM_MAYOR": "human",  # the reports go to a quiet inbox, not the one being listed
        "SWARM_KEY_FILE": str(key),
    }
    commands = [
        Command("swarm worker progress", (SWARM, "worker", "progress", "step done"), 2.0),
        Command(
            "swarm mail send",
            (SWARM, "mail", "send", "--to", "human", "--type", "NUDGE", "--body", "hi"),
            2.0,
        ),
        Command("swarm status", (SWARM, "status", "--repo", str(repo)), 4.0),
        Command(
            f"swarm mail inbox --newest 20 ({INBOX_SIZE:,} messages)",
            (SWARM, "mail", "inbox", "--agent", "mayor", "--limit", "20", "--json"),
            4.0,
        ),
    ]
    return env, commands


def _time(argv: t.Sequence[str], env: t.Mapping[str, str], cwd: pathlib.Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if result.returncode != 0:
        raise SystemExit(f"cli_latency: {' '.join(argv)} failed: {result.stderr.decode()[-500:]}")
    return elapsed


def measure(rounds: int) -> tuple[list[common.Row], dict[str, t.Any]]:
    with common.Workspace("cli") as ws:
        env, commands = _setup(ws)
        cwd = ws.dir / "repo"
        bare = (sys.executable, "-c", "pass")
        samples: dict[str, list[float]] = {"bare": [], **{c.metric: [] for c in commands}}
        for argv in (bare, *(c.argv for c in commands)):  # warm the page cache
            _time(argv, env, cwd)
        for _ in range(rounds):
            samples["bare"].append(_time(bare, env, cwd))
            for command in commands:
                samples[command.metric].append(_time(command.argv, env, cwd))
    base = common.summary(samples["bare"])
    rows = []
    for command in commands:
        ours = common.summary(samples[command.metric])
        ratio = ours["p50"] / base["p50"]
        note = f"p90 {ours['p90']:.0f} ms vs {base['p90']:.0f} ms; baseline: python -c pass"
        rows.append(
            common.Row(
                "cli",
                f"{command.metric} p50",
                ours["p50"],
                base["p50"],
                "ms",
                f"<= {command.target:g}x",
                ratio <= command.target,
                note,
            )
        )
    details = {
        "rounds": rounds,
        "bare": base,
        **{c.metric: common.summary(samples[c.metric]) for c in commands},
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
