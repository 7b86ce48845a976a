"""File manifests and touches locks (DESIGN.md "Touches locks").

A manifest entry is a file (``src/app.py``), a folder (``src/core/`` or ``src/core``) or a glob
(``src/**/*.py``). Entries are normalized to POSIX paths relative to the repository root. A glob
locks its literal directory prefix (``src/**/*.py`` locks ``src``; ``*.py`` locks the root ``""``),
and a lock conflicts with every lock inside it or containing it.
"""

from __future__ import annotations

import pathlib
import re
import tempfile
import typing as t

if t.TYPE_CHECKING:
    from protocol.plan import Task

GLOB_CHARS: t.Final = frozenset("*?[")


def normalize(path: str) -> str:
    """The POSIX form of a manifest path: no ``./``, no trailing ``/``, no ``//``.

    Raises ValueError for an empty path, an absolute path, a ``..`` component, a NUL byte or a
    path that names the repository root itself (``.``).
    """
    if not isinstance(path, str):
        raise ValueError(f"{path!r} is not a string; write the path in quotes")
    if "\0" in path:
        raise ValueError(f"{path!r} contains a NUL byte")
    stripped = path.strip()
    if not stripped:
        raise ValueError("empty path; name a file, a folder or a glob")
    if stripped.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", stripped):
        raise ValueError(f"{path!r} is absolute; use a path relative to the repository root")
    parts = [part for part in stripped.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r} contains '..'; use a path inside the repository")
    if not parts:
        raise ValueError(
            f"{path!r} names the repository root; name folders or files "
            "(or use concurrency: write-shared for a repository-wide task)"
        )
    return "/".join(parts)


def is_glob(path: str) -> bool:
    """True if ``path`` contains a glob character (``*``, ``?`` or ``[``)."""
    return any(char in GLOB_CHARS for char in path)


def lock_prefix(path: str) -> str:
    """The path a manifest entry locks: itself, or a glob's literal directory prefix.

    ``""`` is the repository root (``*.py`` locks everything).
    """
    norm = normalize(path)
    if not is_glob(norm):
        return norm
    literal: list[str] = []
    for part in norm.split("/"):
        if is_glob(part):
            break
        literal.append(part)
    return "/".join(literal)


def _fold(path: str, case_sensitive: bool) -> str:
    return path if case_sensitive else path.casefold()


def prefixes_overlap(a: str, b: str) -> bool:
    """Overlap of two already computed lock prefixes (``""`` is the root)."""
    return a == b or not a or not b or a.startswith(b + "/") or b.startswith(a + "/")


def overlaps(a: str, b: str, *, case_sensitive: bool = True) -> bool:
    """True if locking ``a`` and ``b`` at the same time would conflict.

    Equal paths, a folder and anything inside it (either way), globs via their literal prefix.
    """
    pa = _fold(lock_prefix(a), case_sensitive)
    pb = _fold(lock_prefix(b), case_sensitive)
    return prefixes_overlap(pa, pb)


def tasks_conflict(a: Task, b: Task, *, case_sensitive: bool = True) -> bool:
    """True if tasks ``a`` and ``b`` must not run at the same time.

    Read-only tasks take no lock; a write-shared task (or a write task without a manifest, whose
    scope is unknown) is exclusive against every other write task; otherwise any overlapping pair
    of manifest entries conflicts.
    """
    if not a.writes or not b.writes:
        return False
    if a.concurrency == "write-shared" or b.concurrency == "write-shared":
        return True
    if not a.files or not b.files:
        return True
    return any(overlaps(x, y, case_sensitive=case_sensitive) for x in a.files for y in b.files)


def _glob_regex(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    """Translate a manifest glob: ``**`` crosses ``/``, ``*`` and ``?`` do not."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                out.append(re.escape(char))
                i += 1
                continue
            body = pattern[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(char))
            i += 1
    flags = 0 if case_sensitive else re.IGNORECASE
    return re.compile("".join(out), flags)


def in_manifest(path: str, manifest: t.Sequence[str], *, case_sensitive: bool = True) -> bool:
    """True if the changed file ``path`` lies inside ``manifest`` (the arbiter's scope check).

    A file entry matches itself, a folder entry everything below it, a glob entry every path it
    matches (``**`` crosses ``/``) and everything below a folder it matches.
    """
    target = _fold(normalize(path), case_sensitive)
    ancestors = _self_and_ancestors(target)
    for entry in manifest:
        norm = normalize(entry)
        if is_glob(norm):
            regex = _glob_regex(norm, case_sensitive)
            if any(regex.fullmatch(candidate) for candidate in ancestors):
                return True
        else:
            folded = _fold(norm, case_sensitive)
            if target == folded or target.startswith(folded + "/"):
                return True
    return False


def _self_and_ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def filesystem_case_sensitive(directory: pathlib.Path) -> bool:
    """True if file names in ``directory`` are case-sensitive (probed with a temporary file)."""
    with tempfile.NamedTemporaryFile(prefix="SwarmCaseProbe-", dir=directory) as probe:
        name = pathlib.Path(probe.name).name
        return not (directory / name.swapcase()).exists()
