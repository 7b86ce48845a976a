"""Headless Chromium for the picture tests: a screenshot (PNG) and the DOM after parsing.

``scripts/test`` installs Debian's ``chromium`` (``scripts/sysdeps``); where it is missing or
cannot start, :func:`require_chromium` skips the test with the reason. The flags keep Chromium
off the network (no background connections, no component updates) and out of the user's
profile (a fresh ``--user-data-dir`` per call).
"""

from __future__ import annotations

import functools
import pathlib
import shutil
import subprocess
import tempfile
import typing as t
import zlib

import pytest

FLAGS: t.Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)
NAMES: t.Final = ("chromium", "chromium-browser", "google-chrome")


def _chromium(binary: str, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="swarm-chromium-") as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@functools.cache
def _probe() -> tuple[str | None, str]:
    binary = next((found for name in NAMES if (found := shutil.which(name))), None)
    if binary is None:
        return None, "chromium is not installed (scripts/sysdeps chromium:chromium)"
    try:
        result = _chromium(binary, "--dump-dom", "data:text/html,<p id=probe>ok</p>")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"chromium cannot run here: {exc}"
    if 'id="probe"' not in result.stdout:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"chromium cannot run here (exit {result.returncode}): {last}"
    return binary, ""


def require_chromium() -> str:
    binary, reason = _probe()
    if binary is None:
        pytest.skip(reason)
    return binary


def screenshot(page: pathlib.Path, png: pathlib.Path, width: int, height: int) -> None:
    binary = require_chromium()
    result = _chromium(
        binary, f"--window-size={width},{height}", f"--screenshot={png}", page.as_uri()
    )
    assert png.is_file(), result.stderr[-2000:]


def dump_dom(page: pathlib.Path) -> str:
    result = _chromium(require_chromium(), "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Image(t.NamedTuple):
    width: int
    height: int
    rows: list[bytes]
    channels: int

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        row = self.rows[y]
        i = x * self.channels
        return row[i], row[i + 1], row[i + 2]


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def read_png(path: pathlib.Path) -> Image:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if chunk == b"IHDR":
            header = body
        elif chunk == b"IDAT":
            idat += body
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, colour, interlace = header[8], header[9], header[12]
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 3 if colour == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                line[i] = (line[i] + _paeth(a, b, c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return Image(width, height, rows, channels)


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def close(a: tuple[int, int, int], b: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))
