"""`swarm plan validate|simulate|graph` through click, and determinism across hash seeds.

The tests drive the `plan` group itself (what `swarm plan` dispatches to)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest
import yaml
from click.testing import CliRunner

from runner.cli.plan import command as plan_cli

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _write(tmp_path: pathlib.Path, raw: object, name: str = "plan.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _chain(n: int) -> dict[str, t.Any]:
    tasks = [
        {"id": f"T{i:05d}", "files": [f"src/m{i}.py"], "effort": "1min"}
        | ({"blocked_by": [f"T{i - 1:05d}"]} if i else {})
        for i in range(n)
    ]
    return {"name": "chain", "tasks": tasks}


def test_validate_ok_summary() -> None:
    result = CliRunner().invoke(plan_cli, ["validate", str(EXAMPLES / "diamond.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid plan 'diamond'" in result.output
    assert "tasks            4 (0 done, 4 to do)" in result.output
    assert "critical path    2h: T01 -> T02 -> T04" in result.output
    assert "max parallelism  2" in result.output
    assert "gates            tests" in result.output


def test_validate_json_ok() -> None:
    path = EXAMPLES / "diamond.yaml"
    result = CliRunner().invoke(plan_cli, ["validate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["kind"] == "plan-validate"
    assert doc["ok"] is True and doc["problems"] == []
    assert doc["summary"]["critical_path"] == {"minutes": 120.0, "ids": ["T01", "T02", "T04"]}
    assert doc["summary"]["tasks"] == 4 and doc["summary"]["done"] == 0


def test_validate_done_tasks_leave_the_critical_path(tmp_path: pathlib.Path) -> None:
    raw = yaml.safe_load((EXAMPLES / "diamond.yaml").read_text())
    raw["tasks"][0]["status"] = "done"
    result = CliRunner().invoke(plan_cli, ["validate", str(_write(tmp_path, raw)), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert summary["done"] == 1 and summary["todo"] == 3
    assert summary["critical_path"]["ids"] == ["T02", "T04"]


def test_validate_problems_exit_2_one_line_each() -> None:
    path = EXAMPLES / "bad-cycle.yaml"
    result = CliRunner().invoke(plan_cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}: task T07: blocked_by: cycle T07 -> T08 -> T07",
        f"{path}: task T09: files: '/etc/hosts' is absolute; use a path relative to the "
        "repository root",
        f"{path}: task T09: blocked_by: 'All Phase 2-3 tasks' is not a task id; list the ids "
        "it waits for (e.g. [T05, T06])",
    ]


def test_validate_problems_json_exit_2() -> None:
    path = EXAMPLES / "bad-cycle.yaml"
    result = CliRunner().invoke(plan_cli, ["validate", str(path), "--json"])
    assert result.exit_code == 2, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["summary"] is None
    assert len(doc["problems"]) == 3


def test_validate_missing_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "nope.yaml"
    result = CliRunner().invoke(plan_cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == f"{path}: no such file"
    result = CliRunner().invoke(plan_cli, ["validate", str(path), "--json"])
    assert result.exit_code == 2, result.output
    assert json.loads(result.stdout)["problems"] == [f"{path}: no such file"]


def test_validate_long_chain(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(_chain(10_000)))
    result = CliRunner().invoke(plan_cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "T00000 -> T00001" in result.output and "(9990 more)" in result.output
    doc = _chain(10_000)
    doc["tasks"][0]["blocked_by"] = ["T09999"]
    path.write_text(json.dumps(doc))
    result = CliRunner().invoke(plan_cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"{path}: task T00000: blocked_by: cycle T00000 -> T09999")


def _random_plan(seed: int) -> dict[str, t.Any]:
    import random

    rng = random.Random(seed)
    tasks: list[dict[str, t.Any]] = []
    for i in range(60):
        task: dict[str, t.Any] = {
            "id": f"t{rng.randrange(1000):03d}x{i}",
            "files": [f"src/{rng.choice('abcdef')}/{rng.randrange(5)}.py"],
            "effort": rng.choice(["S", "M", "L", "1h", "45min"]),
            "priority": rng.randrange(3),
        }
        if tasks:
            task["blocked_by"] = sorted({rng.choice(tasks)["id"] for _ in range(rng.randrange(3))})
        tasks.append(task)
    # add problems too, so their order is covered
    tasks.append({"id": "bad1", "files": ["/x"], "blocked_by": ["zzz", "bad2"]})
    tasks.append({"id": "bad2", "blocked_by": ["bad1"]})
    return {"name": "random", "tasks": tasks}


def _run_cli(args: list[str], seed: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, "-c", "from runner.cli.plan import command; command()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("valid", [True, False], ids=["valid", "invalid"])
def test_validate_deterministic_across_hash_seeds(tmp_path: pathlib.Path, valid: bool) -> None:
    raw = _random_plan(7)
    if valid:
        raw["tasks"] = raw["tasks"][:-2]
    path = _write(tmp_path, raw)
    outputs = [_run_cli(["validate", str(path), "--json"], seed) for seed in ("1", "2")]
    assert outputs[0].returncode == outputs[1].returncode == (0 if valid else 2)
    assert outputs[0].stdout == outputs[1].stdout
    assert json.loads(outputs[0].stdout)["ok"] is valid


def test_simulate_compares_continuous_and_waves(tmp_path: pathlib.Path) -> None:
    raw = {
        "name": "skew",
        "tasks": [
            {"id": "A", "files": ["a"], "effort": "S"},
            {"id": "B", "files": ["b"], "effort": "XL"},
            {"id": "C", "files": ["c"], "effort": "S", "blocked_by": ["A"]},
        ],
    }
    path = _write(tmp_path, raw)
    result = CliRunner().invoke(plan_cli, ["simulate", str(path), "--workers", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "3 tasks on 2 workers (continuous dispatch)" in out
    assert "makespan         12h\n" in out
    assert "critical path    12h: B\n" in out
    assert "continuous       12h\n" in out
    assert "waves            12h 30min\n" in out
    assert "speed-up         1.04x (continuous vs waves)" in out
    assert all(len(line) <= 80 for line in out.splitlines() if "|" in line)


def test_simulate_waves_only(tmp_path: pathlib.Path) -> None:
    path = EXAMPLES / "diamond.yaml"
    result = CliRunner().invoke(plan_cli, ["simulate", str(path), "--waves", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "(waves)" in result.output and "speed-up" not in result.output
    assert "makespan         2h 30min" in result.output


def test_simulate_json() -> None:
    path = EXAMPLES / "diamond.yaml"
    result = CliRunner().invoke(plan_cli, ["simulate", str(path), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["kind"] == "plan-simulate" and doc["ok"] is True
    assert doc["workers"] == 2  # the plan's max_workers
    assert doc["mode"] == "continuous" and doc["makespan"] == 120
    assert doc["comparison"] == {"continuous": 120, "waves": 120, "speedup": 1.0}
    assert [task["id"] for task in doc["tasks"]] == ["T01", "T02", "T03", "T04"]


class BadSimCase(t.NamedTuple):
    test_id: str
    args: list[str]
    code: int


@pytest.mark.parametrize(
    "case",
    [
        BadSimCase("bad_plan", ["simulate", str(EXAMPLES / "bad-cycle.yaml")], 2),
        BadSimCase("bad_plan_json", ["simulate", str(EXAMPLES / "bad-cycle.yaml"), "--json"], 2),
        BadSimCase(
            "zero_workers", ["simulate", str(EXAMPLES / "diamond.yaml"), "--workers", "0"], 2
        ),
        BadSimCase("graph_bad_plan", ["graph", str(EXAMPLES / "bad-cycle.yaml")], 2),
    ],
    ids=lambda c: c.test_id,
)
def test_simulate_and_graph_errors(case: BadSimCase) -> None:
    result = CliRunner().invoke(plan_cli, case.args)
    assert result.exit_code == case.code, result.output
    if "--json" in case.args:
        assert json.loads(result.stdout)["ok"] is False
    elif case.test_id != "zero_workers":
        assert "cycle T07 -> T08 -> T07" in result.stderr


def test_graph_prints_mermaid() -> None:
    result = CliRunner().invoke(plan_cli, ["graph", str(EXAMPLES / "diamond.yaml")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "graph TD"
    assert '  t0["T01: Add the models module"]' in lines
    assert "  t1 --> t3" in lines and "  t2 --> t3" in lines


@pytest.mark.parametrize("command", ["simulate", "graph"])
def test_simulate_and_graph_deterministic_across_hash_seeds(
    tmp_path: pathlib.Path, command: str
) -> None:
    raw = _random_plan(11)
    raw["tasks"] = raw["tasks"][:-2]
    path = _write(tmp_path, raw)
    args = [command, str(path), "--workers", "3"] if command == "simulate" else [command, str(path)]
    outputs = [_run_cli(args, seed) for seed in ("1", "2")]
    assert outputs[0].returncode == outputs[1].returncode == 0, outputs[0].stderr
    assert outputs[0].stdout == outputs[1].stdout
