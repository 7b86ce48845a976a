"""agentmail.fs: the one module of durable file primitives (atomic writes, appends, locks)."""

from __future__ import annotations

import multiprocessing
import os
import pathlib
import stat
import typing as t

import pytest

from agentmail import fs

FORK = multiprocessing.get_context("fork")


def test_write_atomic_replaces_the_whole_file(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    fs.write_atomic(path, b"one\n")
    fs.write_atomic(path, b"two\n")
    assert path.read_bytes() == b"two\n"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


class ModeCase(t.NamedTuple):
    test_id: str
    write: t.Callable[[pathlib.Path], None]
    mode: int


MODE_CASES = [
    ModeCase("bytes-private", lambda p: fs.write_atomic(p, b"x"), 0o600),
    ModeCase("text-public", lambda p: fs.write_text_atomic(p, "x"), 0o644),
    ModeCase("text-private", lambda p: fs.write_text_atomic(p, "x", mode=fs.PRIVATE), 0o600),
]


@pytest.mark.parametrize("case", MODE_CASES, ids=[c.test_id for c in MODE_CASES])
def test_write_modes(tmp_path: pathlib.Path, case: ModeCase) -> None:
    old = os.umask(0o022)
    try:
        case.write(tmp_path / "f")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == case.mode


def test_write_atomic_leaves_the_old_file_on_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "dir-in-the-way"
    path.mkdir()
    (path / "child").write_text("x")
    with pytest.raises(OSError):
        fs.write_atomic(path, b"new")  # os.replace cannot replace a non-empty directory
    assert path.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir-in-the-way"]


def test_fsync_dir_of_a_file_is_an_error(tmp_path: pathlib.Path) -> None:
    fs.fsync_dir(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        fs.fsync_dir(tmp_path / "f")


def _append_many(path: pathlib.Path, tag: str, count: int) -> None:
    for index in range(count):
        fs.append_line(path, f"{tag}-{index}-" + "x" * 2000)


def test_concurrent_appends_never_interleave(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "log.jsonl"
    procs = [FORK.Process(target=_append_many, args=(path, f"p{n}", 50)) for n in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert all(line.endswith("x" * 2000) and line.count("-") == 2 for line in lines)


def test_exclusive_lock_admits_one_holder_and_the_probe_sees_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.lock"
    assert not fs.lock_held(path)
    assert not path.exists()  # the probe creates nothing
    with fs.exclusive_lock(path) as first:
        assert first
        assert path.read_text() == f"{os.getpid()}\n"
        assert fs.lock_held(path)
        with fs.exclusive_lock(path) as second:
            assert not second
    assert not fs.lock_held(path)
    with fs.exclusive_lock(path) as again:
        assert again


def test_shared_locks_coexist_and_keep_out_an_exclusive_one(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "box.lock"
    with fs.shared_lock(path), fs.shared_lock(path):
        with fs.exclusive_lock(path) as exclusive:
            assert not exclusive
        assert not fs.lock_held(path)  # the probe asks for "held exclusively"
    with fs.exclusive_lock(path) as exclusive:
        assert exclusive
