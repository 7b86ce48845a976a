"""File manifests and touches locks (DESIGN.md "Touches locks").

A manifest entry is a file (``src/app.py``), a folder (``src/core/`` or ``src/core``) or a glob
(``src/**/*.py``). Entries are normalized to POSIX paths relative to the repository root. A glob
locks its literal directory prefix (``src/**/*.py`` locks ``src``; ``*.py`` locks the root ``""``),
and a lock conflicts with every lock inside it or containing it.

Paths are compared byte-exact after that normalization only: whitespace is part of a name, so
a worker's ``" src/evil.py"`` is a top-level folder named ``" src"``, not a file inside ``src/``.
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
    """The POSIX form of a path: no ``./`` or ``.`` components, no trailing ``/``, no ``//``.

    Nothing else changes: no stripping, no case or Unicode folding, so the result names the
    same bytes git does. Raises ValueError for an empty path, an absolute path, a ``..``
    component, a NUL byte or a path that names the repository root itself (``.``).
    """
    if not isinstance(path, str):
        raise ValueError(f"{path!r} is not a string; write the path in quotes")
    if "\0" in path:
        raise ValueError(f"{path!r} contains a NUL byte")
    if not path:
        raise ValueError("empty path; name a file, a folder or a glob")
    if path.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", path):
        raise ValueError(f"{path!r} is absolute; use a path relative to the repository root")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{path!r} contains '..'; use a path inside the repository")
    if not parts:
        raise ValueError(
            f"{path!r} names the repository root; name folders or files "
            "(or use concurrency: write-shared for a repository-wide task)"
        )
    return "/".join(parts)


def check_entry(path: str) -> str:
    """A manifest entry as written in a plan, normalized; ValueError if unusable.

    Besides :func:`normalize`'s rules, a name that starts or ends with whitespace (or holds a
    control character) is refused: in a plan it is a typo far more often than a real file
    name, and since paths compare exactly it would silently lock the wrong thing.
    """
    norm = normalize(path)
    for part in norm.split("/"):
        if part != part.strip() or not part.strip():
            raise ValueError(
                f"{path!r} has a name starting or ending with whitespace; paths are compared "
                "exactly, so remove the spaces (or quote the real name exactly)"
                if part.strip()
                else f"{path!r} has a blank name; name a file, a folder or a glob"
            )
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in part):
            raise ValueError(f"{path!r} contains a control character")
    return norm


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
    flags = re.DOTALL if case_sensitive else re.DOTALL | re.IGNORECASE
    return re.compile("".join(out), flags)


def in_manifest(path: str, manifest: t.Sequence[str], *, case_sensitive: bool = True) -> bool:
    """True if the changed file ``path`` lies inside ``manifest`` (the arbiter's scope check).

    A file entry matches itself, a folder entry everything below it, a glob entry every path it
    matches (``**`` crosses ``/``) and everything below a folder it matches. Comparison is
    exact (no stripping); a path that cannot be normalized (empty, absolute, ``..``) is never
    inside, so a worker's odd file name is refused, never an exception.
    """
    try:
        target = _fold(normalize(path), case_sensitive)
    except ValueError:
        return False
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


SYMLINK_MODE: t.Final = "120000"
"""The git tree mode of a symbolic link."""
MAX_SYMLINK_HOPS: t.Final = 40
"""Links followed while resolving one target (Linux's own limit), then the link is refused."""
PROTECTED_DIRS: t.Final = (".git", ".agents")
"""Top-level names a link may not point into: git's own files and the swarm home."""


def is_protected(path: str) -> bool:
    """True for a path under ``.agents/`` (the live swarm home) or ``.git/``: never merged or
    landed, whatever the manifest says (``**`` included). Exact, case-insensitive for the
    first component (a case-insensitive file system would write ``.AGENTS/`` into it)."""
    first = path.split("/", 1)[0]
    return first.casefold() in PROTECTED_DIRS


class TreeEntry(t.NamedTuple):
    """One line of ``git ls-tree -r -z`` (``<mode> <type> <object>\\t<path>``)."""

    mode: str
    type: str
    object: str
    path: str

    @property
    def is_symlink(self) -> bool:
        return self.mode == SYMLINK_MODE


def parse_ls_tree(output: str) -> list[TreeEntry]:
    """Parse ``git ls-tree -r -z [--full-tree] <commit>`` output (NUL-terminated records)."""
    entries: list[TreeEntry] = []
    for record in output.split("\0"):
        if not record:
            continue
        meta, _, path = record.partition("\t")
        mode, kind, obj = meta.split(" ")
        entries.append(TreeEntry(mode, kind, obj, path))
    return entries


def parse_raw_diff(output: str) -> list[tuple[str, str]]:
    """``(new mode, path)`` per changed path of ``git diff --raw -z --no-renames A B``.

    A deleted path has mode ``000000``. Together with the link targets (the blob contents of
    mode-120000 paths), this is what :func:`escaping_symlinks` needs for a diff.
    """
    out: list[tuple[str, str]] = []
    fields = output.split("\0")
    i = 0
    while i < len(fields) - 1:
        meta = fields[i]
        if not meta.startswith(":"):
            i += 1
            continue
        parts = meta[1:].split(" ")
        status = parts[4] if len(parts) > 4 else ""
        i += 1
        if status[:1] in ("R", "C"):
            i += 1  # the source path; the destination follows
        out.append((parts[1], fields[i]))
        i += 1
    return out


class SymlinkEscape(t.NamedTuple):
    path: str
    target: str
    reason: str


def escaping_symlinks(
    links: t.Mapping[str, str],
    *,
    check: t.Iterable[str] | None = None,
    allow_in_repo: bool = True,
) -> list[SymlinkEscape]:
    """The symbolic links among ``links`` that point outside the repository.

    ``links`` maps every link of the tree judged (repo-relative path -> target, the blob
    content) so chains resolve as the file system would: ``a/l1 -> ..`` stays inside, but
    ``a/l2 -> l1/..`` resolves through ``l1`` to the repository's parent and escapes. ``check``
    limits the report to those paths (the ones a merge changes; default all). A link escapes
    when its target is absolute (``/etc/passwd``, ``~`` is not special to the kernel so
    ``~/.ssh`` is a plain relative name), climbs above the root, points into ``.git`` or
    ``.agents``, or takes more than :data:`MAX_SYMLINK_HOPS` links to resolve. With
    ``allow_in_repo=False`` every link is refused. Pure: no file system access.
    """
    wanted = list(links) if check is None else [path for path in check if path in links]
    found: list[SymlinkEscape] = []
    for path in wanted:
        target = links[path]
        if not allow_in_repo:
            found.append(SymlinkEscape(path, target, "symbolic links are not allowed"))
            continue
        reason = _link_escape(path, links)
        if reason is not None:
            found.append(SymlinkEscape(path, target, reason))
    return found


def _link_escape(path: str, links: t.Mapping[str, str]) -> str | None:
    """Resolve the link at ``path`` component by component, as the kernel would."""
    hops = 0
    # Components still to walk, and the resolved directory so far (list of names from root).
    parent = path.split("/")[:-1]
    pending = _split_target(links[path])
    if pending is None:
        return f"absolute or empty target {links[path]!r}"
    resolved: list[str] = parent
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if not resolved:
                return f"target {links[path]!r} climbs above the repository root"
            resolved = resolved[:-1]
            continue
        candidate = "/".join([*resolved, name])
        if candidate in links:
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return f"target {links[path]!r} takes more than {MAX_SYMLINK_HOPS} links"
            inner = _split_target(links[candidate])
            if inner is None:
                return f"target {links[path]!r} goes through {candidate!r}, an absolute link"
            pending = inner + pending
            continue
        resolved = [*resolved, name]
        if resolved[0] in PROTECTED_DIRS:
            return f"target {links[path]!r} points into {resolved[0]}/"
    return None


def _split_target(target: str) -> list[str] | None:
    if not target or target.startswith("/") or "\0" in target:
        return None
    return target.split("/")
