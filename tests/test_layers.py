"""The layering of DESIGN.md, enforced on the source: protocol <- agentmail <- runner, and
inside runner the library never imports the CLI (``runner/cli/`` is the only place that prints
or exits). Every import is found by walking the AST, so a function-level (lazy) import counts
as much as one at the top of the module."""

from __future__ import annotations

import ast
import pathlib
import typing as t

import pytest

ROOT: t.Final = pathlib.Path(__file__).resolve().parents[1]


def module_name(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: pathlib.Path, root: pathlib.Path = ROOT) -> t.Iterator[tuple[int, str]]:
    """(line, module) of every import in ``path``, relative ones resolved."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *filter(None, [base])])
            yield node.lineno, base
            for alias in node.names:  # `from runner import cli` imports runner.cli
                yield node.lineno, f"{base}.{alias.name}"


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


class Rule(t.NamedTuple):
    test_id: str
    files: tuple[pathlib.Path, ...]
    forbidden: tuple[str, ...]


def files(package: str, *, exclude: t.Sequence[str] = ()) -> tuple[pathlib.Path, ...]:
    found = sorted((ROOT / package).rglob("*.py"))
    return tuple(p for p in found if not any(within(module_name(p), e) for e in exclude))


ENTRY_POINTS: t.Final = ("runner.cli", "runner.__main__")
"""The CLI itself, and ``python -m runner`` (which is ``swarm``)."""
RULES: t.Final = [
    Rule(
        "protocol-imports-neither-agentmail-nor-runner", files("protocol"), ("agentmail", "runner")
    ),
    Rule("agentmail-imports-no-runner", files("agentmail"), ("runner",)),
    Rule("the-library-imports-no-cli", files("runner", exclude=ENTRY_POINTS), ("runner.cli",)),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.test_id for r in RULES])
def test_no_upward_import(rule: Rule) -> None:
    assert rule.files, "no files found: is ROOT right?"
    found = [
        f"{path.relative_to(ROOT)}:{line}: imports {module}"
        for path in rule.files
        for line, module in imports(path)
        if any(within(module, forbidden) for forbidden in rule.forbidden)
    ]
    assert not found, "\n".join(found)


class ImportCase(t.NamedTuple):
    test_id: str
    source: str
    path: str
    expected: set[str]


IMPORT_CASES = [
    ImportCase("plain", "import runner.cli.main\n", "runner/x.py", {"runner.cli.main"}),
    ImportCase("from-package", "from runner import cli\n", "runner/x.py", {"runner", "runner.cli"}),
    ImportCase(
        "lazy-in-function",
        "def f():\n    from runner.cli import worker\n",
        "runner/agents/x.py",
        {"runner.cli", "runner.cli.worker"},
    ),
    ImportCase(
        "relative",
        "from ..cli import common\n",
        "runner/agents/x.py",
        {"runner.cli", "runner.cli.common"},
    ),
]


@pytest.mark.parametrize("case", IMPORT_CASES, ids=[c.test_id for c in IMPORT_CASES])
def test_every_kind_of_import_is_seen(tmp_path: pathlib.Path, case: ImportCase) -> None:
    path = tmp_path / case.path
    path.parent.mkdir(parents=True)
    path.write_text(case.source)
    assert {module for _, module in imports(path, tmp_path)} == case.expected
