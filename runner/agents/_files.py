"""Small file helpers the adapters share: atomic JSON/text writes into the agent's HOME."""

from __future__ import annotations

import json
import os
import pathlib
import tempfile
import typing as t


def read_json(path: pathlib.Path) -> dict[str, t.Any]:
    """A JSON object file; {} when missing or unreadable (the CLI would start afresh too)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def write_atomic(path: pathlib.Path, text: str, *, mode: int = 0o600) -> None:
    """Temp file in the same folder, fsync, rename: a CLI reading it never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        pathlib.Path(tmp).chmod(mode)
        pathlib.Path(tmp).replace(path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: pathlib.Path, value: t.Any) -> None:
    write_atomic(path, json.dumps(value, indent=2) + "\n")


def within(path: pathlib.Path, folder: pathlib.Path) -> bool:
    """``path`` is ``folder`` or lies below it (both taken as given, not resolved)."""
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True
