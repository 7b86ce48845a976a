"""How the runner runs git: hardened, so no code a worker planted in the shared ``.git`` runs.

Every call passes :data:`SAFE_SWITCHES` (hooks off, fsmonitor off, no signing program, no
auto-gc, no submodule recursion, no pager or editor); every call that reads or writes file
content also neutralises each filter and merge driver the repository's config defines
(:func:`driver_overrides`), read once per change of the config files.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import typing as t

from runner import proc
from runner.errors import CommandError

SAFE_SWITCHES: t.Final[tuple[str, ...]] = tuple(
    arg
    for setting in (
        "core.hooksPath=/dev/null",  # no hook at all: post-checkout, post-merge, pre-commit ...
        "core.fsmonitor=false",  # a command run by status, diff, add, reset, checkout
        "core.untrackedCache=false",
        "commit.gpgSign=false",  # signing and verifying run gpg.program ...
        "tag.gpgSign=false",
        "merge.verifySignatures=false",
        "log.showSignature=false",
        "gpg.program=false",  # ... so any that still happens runs nothing planted
        "gpg.openpgp.program=false",
        "gpg.x509.program=false",
        "gpg.ssh.program=false",
        "gpg.ssh.defaultKeyCommand=false",
        "gc.auto=0",  # no background gc (it could prune commits before they are archived)
        "maintenance.auto=false",
        "core.logAllRefUpdates=true",  # reflogs are part of "no commit is lost"
        "rerere.enabled=false",  # planted resolutions in rr-cache must not resolve conflicts
        "submodule.recurse=false",
        "core.pager=cat",
        "core.editor=false",
        "sequence.editor=false",
    )
    for arg in ("-c", setting)
)
"""``-c`` switches on every git call (command-line config beats every config file)."""

SAFE_ENV: t.Final[t.Mapping[str, str]] = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_PAGER": "cat",
    "GIT_EDITOR": "false",
}

_DRIVER_KEY: t.Final = re.compile(
    r"(?i)^(filter|merge)\.(.+)\.(clean|smudge|process|required|driver)$"
)


def driver_overrides(config_keys: t.Iterable[str]) -> tuple[str, ...]:
    """``-c`` switches that neutralise every filter and merge driver among ``config_keys``
    (as ``git config --list --name-only`` prints them; pure).

    A filter's commands become empty (git then passes content through unchanged) and it is no
    longer required; a merge driver becomes ``false`` (the file conflicts, so the arbiter
    refuses the merge rather than take a planted tool's output). Diff drivers (textconv,
    external diff) only run for patch output, which no call here asks for.
    """
    names: dict[tuple[str, str], None] = {}
    for key in config_keys:
        match = _DRIVER_KEY.match(key)
        if match:
            names[(match.group(1).lower(), match.group(2))] = None
    out: list[str] = []
    for section, name in names:
        if section == "filter":
            for field, value in (
                ("clean", ""),
                ("smudge", ""),
                ("process", ""),
                ("required", "false"),
            ):
                out += ("-c", f"filter.{name}.{field}={value}")
        else:
            out += ("-c", f"merge.{name}.driver=false")
    return tuple(out)


_CONFIG_CACHE: dict[tuple[tuple[str, int, int], ...], list[str]] = {}
"""(path and stat of every existing config file git reads) -> their keys: a content call costs
one more git process only when a config file changed (or includes make the set unknown). Keyed
by the files, not the directory: every worktree of a repository reads the same files, so the
arbiter's check in fifty worktrees reads the config once."""


def _admin_dir(checkout: pathlib.Path) -> pathlib.Path | None:
    """The ``.git/worktrees/<id>`` a linked worktree's ``.git`` file names, else None (also
    for anything unreadable or looping: then git itself is asked)."""
    try:
        text = (pathlib.Path(checkout) / ".git").read_text()
        if not text.startswith("gitdir: ") or text.count("\n") > 1:
            return None
        gitdir = pathlib.Path(text.removeprefix("gitdir: ").strip())
        return (pathlib.Path(checkout) / gitdir).resolve() if gitdir.parts else None
    except (OSError, RuntimeError, UnicodeDecodeError):  # RuntimeError: a symlink loop
        return None


def worktree_ref(repo: pathlib.Path, checkout: pathlib.Path, ref: str = "HEAD") -> str | None:
    """``worktrees/<id>/<ref>``: how any process in ``repo`` names ``ref`` of the linked
    worktree ``checkout`` (git-worktree(1), "Refs"), or None when ``checkout`` is not a
    worktree of ``repo``'s repository (then ask git there)."""
    own = _admin_dir(repo)
    admin = _admin_dir(checkout)
    try:
        if own is None:
            common = (pathlib.Path(repo) / ".git").resolve(strict=True)
        else:
            common = (own / (own / "commondir").read_text().strip()).resolve(strict=True)
        if admin is None or admin.parent != common / "worktrees" or not (admin / "HEAD").is_file():
            return None
    except (OSError, RuntimeError, UnicodeDecodeError):
        return None
    return f"worktrees/{admin.name}/{ref}"


def _config_files(repo: pathlib.Path) -> list[pathlib.Path]:
    """The config files git reads in ``repo`` (without includes), found without running git."""
    dot = pathlib.Path(repo) / ".git"
    files: list[pathlib.Path] = []
    gitdir = dot
    if dot.is_file():  # a worktree: ".git" names its admin dir, whose commondir is the repo's
        text = dot.read_text().strip()
        gitdir = pathlib.Path(text.removeprefix("gitdir:").strip())
        common = gitdir / "commondir"
        base = (gitdir / common.read_text().strip()).resolve() if common.exists() else gitdir
        files += [base / "config", gitdir / "config.worktree"]
    else:
        files += [gitdir / "config", gitdir / "config.worktree"]
    home = pathlib.Path(os.environ.get("HOME", "/"))
    xdg = pathlib.Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    glob = os.environ.get("GIT_CONFIG_GLOBAL")
    files += [pathlib.Path(glob)] if glob else [home / ".gitconfig", xdg / "git" / "config"]
    if not os.environ.get("GIT_CONFIG_NOSYSTEM"):
        files.append(pathlib.Path("/etc/gitconfig"))  # GIT_CONFIG_SYSTEM is not passed on
    return files


def _signature(files: t.Iterable[pathlib.Path]) -> tuple[tuple[str, int, int], ...]:
    """Path, mtime and size of each file that exists (a missing one adds no key)."""
    out: list[tuple[str, int, int]] = []
    for path in files:
        try:
            info = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path), info.st_mtime_ns, info.st_size))
    return tuple(out)


def _config_keys(repo: pathlib.Path) -> list[str]:
    try:
        signature = _signature(_config_files(repo))
    except OSError:
        return _read_config_keys(repo)
    cached = _CONFIG_CACHE.get(signature)
    if cached is not None:
        return cached
    keys = _read_config_keys(repo)
    if not any(key.lower().startswith(("include.", "includeif.")) for key in keys):
        _CONFIG_CACHE[signature] = keys
    return keys


def _read_config_keys(repo: pathlib.Path) -> list[str]:
    result = proc.run(
        "git",
        *SAFE_SWITCHES,
        "config",
        "--list",
        "--name-only",
        "-z",
        "--includes",
        cwd=repo,
        env=SAFE_ENV,
        check=False,
    )
    return [key for key in result.stdout.split("\0") if key]


def _git(
    repo: pathlib.Path,
    *args: str,
    check: bool = True,
    content: bool = False,
    env: t.Mapping[str, str] | None = None,
) -> proc.Result:
    """Run git hardened; ``content=True`` for commands that may run filters or drivers.

    A directory that is gone (a worker deleted its worktree) is a :class:`CommandError` that
    says so, not the "command not found" a missing working directory otherwise looks like.
    """
    if not pathlib.Path(repo).is_dir():
        raise CommandError(
            ("git", *args), 128, "", f"{repo}: no such directory (was the worktree removed?)"
        )
    drivers = driver_overrides(_config_keys(repo)) if content else ()
    return proc.run(
        "git",
        *SAFE_SWITCHES,
        *drivers,
        *args,
        cwd=repo,
        env={**SAFE_ENV, **(env or {})},
        check=check,
    )


def _out(repo: pathlib.Path, *args: str) -> str:
    return _git(repo, *args).stdout.strip()


class ObjectReader:
    """One long-lived ``git cat-file --batch`` in ``repo``: the arbiter reads the trees of fifty
    merges through one process instead of starting a ``diff-tree`` per merge. Raw objects only
    (no filter or textconv runs); started on first use, ended by :meth:`close` (a context
    manager)."""

    def __init__(self, repo: pathlib.Path) -> None:
        self.repo = repo
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, sha: str) -> tuple[str, bytes]:
        """``(type, content)`` of object ``sha``; :class:`CommandError` when it is missing."""
        _, kind, data = self._lookup(sha)
        return kind, data

    def commit(self, name: str) -> str:
        """The sha of the commit ``name`` (any revision, e.g. ``worktrees/<id>/HEAD``) names;
        :class:`CommandError` when it names none: what ``git rev-parse --verify NAME^{commit}``
        says, without a process."""
        sha, kind, _ = self._lookup(f"{name}^{{commit}}")
        if kind != "commit":  # cat-file peels as asked: only a malformed repository gets here
            raise CommandError(("git", "cat-file", "--batch"), 128, "", f"{name}: a {kind}")
        return sha

    def _lookup(self, name: str) -> tuple[str, str, bytes]:
        cmd = ("git", "cat-file", "--batch")
        if self._proc is None:
            if not pathlib.Path(self.repo).is_dir():
                raise CommandError(cmd, 128, "", f"{self.repo}: no such directory")
            self._proc = subprocess.Popen(
                ("git", *SAFE_SWITCHES, "cat-file", "--batch"),
                cwd=self.repo,
                env=proc.clean_env(SAFE_ENV),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        pipe_in, pipe_out = self._proc.stdin, self._proc.stdout
        assert pipe_in is not None and pipe_out is not None
        if not name or any(c in name for c in " \n"):
            raise CommandError(cmd, 128, "", f"{name!r}: not an object name")
        try:
            pipe_in.write(name.encode() + b"\n")
            pipe_in.flush()
            header = pipe_out.readline().split()
        except OSError as exc:
            self.close()
            raise CommandError(cmd, 128, "", f"git cat-file stopped: {exc}") from exc
        if len(header) != 3:
            if not header:  # the process died: the next read starts a new one
                self.close()
            raise CommandError(cmd, 128, "", f"{name}: {b' '.join(header[1:]).decode()}")
        size = int(header[2])
        data = pipe_out.read(size + 1)
        if len(data) != size + 1:
            self.close()
            raise CommandError(cmd, 128, "", f"{name}: git cat-file stopped mid-object")
        return header[0].decode(), header[1].decode(), data[:size]

    def close(self) -> None:
        if self._proc is None:
            return
        running, self._proc = self._proc, None
        for pipe in (running.stdin, running.stdout):
            if pipe is not None:
                pipe.close()
        try:
            running.wait(timeout=5)
        except subprocess.TimeoutExpired:
            running.kill()
            running.wait()
