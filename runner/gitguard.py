"""The git questions that guard the repository against what a worker did: what a merge would
land (the arbiter's result-based scope check), which commits only a worktree or a reflog still
reaches (``swarm clean`` loses none), the symbolic links of a tree, and the fingerprint of the
hooks and config plus the overwrite check (``swarm land``). Every call goes through
:mod:`runner.git`'s safe switches: no code a worker planted runs here either.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import stat
import typing as t

from protocol.manifest import parse_ls_tree
from runner import proc
from runner.errors import CommandError
from runner.git import common_dir
from runner.gitrun import SAFE_ENV, SAFE_SWITCHES, ObjectReader, _git, _out

# -- what a merge would land (the arbiter's result check) ---------------------------------------


class MergeResult(t.NamedTuple):
    tree: str
    """The tree the merge makes (``git merge-tree --write-tree``: ort, virtual merge bases)."""
    conflicts: tuple[str, ...]


class TreeChange(t.NamedTuple):
    path: str
    """Exactly as git stores it (bytes decoded as UTF-8 with surrogate escapes)."""
    mode: str
    """The new mode ("000000" when deleted; "120000" a symlink, "160000" a submodule)."""
    sha: str


def merge_tree(repo: pathlib.Path, ours: str, theirs: str) -> MergeResult:
    """The tree of merging ``theirs`` into ``ours`` and its conflicting paths, touching no
    work tree. Raises :class:`CommandError` when git cannot merge at all (e.g. no history in
    common and no ``--allow-unrelated-histories``)."""
    args = ("merge-tree", "--write-tree", "-z", "--name-only", "--no-messages", ours, theirs)
    result = _git(repo, *args, check=False)
    items = result.stdout.split("\0")
    if result.returncode not in (0, 1) or not re.fullmatch(r"[0-9a-f]{40,64}", items[0]):
        raise CommandError(("git", *args), result.returncode, result.stdout, result.stderr)
    conflicts: list[str] = []
    if result.returncode == 1:
        for item in items[1:]:
            if not item:
                break
            conflicts.append(item)
    return MergeResult(items[0], tuple(sorted(set(conflicts))))


def tree_changes(reader: ObjectReader, old: str, new: str) -> list[TreeChange]:
    """Every path whose entry differs between two trees or commits, sorted as ``git diff-tree
    -r --no-renames`` lists them (a rename counts as a delete plus an add, a submodule is one
    entry). Walked in process through ``reader``, descending only into folders whose tree
    differs: a merge that changes three files reads a handful of trees."""
    changes: list[TreeChange] = []
    stack: list[tuple[str, str | None, str | None]] = [
        ("", _root_tree(reader, old), _root_tree(reader, new))
    ]
    while stack:
        prefix, old_tree, new_tree = stack.pop()
        before = _tree_entries(reader, old_tree)
        after = _tree_entries(reader, new_tree)
        for name in before.keys() | after.keys():
            was, now = before.get(name), after.get(name)
            if was == now:
                continue
            path = prefix + name
            was_dir = was is not None and was[0] == _TREE_MODE
            now_dir = now is not None and now[0] == _TREE_MODE
            if was_dir or now_dir:  # a folder's files, each on its own line
                old_sub = was[1] if was is not None and was_dir else None
                new_sub = now[1] if now is not None and now_dir else None
                stack.append((path + "/", old_sub, new_sub))
            if now is not None and not now_dir:
                changes.append(TreeChange(path, now[0], now[1]))
            elif was is not None and not was_dir:
                changes.append(TreeChange(path, _DELETED, "0" * len(was[1])))
    return sorted(changes, key=lambda change: change.path.encode("utf-8", "surrogateescape"))


_TREE_MODE: t.Final = "040000"
_DELETED: t.Final = "000000"


def _root_tree(reader: ObjectReader, sha: str) -> str:
    kind, data = reader.read(sha)
    if kind == "commit":
        line = data.split(b"\n", 1)[0]
        if not line.startswith(b"tree "):
            raise CommandError(("git", "cat-file", "commit", sha), 128, "", "a commit without tree")
        return line[5:].decode()
    if kind != "tree":
        raise CommandError(("git", "cat-file", "tree", sha), 128, "", f"{sha} is a {kind}")
    return sha


def _tree_entries(reader: ObjectReader, sha: str | None) -> dict[str, tuple[str, str]]:
    """name -> (six-digit mode, sha) of each entry of tree ``sha`` (none for None)."""
    if sha is None:
        return {}
    kind, data = reader.read(sha)
    if kind != "tree":
        raise CommandError(("git", "cat-file", "tree", sha), 128, "", f"{sha} is a {kind}")
    width = len(sha) // 2  # 20 bytes (SHA-1) or 32 (SHA-256)
    entries: dict[str, tuple[str, str]] = {}
    at = 0
    while at < len(data):
        space = data.index(b" ", at)
        nul = data.index(b"\0", space)
        mode = f"{int(data[at:space], 8):06o}"
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = (mode, data[nul + 1 : nul + 1 + width].hex())
        at = nul + 1 + width
    return entries


class Status(t.NamedTuple):
    head: str | None
    """The commit HEAD names (None on an unborn branch)."""
    entries: list[tuple[str, str]]
    """``(XY, path)`` per entry: ``??`` untracked, ``!!`` ignored, else index and work tree."""

    @property
    def dirty(self) -> list[str]:
        """Paths with uncommitted changes: staged, unstaged, or untracked and not ignored."""
        return sorted({path for xy, path in self.entries if xy != "!!"})


_V2_FIELDS: t.Final = {"1": 8, "2": 9, "u": 10, "?": 1, "!": 1}
"""Space-separated fields before the path, per ``git status --porcelain=v2`` entry kind."""


def status(repo: pathlib.Path, *options: str, observe: bool = False) -> Status:
    """HEAD and every entry of ``git status --porcelain=v2 -z --branch --untracked-files=all``
    (plus ``options``), rename and copy sources skipped: one git process answers both "which
    commit" and "what is uncommitted". Run as a content call, so no filter a worker planted
    runs while git compares files. ``observe``: without git's optional index lock
    (``GIT_OPTIONAL_LOCKS=0``), for a look into a worktree whose worker may be committing (the
    lock would make its ``git commit`` fail)."""
    args = ("status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all", *options)
    env = {"GIT_OPTIONAL_LOCKS": "0"} if observe else None
    fields = _git(repo, *args, content=True, env=env).stdout.split("\0")
    head = None
    entries: list[tuple[str, str]] = []
    i = 0
    while i < len(fields):
        item = fields[i]
        i += 1
        if item.startswith("# branch.oid "):
            oid = item.removeprefix("# branch.oid ")
            head = oid if re.fullmatch(r"[0-9a-f]{40,64}", oid) else None
            continue
        skip = _V2_FIELDS.get(item[:1])
        if skip is None or item[1:2] != " ":
            continue
        parts = item.split(" ", skip)
        if len(parts) <= skip:
            continue
        kind = item[:1]
        entries.append((kind * 2 if kind in "?!" else parts[1], parts[skip]))
        if kind == "2":
            i += 1  # the rename's or copy's source follows
    return Status(head, entries)


def dirty_paths(repo: pathlib.Path) -> list[str]:
    """Paths with uncommitted changes: staged, unstaged, or untracked and not ignored."""
    return status(repo).dirty


# -- reachability (swarm clean: no commit is ever lost) ------------------------------------

_ZERO: t.Final = re.compile(r"^0+$")


def reflog_commits(log_file: pathlib.Path) -> list[str]:
    """Every commit a reflog file names (old and new side of each entry), oldest first, once.

    Read from the file, not through git, because removing a worktree or deleting a branch
    deletes its reflog: the caller reads it first, while it still exists.
    """
    try:
        text = log_file.read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, NotADirectoryError):
        return []
    seen: dict[str, None] = {}
    for line in text.splitlines():
        fields = line.split(" ", 2)
        for sha in fields[:2]:
            if re.fullmatch(r"[0-9a-f]{40,64}", sha) and not _ZERO.match(sha):
                seen.setdefault(sha, None)
    return list(seen)


def branch_reflog(repo: pathlib.Path, branch: str) -> pathlib.Path:
    """The reflog file of ``refs/heads/<branch>`` (in the common git dir)."""
    return common_dir(repo) / "logs" / "refs" / "heads" / branch


def worktree_admin_dir(repo: pathlib.Path, worktree: pathlib.Path) -> pathlib.Path | None:
    """``.git/worktrees/<name>`` of the linked worktree at ``worktree`` (even when its
    directory is gone), or None when git does not know it."""
    admin_root = common_dir(repo) / "worktrees"
    want = os.path.realpath(worktree)
    try:
        names = sorted(admin_root.iterdir())
    except FileNotFoundError:
        return None
    for admin in names:
        try:
            gitdir = (admin / "gitdir").read_text().strip()
        except OSError:
            continue
        if os.path.realpath(pathlib.Path(gitdir).parent) == want:
            return admin
    return None


def lost_commits(
    repo: pathlib.Path, candidates: t.Iterable[str], keep: t.Iterable[str]
) -> list[str]:
    """The smallest set of ``candidates`` whose history holds every commit that is reachable
    from some candidate but from none of ``keep`` (archive these and nothing is lost).

    Candidates that no longer exist are ignored. ``[]``: every candidate's history is in
    ``keep``.
    """
    wanted = [sha for sha in dict.fromkeys(candidates) if sha]
    if not wanted:
        return []
    keep_list = [sha for sha in dict.fromkeys(keep) if sha]
    stdin = "".join(f"{sha}\n" for sha in wanted) + "".join(f"^{sha}\n" for sha in keep_list)
    result = _git_input(repo, stdin, "rev-list", "--ignore-missing", "--stdin")
    lost = set(result.split())
    tips = [sha for sha in wanted if sha in lost]
    if len(tips) <= 1:
        return tips
    independent = set(_out(repo, "merge-base", "--independent", *tips).split())
    return [sha for sha in tips if sha in independent]


def _git_input(repo: pathlib.Path, stdin: str, *args: str) -> str:
    return proc.run("git", *SAFE_SWITCHES, *args, cwd=repo, env=SAFE_ENV, input=stdin).stdout


# -- symbolic links of a commit (the arbiter's symlink check) ----------------------------


def symlink_targets(repo: pathlib.Path, commit: str) -> dict[str, str]:
    """Every symbolic link in ``commit``'s tree: repository path -> link target (the blob).

    Feed it to :func:`protocol.manifest.escaping_symlinks` with ``check=`` the changed paths.
    """
    out = _git(repo, "ls-tree", "-r", "-z", "--full-tree", commit).stdout
    links: dict[str, str] = {}
    for entry in parse_ls_tree(out):
        if entry.is_symlink:
            links[entry.path] = _git(repo, "cat-file", "blob", entry.object).stdout
    return links


# -- fingerprint of what could run code in the mayor's git (swarm land) -----------------


def repo_fingerprint(repo: pathlib.Path) -> dict[str, str]:
    """A digest per hook file and per repository config file (JSON-safe, sorted).

    Keys: ``hook:<dir>/<name>`` (content digest, ``+x`` when executable) for the common hooks
    dir and any ``core.hooksPath``; ``config:<file>`` for each local or worktree-scope config
    file git reads (includes too); ``attributes:<file>`` for ``info/attributes``; and
    ``config`` for the effective local config as a whole. Record it when the run starts and
    compare with :func:`fingerprint_changes` before landing.
    """
    common = common_dir(repo)
    prints: dict[str, str] = {}
    listing = proc.run(
        "git",
        "config",
        "--list",
        "-z",
        "--includes",
        "--show-origin",
        "--show-scope",
        cwd=repo,
        env=SAFE_ENV,
        check=False,
    ).stdout
    files: dict[str, None] = {str(common / "config"): None, str(common / "config.worktree"): None}
    hook_dirs: dict[str, None] = {str(common / "hooks"): None}
    local: list[str] = []
    items = listing.split("\0")
    # records: scope \0 origin \0 key\nvalue \0
    for i in range(0, len(items) - 2, 3):
        scope, origin, entry = items[i], items[i + 1], items[i + 2]
        if scope not in ("local", "worktree"):
            continue
        local.append(entry)
        if origin.startswith("file:"):
            name = origin.removeprefix("file:")
            files.setdefault(name if pathlib.Path(name).is_absolute() else str(repo / name), None)
        key, _, value = entry.partition("\n")
        if key.lower() == "core.hookspath" and value:
            hooks = pathlib.Path(value).expanduser()
            hook_dirs.setdefault(str(hooks if hooks.is_absolute() else repo / hooks), None)
    prints["config"] = _digest("\0".join(local).encode())
    for name in files:
        digest = _file_digest(pathlib.Path(name))
        if digest is not None:
            prints[f"config:{name}"] = digest
    attributes = common / "info" / "attributes"
    digest = _file_digest(attributes)
    if digest is not None:
        prints[f"attributes:{attributes}"] = digest
    for directory in hook_dirs:
        root = pathlib.Path(directory)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            digest = _file_digest(path)
            if digest is None:
                continue
            mode = path.lstat().st_mode
            executable = "+x" if mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH) else ""
            prints[f"hook:{path}"] = digest + executable
    return dict(sorted(prints.items()))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _file_digest(path: pathlib.Path) -> str | None:
    """Digest of a regular file (a symlink: of its target path), None if absent or a dir."""
    try:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return "link:" + _digest(str(path.readlink()).encode())
        if not stat.S_ISREG(mode):
            return None
        return _digest(path.read_bytes())
    except OSError:
        return None


def fingerprint_changes(before: t.Mapping[str, str], after: t.Mapping[str, str]) -> list[str]:
    """What changed between two :func:`repo_fingerprint` results, one phrase each (pure)."""
    changes: list[str] = []
    for key in sorted(set(before) | set(after)):
        kind, _, name = key.partition(":")
        what = {"hook": "hook", "config": "config file", "attributes": "attributes file"}[kind]
        label = f"{what} {name}" if name else "the repository's config"
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if old is None:
            changes.append(f"{label} was added")
        elif new is None:
            changes.append(f"{label} was removed")
        elif old.removesuffix("+x") == new.removesuffix("+x"):
            changes.append(f"{label} became {'executable' if new.endswith('+x') else 'plain'}")
        else:
            changes.append(f"{label} changed")
    return changes


def ref_tips(repo: pathlib.Path) -> dict[str, str]:
    """Every ref (``refs/...``) and the commit or object it points at."""
    out = _git(repo, "for-each-ref", "--format=%(refname)%00%(objectname)").stdout
    tips: dict[str, str] = {}
    for line in out.splitlines():
        name, _, sha = line.partition("\0")
        if name and sha:
            tips[name] = sha
    return tips


def changed_paths(repo: pathlib.Path, old: str, new: str, *pathspec: str) -> list[str]:
    """Paths that differ between commits ``old`` and ``new`` (two-dot, no renames), sorted;
    ``pathspec`` limits them (e.g. ``.agents``)."""
    args = ("diff", "--name-only", "--no-renames", "-z", old, new, "--", *pathspec)
    return sorted({p for p in _git(repo, *args).stdout.split("\0") if p})


def ff_would_overwrite(worktree: pathlib.Path, old: str, new: str) -> list[str]:
    """Paths of the user's that fast-forwarding the checkout at ``worktree`` from ``old`` to
    ``new`` would overwrite or delete: local changes to a path the fast-forward changes, and
    untracked or ignored files where it writes a file or needs a folder. Sorted; ``[]`` when
    only untouched paths are dirty (git then carries them over unchanged).

    Git refuses the first kind itself but silently overwrites ignored files (the swarm home is
    ignored): this is the check that keeps them.
    """
    changed = set(changed_paths(worktree, old, new))
    if not changed:
        return []
    needed_dirs = {"/".join(p.split("/")[:i]) for p in changed for i in range(1, p.count("/") + 1)}
    hit: set[str] = set()
    for xy, path in status(worktree, "--ignored=matching").entries:
        is_dir = path.endswith("/")
        path = path.rstrip("/")
        if xy not in ("??", "!!"):
            if path in changed:
                hit.add(path)
            continue
        if path in changed:
            hit.add(path)
        elif path in needed_dirs:
            if is_dir:
                inside = (c for c in changed if c.startswith(path + "/"))
                hit.update(c for c in inside if os.path.lexists(worktree / c))
            else:
                hit.add(path)
        elif any("/".join(path.split("/")[:n]) in changed for n in range(1, path.count("/") + 1)):
            hit.add(path)
    return sorted(hit)
