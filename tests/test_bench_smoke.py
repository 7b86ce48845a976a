"""Smoke test of the benchmarks: the tiny simulator-only variant runs and prints every row.

No timing assertions: the figures themselves are only meaningful from ``scripts/bench/run_all``.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import typing as t

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "bench"


class Case(t.NamedTuple):
    test_id: str
    args: tuple[str, ...]
    rows: tuple[str, ...]


CASES = (
    Case(
        "scheduling-simulate-only",
        ("--simulate-only", "--quick", "--sim-tasks", "300"),
        (
            "layered (12 tasks): simulated makespan / lower bound",
            "chain (12 tasks): simulated makespan / lower bound",
            "skewed (20 tasks): simulated makespan / lower bound",
            "skewed: simulated waves / continuous makespan",
            "simulator, 300 tasks: time",
            "simulator, 300 tasks: peak traced memory",
            "simulator, 300 tasks: time vs a scheduler fed its graph",
            "simulator, 3,000 tasks: time, untraced",
        ),
    ),
)


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_scheduling_simulate_only_prints_every_row(case: Case, tmp_path: pathlib.Path) -> None:
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(BENCH / "scheduling.py"), *case.args, "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("| scheduling |")]
    for row in case.rows:
        assert any(row in line for line in lines), (row, result.stdout)
    doc = json.loads(out.read_text())
    assert doc["bench"] == "scheduling"
    assert [r["metric"] for r in doc["rows"]] == list(case.rows)
    assert all(r["ours"] is not None for r in doc["rows"])


def test_run_all_rejects_an_unknown_benchmark(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "common.py"), "run-all", "--only", "nope",
         "--json", str(tmp_path / "all.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "unknown benchmark 'nope'" in result.stderr
