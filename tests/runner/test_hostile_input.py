"""Bad input is refused before any side effect (issue 13, "Bad input, refused before any side
effect"): alias bombs, duplicate keys, ids git refuses, reserved ids, unsafe run ids and paths."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import typing as t

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.base import RESERVED_TASK_IDS, check_id, check_task_id
from runner.paths import SwarmPaths, UnsafeIdError, safe_id, worktree_dir
from runner.plan.load import MAX_PLAN_BYTES, PlanError, load_plan
from tests.conftest import git

BOMB: t.Final = (
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    + "".join(
        f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "tasks: [{id: T1, files: [src/a.py], metadata: {x: *i}}]\n"
)


def swarm_cli(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess[str]:
    """The real ``swarm`` command in a child process (exit codes as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def tree(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if ".git" not in p.parts}


def test_alias_bomb_is_refused_before_anything_is_built(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    assert len(BOMB) < 800  # a few hundred bytes that would expand to gigabytes
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "expands past" in info.value.problems[0]


def test_alias_bomb_run_writes_nothing(git_repo: pathlib.Path) -> None:
    plan = git_repo.parent / "bomb.yaml"
    plan.write_text(BOMB)
    before = tree(git_repo.parent)
    proc = swarm_cli("run", str(plan), "--repo", str(git_repo), "--mode", "local", cwd=git_repo)
    assert proc.returncode == 2, proc.stderr
    assert "expands past" in proc.stderr
    assert tree(git_repo.parent) == before
    assert not (git_repo / ".agents").exists()


def test_recursive_alias_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text("x: &x [*x]\ntasks: [{id: T1, files: [a]}]\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "refers to itself" in info.value.problems[0]


def test_ordinary_aliases_and_merge_keys_still_load(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "tasks:\n"
        "  - &t1 {id: T1, files: [src/a.py], subject: shared}\n"
        "  - <<: *t1\n"
        "    id: T2\n"
        "    files: [src/b.py]\n"
    )
    plan = load_plan(path)
    assert [(task.id, task.subject, task.files) for task in plan.tasks] == [
        ("T1", "shared", ("src/a.py",)),
        ("T2", "shared", ("src/b.py",)),
    ]


def test_oversize_plan_file_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("tasks: [{id: T1, files: [a]}]\n# " + "x" * MAX_PLAN_BYTES + "\n")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert f"larger than {MAX_PLAN_BYTES} bytes" in info.value.problems[0]


def test_deep_nesting_is_refused_not_a_recursion_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("tasks: [{id: T1, files: [a], metadata: {x: " + "[" * 500 + "]" * 500 + "}}]")
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "nested deeper" in info.value.problems[0]


class DuplicateCase(t.NamedTuple):
    test_id: str
    name: str
    text: str


DUPLICATE_CASES = [
    DuplicateCase("yaml_task_key", "p.yaml", "tasks:\n- id: T1\n  files: [a]\n  files: ['**']\n"),
    DuplicateCase("yaml_plan_key", "p.yaml", "name: a\nname: b\ntasks: [{id: T1, files: [a]}]\n"),
    DuplicateCase(
        "yaml_nested_key",
        "p.yaml",
        "tasks: [{id: T1, files: [a], validation: {tests: x, tests: y}}]\n",
    ),
    DuplicateCase(
        "json_task_key", "p.json", '{"tasks": [{"id": "T1", "files": ["a"], "files": ["**"]}]}'
    ),
]


@pytest.mark.parametrize("case", DUPLICATE_CASES, ids=[c.test_id for c in DUPLICATE_CASES])
def test_duplicate_keys_are_an_error(case: DuplicateCase, tmp_path: pathlib.Path) -> None:
    path = tmp_path / case.name
    path.write_text(case.text)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "duplicate key" in info.value.problems[0]


def git_accepts_branch(name: str) -> bool:
    proc = subprocess.run(
        ["git", "check-ref-format", "--branch", name], capture_output=True, check=False
    )
    return proc.returncode == 0


@pytest.mark.parametrize("bad", ["T.lock", "T.LOCK", "T.", "a.b.", "T..1", ".T", "T/1", "T@{1}"])
def test_task_ids_git_refuses_are_refused_at_validation(bad: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"tasks": [{"id": bad, "files": ["src/a.py"]}]}))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "id: invalid id" in info.value.problems[0]


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="Tab019._-@{}/ ~^:?*[\\", min_size=1, max_size=12))
def test_every_accepted_id_is_a_branch_component_git_accepts(candidate: str) -> None:
    """The class, not the examples: whatever check_id accepts, git accepts in the run's refs."""
    try:
        check_id(candidate)
    except ValueError:
        return
    assert git_accepts_branch(f"swarm/{candidate}/{candidate}"), candidate
    assert git_accepts_branch(f"swarm/r1/{candidate}"), candidate


@pytest.mark.parametrize("reserved", [*sorted(RESERVED_TASK_IDS), "Mayor", "HUMAN"])
def test_reserved_identities_are_refused_as_task_ids(reserved: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"tasks": [{"id": reserved, "files": ["src/a.py"]}]}))
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert "reserved" in info.value.problems[0]
    with pytest.raises(ValueError, match="reserved"):
        check_task_id(reserved)
    assert check_id(reserved) == reserved  # still a valid mail identity


@pytest.mark.parametrize("run_id", ["../x", "a/b", "..", "/tmp/x", "r1.lock", "r 1"])
def test_unsafe_run_id_writes_nothing(run_id: str, git_repo: pathlib.Path) -> None:
    plan = git_repo.parent / "plan.json"
    plan.write_text('{"tasks": [{"id": "T1", "files": ["src/a.py"], "script": []}]}')
    branches = git(git_repo, "branch", "--list")
    before = tree(git_repo.parent)
    proc = swarm_cli(
        "run",
        str(plan),
        "--repo",
        str(git_repo),
        "--mode",
        "local",
        "--run-id",
        run_id,
        "--worktree-root",
        str(git_repo.parent / "wt"),
        "--detach",
        cwd=git_repo,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree(git_repo.parent) == before
    assert git(git_repo, "branch", "--list") == branches


@pytest.mark.parametrize("bad", ["../../..", "..", "a/../../b", "/etc", "x\0y", ""])
def test_paths_refuse_unsafe_ids_whoever_calls(bad: str, tmp_path: pathlib.Path) -> None:
    swarm = SwarmPaths.for_repo(tmp_path)
    run = swarm.run("r1")
    builders: list[t.Callable[[], object]] = [
        lambda: swarm.run(bad),
        lambda: swarm.result(bad),
        lambda: run.task_dir(bad),
        lambda: run.pane_log(bad),
        lambda: run.brief(bad),
        lambda: worktree_dir(tmp_path, bad, "T1"),
        lambda: worktree_dir(tmp_path, "r1", bad),
        lambda: safe_id(bad, "run id"),
    ]
    for build in builders:
        with pytest.raises(UnsafeIdError) as info:
            build()
        assert info.value.exit_code == 2
        assert isinstance(info.value, ValueError)


def test_swarm_logs_cannot_read_outside_the_run(git_repo: pathlib.Path) -> None:
    secret = git_repo.parent / "secret.txt"
    secret.write_text("do not show\n")
    proc = swarm_cli("logs", "../../../../secret.txt", "--repo", str(git_repo), cwd=git_repo)
    assert proc.returncode != 0
    assert "do not show" not in proc.stdout + proc.stderr
