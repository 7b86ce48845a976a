"""The bubblewrap sandbox of ``--isolation sandbox`` (docs/isolation.md).

A sandboxed worker runs its agent under ``bwrap`` in a mount namespace that holds only:

- the system, read-only: ``/usr``, ``/etc``, ``/bin``, ``/lib*``, ``/sbin``, ``/opt``; a private
  ``/tmp``, ``/dev`` and ``/proc``; swarm's own Python and code, read-only (the ``swarm`` the
  agent reports with);
- its clone, read-write, and the repository's object store the clone borrows from, read-only;
- its **box** (``runs/<run>/sandbox/<task>/``), read-write: a private ``HOME`` (with copies
  of only the files and folders its agent CLI needs, named in the preset; nothing of the real
  home is bound) and a private ``SWARM_HOME`` whose ``mail/`` holds its own inbox (bound
  read-only: the mayor delivers into it), its own key (bound read-only) and
  an outbox: a Maildir named after the mayor, where ``swarm worker`` delivers, since it is the
  only mailbox there. ``results/`` and ``scope-escapes.jsonl`` of that ``SWARM_HOME`` are its
  outbox for those files; :mod:`runner.boxmail` verifies and delivers all three;
- its brief and the run's plan, read-only.

Nothing else: not the user's checkout, home or other worktrees and clones, not the integration
worktree, not the repository's refs, hooks or config, not another agent's key or inbox. The
network is shared unless the run says ``--no-network``. Locations that hold secrets are hidden
even when a read-only code folder contains them (a virtualenv inside the repository).

The worker's setup and validation commands run in the same sandbox, and the run's gates in one
of their own (a :class:`SandboxSpec` without mail, around the integration worktree).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import stat
import sys
import typing as t

from protocol.ids import MAYOR
from runner import proc
from runner.errors import UsageError
from runner.paths import RunPaths, safe_id

BWRAP: t.Final = "bwrap"
INSTALL: t.Final = (
    "sudo apt-get install bubblewrap (Debian, Ubuntu), sudo dnf install bubblewrap (Fedora)"
)
SYSTEM_RO: t.Final = (
    "/usr",
    "/etc",
    "/opt",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
)
DNS_RO: t.Final = ("/run/systemd/resolve", "/run/resolvconf")
"""Where ``/etc/resolv.conf`` may point: bound (when they exist) so DNS works with the network."""
_PROBE_TIMEOUT: t.Final = 30.0
TMP: t.Final = "/tmp"
OWN_TMP: t.Final = "/tmp/.sandbox-tmp"
"""``TMPDIR`` when the box lies under ``/tmp`` itself (a test, a CI container): Codex refuses
to make its sandbox helper under a temp folder that holds its home ("Refusing to create
helper binaries under temporary dir"), so every command it runs would fail."""


def require_bwrap() -> str:
    """The ``bwrap`` executable, checked to work here; UsageError (one line: the fix) if not."""
    path = shutil.which(BWRAP)
    if path is None:
        raise UsageError(
            f"--isolation sandbox needs bubblewrap, and `{BWRAP}` is not on PATH: install it "
            f"({INSTALL}), or use --isolation clone"
        )
    probe = (path, "--ro-bind", "/", "/", "--unshare-all", "--", "true")
    result = proc.run(*probe, check=False, timeout=_PROBE_TIMEOUT)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
        raise UsageError(
            f"bubblewrap cannot make a sandbox here ({last}): allow unprivileged user "
            "namespaces (sysctl kernel.unprivileged_userns_clone=1), or use --isolation clone"
        )
    return path


SANDBOX_UID: t.Final = 1000


def sandbox_uid() -> int | None:
    """The uid an agent runs as in its sandbox: a plain user when swarm runs as root (Claude
    Code refuses its skip-permissions mode as root; files it writes are still yours), else
    your own (None: no mapping)."""
    return SANDBOX_UID if os.geteuid() == 0 else None


@dataclasses.dataclass(frozen=True)
class Box:
    """The folders of one sandboxed worker besides its clone (see the module docstring)."""

    root: pathlib.Path
    worker: str
    run_id: str

    @classmethod
    def of(cls, run: RunPaths, task_id: str, worker: str) -> Box:
        return cls(run.dir / "sandbox" / safe_id(task_id, "task id"), worker, run.dir.name)

    @property
    def home(self) -> pathlib.Path:
        return self.root / "home"

    @property
    def swarm_home(self) -> pathlib.Path:
        return self.root / "swarm"

    @property
    def mail(self) -> pathlib.Path:
        return self.swarm_home / "mail"

    @property
    def outbox(self) -> pathlib.Path:
        """The Maildir the worker's mail lands in (named after the mayor, its only peer)."""
        return self.mail / MAYOR

    @property
    def inbox(self) -> pathlib.Path:
        """Where the worker's real inbox is bound."""
        return self.mail / self.worker

    @property
    def key(self) -> pathlib.Path:
        """Where the worker's real key is bound (read-only)."""
        return self.mail / ".keys" / f"{self.worker}.key"

    @property
    def plan(self) -> pathlib.Path:
        return self.swarm_home / "runs" / self.run_id / "plan.json"

    @property
    def results(self) -> pathlib.Path:
        return self.swarm_home / "results"

    @property
    def escapes(self) -> pathlib.Path:
        return self.swarm_home / "scope-escapes.jsonl"

    def prepare(self, home: t.Iterable[HomeEntry]) -> None:
        """Make the box's folders, copy the agent's home files and folders into its private
        home (a file fresh at each start, a folder's files when the box has none of that name
        yet: :func:`copy_folder`) and make the mount points of what is bound into it (an empty
        file or folder each: the binds exist only inside the sandbox). The box is the
        worker's: a link it left where a folder or file of the box belongs is removed, never
        followed."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (self.home, self.inbox, self.results, self.plan.parent):
            _real_folder(self.root, folder)
        for sub in ("tmp", "new", "cur", "quarantine"):
            _real_folder(self.root, self.outbox / sub)
        # the mayor's "key" here is an empty stand-in: the worker's store only checks it exists
        for point in (self.key, self.mail / ".keys" / f"{MAYOR}.key", self.plan):
            _mount_point(self.root, point, directory=False)
        for entry in home:  # the box's copies: the user's own are never written
            _mount_point(self.root, entry.inside, directory=entry.directory)
            if entry.directory:
                copy_folder(self.root, entry.real, entry.inside)
            else:
                shutil.copyfile(entry.real, entry.inside)


COPY_FILE_MAX: t.Final = 4 << 20
"""Largest file of a home folder copied into a box (configs and credentials are small; a
CLI's old session logs are not needed there)."""
COPY_TOTAL_MAX: t.Final = 64 << 20
"""Most bytes copied of one home folder (its top-level files come first)."""


def copy_folder(root: pathlib.Path, real: pathlib.Path, inside: pathlib.Path) -> int:
    """Copy the regular files of the user's folder ``real`` into ``inside`` (in the box
    ``root``), breadth-first, each file only when ``inside`` has nothing of that name yet (the
    CLI's own sessions and settings in the box survive its restarts, for ``--continue``),
    within :data:`COPY_FILE_MAX` and :data:`COPY_TOTAL_MAX`; links and special files of
    either side are never followed. Returns the bytes copied."""
    copied = 0
    queue = [pathlib.Path()]
    while queue:
        rel = queue.pop(0)
        try:
            names = sorted(os.listdir(real / rel))  # noqa: PTH208
        except OSError:
            continue
        if rel.parts:
            _real_folder(root, inside / rel)
        for name in names:
            source = real / rel / name
            try:
                info = source.lstat()
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                queue.append(rel / name)
            elif stat.S_ISREG(info.st_mode) and info.st_size <= COPY_FILE_MAX:
                if copied + info.st_size > COPY_TOTAL_MAX:
                    continue
                copied += _copy_new(source, inside / rel / name, info.st_mode)
    return copied


def _copy_new(source: pathlib.Path, target: pathlib.Path, mode: int) -> int:
    """``source`` to a new file ``target`` (nothing when something has that name: never
    through a link); the bytes copied."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(target, flags, stat.S_IMODE(mode) & 0o700 or 0o600)
    except OSError:
        return 0
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)
        return out.tell()


def _real_folder(root: pathlib.Path, folder: pathlib.Path) -> None:
    """``folder`` (inside ``root``) and each folder between, as real folders."""
    path = root
    for part in folder.relative_to(root).parts:
        path = path / part
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            path.unlink()
        path.mkdir(mode=0o700, exist_ok=True)


def _mount_point(root: pathlib.Path, path: pathlib.Path, *, directory: bool) -> None:
    _real_folder(root, path.parent)
    if path.is_symlink() or (path.exists() and path.is_dir() != directory):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    if directory:
        path.mkdir(mode=0o700, exist_ok=True)
    elif not path.exists():
        path.touch(mode=0o600)


class Mount(t.NamedTuple):
    option: str
    """``--ro-bind``, ``--bind``, ``--tmpfs``, ``--dir`` or ``--symlink``."""
    source: str
    dest: str


class HomeEntry(t.NamedTuple):
    real: pathlib.Path
    """``<the user's home>/<name>``."""
    inside: pathlib.Path
    """``<the box's home>/<name>``."""
    directory: bool
    """Both are private copies, never bound: a file copied at each start, a folder's files
    when the box has none of their names yet (each built-in CLI writes its folder: sessions,
    logs, helper links, refreshed credentials), so the worker's changes never reach yours."""


def home_entries(names: t.Iterable[str], home: pathlib.Path, box: Box) -> list[HomeEntry]:
    """The real ``home/<name>`` files and folders that exist (links are skipped)."""
    entries = []
    for name in names:
        real = home / name
        if real.exists() and not real.is_symlink():
            entries.append(HomeEntry(real, box.home / name, real.is_dir()))
    return entries


def code_roots() -> list[pathlib.Path]:
    """What swarm's own Python and code need (bound read-only): the interpreter's prefixes and
    the folders the ``runner``, ``agentmail`` and ``protocol`` packages are in."""
    import agentmail
    import protocol
    import runner

    roots = [pathlib.Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)]
    roots.append(pathlib.Path(sys.executable).resolve().parent)
    for module in (runner, agentmail, protocol):
        roots.append(pathlib.Path(module.__file__ or ".").resolve().parent.parent)
    return list(dict.fromkeys(r for r in roots if not _under_system(r)))


def program_roots(program: str, path: str) -> list[pathlib.Path]:
    """What an agent CLI installed outside the system needs (bound read-only): the prefix of
    the PATH folder it is found in (an npm ``--prefix`` or a virtual environment: its ``bin``
    and ``lib``), the folder its link resolves to, and for a script the prefix of the
    interpreter its ``#!`` line names (a venv's python links to the base installation)."""
    found = shutil.which(program, path=path)
    if found is None:
        return []
    exe = pathlib.Path(found)
    roots = [exe.parent.parent, exe.resolve().parent]
    try:
        with exe.open("rb") as fh:
            first = fh.readline(512)
    except OSError:
        first = b""
    if first.startswith(b"#!"):
        words = first[2:].decode(errors="replace").split()
        if words:
            interpreter = pathlib.Path(words[0]).resolve()
            roots += [interpreter.parent.parent]
    return list(dict.fromkeys(r for r in roots if not _under_system(r) and r != pathlib.Path("/")))


def _under_system(path: pathlib.Path) -> bool:
    return any(path == pathlib.Path(top) or pathlib.Path(top) in path.parents for top in SYSTEM_RO)


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    """What one sandboxed worker sees (paths outside; each is bound at the same path). The
    run's gates get one too, without mail (``inbox`` and the rest None: nothing bound)."""

    bwrap: str
    box: Box
    clone: pathlib.Path
    """The checkout, read-write (the gates': the integration worktree)."""
    objects: pathlib.Path
    """The repository's object store the clone borrows from (read-only; the gates': the
    repository's whole git folder, which a worktree needs)."""
    shim_dir: pathlib.Path
    home: t.Sequence[HomeEntry]
    hidden: t.Sequence[pathlib.Path]
    """Folders never visible, even inside a bound code folder (the repository, the worktree
    root, the real home, the swarm home)."""
    inbox: pathlib.Path | None = None
    key_file: pathlib.Path | None = None
    plan: pathlib.Path | None = None
    brief: pathlib.Path | None = None
    network: bool = True
    code: t.Sequence[pathlib.Path] = ()
    uid: int | None = None
    """The user the agent runs as inside (a user namespace maps it to the real one)."""

    @property
    def tmpdir(self) -> str:
        """The sandbox's ``TMPDIR``: its own ``/tmp``, or a folder in it that does not hold
        its home (:data:`OWN_TMP`)."""
        inside = pathlib.PurePosixPath(TMP) in pathlib.PurePosixPath(self.box.home).parents
        return OWN_TMP if inside else TMP

    def mounts(self) -> list[Mount]:
        mounts = [Mount("--ro-bind", p, p) for p in SYSTEM_RO if _is_real_dir(p)]
        links = [p for p in SYSTEM_RO if pathlib.Path(p).is_symlink()]
        mounts += [Mount("--symlink", str(pathlib.Path(p).readlink()), p) for p in links]
        mounts += [Mount("--ro-bind", p, p) for p in DNS_RO if _is_real_dir(p)]
        mounts += [Mount("--tmpfs", "", TMP)]
        if self.tmpdir != TMP:
            mounts += [Mount("--dir", "", self.tmpdir)]
        mounts += [Mount("--ro-bind", str(p), str(p)) for p in self.code]
        mounts += [
            Mount("--ro-bind", str(self.objects), str(self.objects)),
            Mount("--ro-bind", str(self.shim_dir), str(self.shim_dir)),
            Mount("--bind", str(self.clone), str(self.clone)),
            Mount("--bind", str(self.box.root), str(self.box.root)),
        ]
        mail = (
            (self.brief, self.brief),
            # read-only: the mayor delivers into it, so a link planted there would be followed
            (self.inbox, self.box.inbox),
            (self.key_file, self.box.key),
            (self.plan, self.box.plan),
        )
        mounts += [Mount("--ro-bind", str(src), str(dst)) for src, dst in mail if src]
        hidden = [p for p in self.hidden if not _under_system(p) and p != pathlib.Path("/")]
        mounts += [Mount("--tmpfs", "", str(p)) for p in hidden]
        # bwrap mounts in order: a folder first, then what is bound inside it
        return sorted(mounts, key=lambda m: len(pathlib.PurePosixPath(m.dest).parts))

    def argv(self, command: t.Sequence[str]) -> tuple[str, ...]:
        """``bwrap <options> -- <command>``, started in the clone."""
        args = [self.bwrap, "--die-with-parent", "--new-session", "--unshare-all"]
        if self.network:
            args.append("--share-net")
        if self.uid is not None:
            args += ["--unshare-user", "--uid", str(self.uid), "--gid", str(self.uid)]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for mount in self.mounts():
            if mount.option in ("--tmpfs", "--dir"):
                args += [mount.option, mount.dest]
            else:
                args += [mount.option, mount.source, mount.dest]
        home = str(self.box.home)
        env = {
            "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/.config",
            "XDG_CACHE_HOME": f"{home}/.cache",
            "XDG_DATA_HOME": f"{home}/.local/share",
            "XDG_STATE_HOME": f"{home}/.local/state",
            "TMPDIR": self.tmpdir,
            "SWARM_HOME": str(self.box.swarm_home),
            "SWARM_KEY_FILE": str(self.box.key),
            "SWARM_SANDBOX": "1",
        }
        for name, value in env.items():
            args += ["--setenv", name, value]
        args += ["--chdir", str(self.clone), "--", *command]
        return tuple(args)


def _is_real_dir(path: str) -> bool:
    return pathlib.Path(path).is_dir() and not pathlib.Path(path).is_symlink()
