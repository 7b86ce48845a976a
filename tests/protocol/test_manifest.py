"""Manifest normalization, lock prefixes, overlap, task conflicts and the scope check."""

from __future__ import annotations

import pathlib
import typing as t

import pytest

from protocol.manifest import (
    check_entry,
    escaping_symlinks,
    filesystem_case_sensitive,
    in_manifest,
    is_glob,
    is_protected,
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
    NormalizeCase("spaces_kept_exactly", "  docs/ ", "  docs/ "),
    NormalizeCase("blank_name_kept", " ", " "),
    NormalizeCase("tab_kept", "\tsrc/x.sh", "\tsrc/x.sh"),
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
    ScopeCase("leading_space_is_not_inside", " src/evil.py", ("src/",), False),
    ScopeCase("leading_tab_is_not_inside", "\tsrc/x.sh", ("src/",), False),
    ScopeCase("trailing_space_folder", "src /x.py", ("src/",), False),
    ScopeCase("space_file_not_in_star_py", "src/a.py ", ("src/*.py",), False),
    ScopeCase("blank_name_at_root", " ", ("src/",), False),
    ScopeCase("blank_name_inside_folder", "src/ ", ("src/",), True),
    ScopeCase("newline_inside_double_star", "src/a\nb.py", ("src/**",), True),
    ScopeCase("empty_path_is_never_inside", "", ("**",), False),
    ScopeCase("dotdot_path_is_never_inside", "src/../x", ("**",), False),
    ScopeCase("absolute_path_is_never_inside", "/etc/passwd", ("**",), False),
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


@pytest.mark.parametrize("entry", [" src/", "src/ ", "\tsrc/x.sh", "src/ /x", " ", "a\nb"])
def test_plan_entries_with_stray_whitespace_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match=r"whitespace|blank|control"):
        check_entry(entry)


def test_check_entry_keeps_inner_spaces() -> None:
    assert check_entry("./docs/my notes.md") == "docs/my notes.md"


class LinkCase(t.NamedTuple):
    test_id: str
    links: dict[str, str]
    escaping: list[str]


LINK_CASES = [
    LinkCase("absolute", {"src/k": "/etc/passwd"}, ["src/k"]),
    LinkCase("home_tilde_is_a_relative_name", {"src/k": "~/.ssh"}, []),
    LinkCase("climbs_above_root", {"src/k": "../../.ssh"}, ["src/k"]),
    LinkCase("sibling_inside", {"src/k": "../README.md"}, []),
    LinkCase("to_root", {"src/k": ".."}, []),
    LinkCase("into_git", {"src/k": "../.git/hooks"}, ["src/k"]),
    LinkCase("into_swarm_home", {"k": ".agents/swarm/keys"}, ["k"]),
    LinkCase("dot_components", {"src/k": "./././x"}, []),
    LinkCase("empty_target", {"k": ""}, ["k"]),
    LinkCase("chain_escapes_through_inner_link", {"a/l1": "..", "a/l2": "l1/.."}, ["a/l2"]),
    LinkCase("chain_to_absolute", {"a": "b", "b": "/tmp"}, ["a", "b"]),
    LinkCase("loop", {"a": "b", "b": "a"}, ["a", "b"]),
    LinkCase("chain_inside", {"a": "b/c", "b": "src"}, []),
]


@pytest.mark.parametrize("case", LINK_CASES, ids=lambda c: c.test_id)
def test_escaping_symlinks(case: LinkCase) -> None:
    assert [e.path for e in escaping_symlinks(case.links)] == case.escaping


def test_escaping_symlinks_reports_only_the_checked_paths() -> None:
    links = {"old": "/etc", "new": "../x"}
    assert [e.path for e in escaping_symlinks(links, check=["new"])] == ["new"]


def test_escaping_symlinks_can_refuse_every_link() -> None:
    found = escaping_symlinks({"a": "b"}, allow_in_repo=False)
    assert [(e.path, e.reason) for e in found] == [("a", "symbolic links are not allowed")]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (".agents/swarm/keys/mayor.key", True),
        (".AGENTS/x", True),
        (".git/hooks/post-merge", True),
        (".agents", True),
        ("src/.agents/x", False),
        (".agentsx/y", False),
        (" .agents/x", False),
    ],
)
def test_is_protected(path: str, expected: bool) -> None:
    assert is_protected(path) is expected
