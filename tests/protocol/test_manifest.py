"""Manifest normalization, lock prefixes, overlap, task conflicts and the scope check."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from protocol.manifest import (
    filesystem_case_sensitive,
    in_manifest,
    is_glob,
    lock_prefix,
    normalize,
    overlaps,
    tasks_conflict,
)
from protocol.plan import Concurrency, Task


class NormalizeCase(t.NamedTuple):
    test_id: str
    path: str
    expected: str


NORMALIZE_CASES = [
    NormalizeCase("plain", "src/app.py", "src/app.py"),
    NormalizeCase("dot_slash", "./src/app.py", "src/app.py"),
    NormalizeCase("trailing_slash", "src/core/", "src/core"),
    NormalizeCase("double_slash", "src//core///x.py", "src/core/x.py"),
    NormalizeCase("inner_dot", "src/./core/./x.py", "src/core/x.py"),
    NormalizeCase("glob_kept", "src/**/*.py", "src/**/*.py"),
    NormalizeCase("spaces_trimmed", "  docs/ ", "docs"),
]


@pytest.mark.parametrize("case", NORMALIZE_CASES, ids=lambda c: c.test_id)
def test_normalize(case: NormalizeCase) -> None:
    assert normalize(case.path) == case.expected


class BadPathCase(t.NamedTuple):
    test_id: str
    path: str
    message: str


BAD_PATH_CASES = [
    BadPathCase("absolute", "/etc/x", "is absolute"),
    BadPathCase("windows_absolute", "C:\\x", "is absolute"),
    BadPathCase("dotdot", "src/../../x", "'..'"),
    BadPathCase("leading_dotdot", "../x", "'..'"),
    BadPathCase("empty", "", "empty path"),
    BadPathCase("blank", "   ", "empty path"),
    BadPathCase("nul", "a\0b", "NUL"),
    BadPathCase("root", "./", "repository root"),
]


@pytest.mark.parametrize("case", BAD_PATH_CASES, ids=lambda c: c.test_id)
def test_normalize_rejects(case: BadPathCase) -> None:
    with pytest.raises(ValueError, match=case.message):
        normalize(case.path)


def test_normalize_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="not a string"):
        normalize(t.cast(str, 7))


class PrefixCase(t.NamedTuple):
    test_id: str
    path: str
    glob: bool
    prefix: str


PREFIX_CASES = [
    PrefixCase("file", "src/app.py", False, "src/app.py"),
    PrefixCase("folder", "src/core/", False, "src/core"),
    PrefixCase("glob_in_folder", "src/**/*.py", True, "src"),
    PrefixCase("root_glob", "*.py", True, ""),
    PrefixCase("question_mark", "src/a?.py", True, "src"),
    PrefixCase("bracket", "src/[ab]/x.py", True, "src"),
    PrefixCase("deep_literal", "a/b/c*/d", True, "a/b"),
]


@pytest.mark.parametrize("case", PREFIX_CASES, ids=lambda c: c.test_id)
def test_lock_prefix(case: PrefixCase) -> None:
    assert is_glob(case.path) is case.glob
    assert lock_prefix(case.path) == case.prefix


class OverlapCase(t.NamedTuple):
    test_id: str
    a: str
    b: str
    expected: bool
    case_sensitive: bool = True


OVERLAP_CASES = [
    OverlapCase("same_file", "src/a.py", "src/a.py", True),
    OverlapCase("different_files", "src/a.py", "src/b.py", False),
    OverlapCase("folder_contains_file", "backend/core/", "backend/core/cache.py", True),
    OverlapCase("file_in_folder_reversed", "backend/core/cache.py", "backend/core", True),
    OverlapCase("folder_slash_equivalence", "core", "core/", True),
    OverlapCase("dot_slash_equivalence", "./backend/x.py", "backend/x.py", True),
    OverlapCase("prefix_is_not_parent", "src/core", "src/core2/x.py", False),
    OverlapCase("glob_prefix_contains", "src/**/*.py", "src/deep/x.txt", True),
    OverlapCase("glob_disjoint", "src/*.py", "docs/x.md", False),
    OverlapCase("root_glob_everything", "*.py", "docs/x.md", True),
    OverlapCase("case_sensitive_differs", "Backend/x.py", "backend/x.py", False),
    OverlapCase("case_insensitive_same", "./Backend/x.py", "backend/X.py", True, False),
]


@pytest.mark.parametrize("case", OVERLAP_CASES, ids=lambda c: c.test_id)
def test_overlaps(case: OverlapCase) -> None:
    assert overlaps(case.a, case.b, case_sensitive=case.case_sensitive) is case.expected
    assert overlaps(case.b, case.a, case_sensitive=case.case_sensitive) is case.expected


def _task(task_id: str, files: tuple[str, ...], concurrency: Concurrency = "write-local") -> Task:
    return Task(id=task_id, files=files, concurrency=concurrency)


class ConflictCase(t.NamedTuple):
    test_id: str
    a: Task
    b: Task
    expected: bool


CONFLICT_CASES = [
    ConflictCase("disjoint", _task("A", ("a.py",)), _task("B", ("b.py",)), False),
    ConflictCase("overlap", _task("A", ("src/",)), _task("B", ("src/x.py",)), True),
    ConflictCase(
        "read_only_never",
        _task("A", ("src/",), "read-only"),
        _task("B", ("src/x.py",)),
        False,
    ),
    ConflictCase(
        "write_shared_exclusive",
        _task("A", ("a.py",), "write-shared"),
        _task("B", ("b.py",)),
        True,
    ),
    ConflictCase(
        "write_shared_vs_read_only",
        _task("A", ("a.py",), "write-shared"),
        _task("B", ("a.py",), "read-only"),
        False,
    ),
    ConflictCase("no_manifest_is_exclusive", _task("A", ()), _task("B", ("b.py",)), True),
    ConflictCase("one_of_many", _task("A", ("x", "y/z")), _task("B", ("q", "y/")), True),
]


@pytest.mark.parametrize("case", CONFLICT_CASES, ids=lambda c: c.test_id)
def test_tasks_conflict(case: ConflictCase) -> None:
    assert tasks_conflict(case.a, case.b) is case.expected
    assert tasks_conflict(case.b, case.a) is case.expected


class ScopeCase(t.NamedTuple):
    test_id: str
    path: str
    manifest: tuple[str, ...]
    expected: bool
    case_sensitive: bool = True


SCOPE_CASES = [
    ScopeCase("equal_file", "src/a.py", ("src/a.py",), True),
    ScopeCase("other_file", "src/b.py", ("src/a.py",), False),
    ScopeCase("inside_folder", "src/core/x.py", ("src/core/",), True),
    ScopeCase("folder_name_prefix_only", "src/core2/x.py", ("src/core",), False),
    ScopeCase("star_matches_one_level", "src/a.py", ("src/*.py",), True),
    ScopeCase("star_does_not_cross_slash", "src/deep/a.py", ("src/*.py",), False),
    ScopeCase("double_star_crosses", "src/deep/er/a.py", ("src/**/*.py",), True),
    ScopeCase("double_star_zero_dirs", "src/a.py", ("src/**/*.py",), True),
    ScopeCase("double_star_wrong_ext", "src/deep/a.txt", ("src/**/*.py",), False),
    ScopeCase("glob_matches_folder", "pkg1/sub/x.py", ("pkg*",), True),
    ScopeCase("bracket_class", "src/b.py", ("src/[ab].py",), True),
    ScopeCase("bracket_negated", "src/c.py", ("src/[!ab].py",), True),
    ScopeCase("case_insensitive", "SRC/A.py", ("src/a.py",), True, False),
    ScopeCase("case_sensitive", "SRC/A.py", ("src/a.py",), False),
    ScopeCase("dot_slash_path", "./src/a.py", ("src/",), True),
    ScopeCase("empty_manifest", "src/a.py", (), False),
]


@pytest.mark.parametrize("case", SCOPE_CASES, ids=lambda c: c.test_id)
def test_in_manifest(case: ScopeCase) -> None:
    assert in_manifest(case.path, case.manifest, case_sensitive=case.case_sensitive) is (
        case.expected
    )


def test_filesystem_case_sensitive_probe_leaves_nothing(tmp_path: pathlib.Path) -> None:
    result = filesystem_case_sensitive(tmp_path)
    assert isinstance(result, bool)
    assert list(tmp_path.iterdir()) == []
    # The answer must agree with what the filesystem does with a real file.
    (tmp_path / "Probe").write_text("x")
    assert result is not (tmp_path / "pROBE").exists()
