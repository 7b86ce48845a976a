"""``results/<task>.json`` validates against agentops' published ``swarm-worker-result`` schema.

The schema is the upstream file (tests/fixtures/upstream/agentops). Three checks: the model's
output for every kind of result, what ``swarm worker`` writes (``--files a.py,a.py`` included),
and a small real run. Besides, a session-scoped check validates every results file any test
of this session wrote (under pytest's base temporary directory) once the session ends.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import pathlib
import typing as t

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from agentmail.store import MailStore
from agentmail.worker_env import WorkerEnv, write_result
from protocol.results import Evidence, WorkerResult
from runner.cli.main import cli
from tests.conftest import git
from tests.runner.runs import swarm_run, task, write, write_plan

SCHEMA_PATH: t.Final = (
    pathlib.Path(__file__).resolve().parents[1]
    / "fixtures"
    / "upstream"
    / "agentops"
    / "swarm-worker-result.schema.json"
)


@functools.cache
def validator() -> t.Any:
    """A Draft 2020-12 validator for the upstream schema (jsonschema ships no type hints)."""
    jsonschema = importlib.import_module("jsonschema")
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def schema_errors(doc: object) -> list[str]:
    return sorted(error.message for error in validator().iter_errors(doc))


def results_files(root: pathlib.Path) -> list[pathlib.Path]:
    """Every ``.agents/swarm/results/*.json`` under ``root`` (git folders skipped)."""
    found: list[pathlib.Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        here = pathlib.Path(folder)
        if here.name == "results" and here.parent.name == "swarm":
            found.extend(here / name for name in files if name.endswith(".json"))
    return sorted(found)


@pytest.fixture(scope="session", autouse=True)
def _every_result_of_the_session_validates(
    tmp_path_factory: pytest.TempPathFactory,
) -> t.Iterator[None]:
    yield
    base = tmp_path_factory.getbasetemp()
    bad = {
        str(path.relative_to(base)): errors
        for path in results_files(base)
        if (errors := schema_errors(json.loads(path.read_text())))
    }
    assert not bad, f"results files that fail the swarm-worker-result schema: {bad}"


# --- the model -----------------------------------------------------------------------------


class Good(t.NamedTuple):
    test_id: str
    result: WorkerResult


GOOD: t.Final = [
    Good(
        "completion",
        WorkerResult(type="completion", issue_id="t1", status="done", detail="ok", artifacts=()),
    ),
    Good(
        "completion-with-everything",
        WorkerResult(
            type="completion",
            issue_id="ol-527.1",
            status="done",
            detail="x" * 400,
            artifacts=("src/a.py", "src/a.py", "", "src/b.py"),
            worktree_path="/tmp/wt/t1",
            evidence=Evidence.model_validate(
                {
                    "required_checks": ["red_green", "full_suite", "red_green"],
                    "checks": {
                        "red_green": {"verdict": "PASS", "command": "pytest -x", "exit_code": 0},
                        "full_suite": {
                            "verdict": "PASS",
                            "summary": "412 passed",
                            "run_at": "2026-03-02T13:06:36Z",
                            "artifacts": ["logs/suite.txt", "logs/suite.txt"],
                        },
                        "lint": {"verdict": "SKIP"},
                    },
                }
            ),
        ),
    ),
    Good(
        "blocked",
        WorkerResult(type="blocked", issue_id="t1", status="blocked", detail="SCOPE-ESCAPE: x"),
    ),
]


@pytest.mark.parametrize("case", GOOD, ids=[c.test_id for c in GOOD])
def test_every_kind_of_result_validates(case: Good, tmp_path: pathlib.Path) -> None:
    path = write_result(tmp_path, case.result)
    doc = json.loads(path.read_text())
    assert schema_errors(doc) == []
    assert doc["schema_version"] == 1
    assert WorkerResult.model_validate(doc) == case.result


def test_artifacts_are_kept_once_in_order() -> None:
    good = GOOD[1].result
    assert good.artifacts == ("src/a.py", "src/b.py")
    assert good.evidence is not None
    assert good.evidence.required_checks == ("red_green", "full_suite")
    assert good.evidence.checks["full_suite"].artifacts == ("logs/suite.txt",)


class Bad(t.NamedTuple):
    test_id: str
    doc: dict[str, t.Any]


_DONE: t.Final = {"type": "completion", "issue_id": "t1", "status": "done", "detail": "ok"}
BAD: t.Final = [
    Bad("completion-without-artifacts", dict(_DONE)),
    Bad("status-mismatch", {**_DONE, "status": "blocked", "artifacts": []}),
    Bad("detail-too-long", {**_DONE, "artifacts": [], "detail": "x" * 401}),
    Bad("empty-detail", {**_DONE, "artifacts": [], "detail": ""}),
    Bad("unknown-key", {**_DONE, "artifacts": [], "worktreePath": "/x"}),
    Bad("schema-version-2", {**_DONE, "artifacts": [], "schema_version": 2}),
    Bad("empty-worktree-path", {**_DONE, "artifacts": [], "worktree_path": ""}),
    Bad(
        "checks-as-a-list",
        {
            **_DONE,
            "artifacts": [],
            "evidence": {"required_checks": ["red_green"], "checks": [{"verdict": "PASS"}]},
        },
    ),
    Bad(
        "required-check-missing",
        {
            **_DONE,
            "artifacts": [],
            "evidence": {
                "required_checks": ["full_suite"],
                "checks": {"lint": {"verdict": "PASS"}},
            },
        },
    ),
    Bad(
        "no-required-checks",
        {**_DONE, "artifacts": [], "evidence": {"checks": {"lint": {"verdict": "PASS"}}}},
    ),
    Bad(
        "unknown-check-key",
        {
            **_DONE,
            "artifacts": [],
            "evidence": {
                "required_checks": ["red_green"],
                "checks": {"red_green": {"verdict": "PASS", "name": "red_green"}},
            },
        },
    ),
]


@pytest.mark.parametrize("case", BAD, ids=[c.test_id for c in BAD])
def test_the_model_refuses_what_the_schema_refuses(case: Bad) -> None:
    assert schema_errors(case.doc)
    with pytest.raises(ValidationError):
        WorkerResult.model_validate(case.doc)


# --- what `swarm worker` writes ------------------------------------------------------------


@pytest.fixture
def worker_env(git_repo: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    home = git_repo / ".agents" / "swarm"
    store = MailStore(home / "mail")
    store.register("mayor")
    env = WorkerEnv(
        home=home,
        run="run-1",
        task="t1",
        worker="w-t1",
        mayor="mayor",
        key_file=store.register("w-t1"),
        brief=git_repo / "brief.md",
        worktree=git_repo,
        attempt=1,
    )
    for name, value in env.to_environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(git_repo)
    return home


class Verb(t.NamedTuple):
    test_id: str
    args: list[str]
    artifacts: list[str] | None


VERBS: t.Final = [
    Verb(
        "done-duplicate-files",
        ["done", "fixed", "--files", "a.py,a.py,b.py,a.py"],
        ["a.py", "b.py"],
    ),
    Verb("offer", ["offer", "ready", "--files", "src/x.py", "--commit", "abc123"], ["src/x.py"]),
    Verb("fail", ["fail", "cannot", "--type", "SPEC_IMPOSSIBLE"], None),
]


@pytest.mark.parametrize("case", VERBS, ids=[c.test_id for c in VERBS])
def test_swarm_worker_writes_schema_valid_results(worker_env: pathlib.Path, case: Verb) -> None:
    result = CliRunner().invoke(cli, ["worker", *case.args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    doc = json.loads((worker_env / "results" / "t1.json").read_text())
    assert schema_errors(doc) == []
    assert doc.get("artifacts") == case.artifacts


# --- a small real run ----------------------------------------------------------------------


def test_a_real_run_writes_only_schema_valid_results(
    git_repo: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    tasks = [
        task("A", ["a.txt"], [write("a.txt", "a\n")]),
        task("B", ["b.txt"], [write("b.txt", "b\n"), {"offer": "b written"}], blocked_by=["A"]),
        task("C", ["c.txt"], [{"fail": {"reason": "not today", "type": "ERROR"}}]),
    ]
    plan = write_plan(tmp_path, tasks)
    result = swarm_run(git_repo, plan, None)
    assert result.exit_code == 1, result.output  # C failed
    found = results_files(git_repo)
    assert {path.stem for path in found} == {"A", "B", "C"}
    for path in found:
        assert schema_errors(json.loads(path.read_text())) == [], path
    assert git(git_repo, "show", "swarm/r1/integration:b.txt") == "b"
