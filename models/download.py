"""Stream one URL to a file with progress and sha256, on the standard library alone.

Model files are hundreds of MB: they go to disk in chunks (never whole into memory), land under a
temporary name and are renamed only once complete, so an interrupted download leaves nothing
that looks like a model. ``file://`` URLs work too, which is the manual route's way in.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from models.manifest import atomic_writer

CHUNK = 1 << 20
TIMEOUT = 30.0  # seconds without a byte before giving up
USER_AGENT = "mtai-models-fetch"

ByteProgress = Callable[[int, "int | None"], None]  # (bytes so far, total or None)


class DownloadError(RuntimeError):
    """The server answered but the file could not be had (HTTP error, cut short)."""


class Unreachable(DownloadError):
    """No connection at all: offline, DNS failure, refused, or a missing local file."""


def download(
    url: str, dest: Path, progress: ByteProgress | None = None, timeout: float = TIMEOUT
) -> str:
    """Fetch ``url`` into ``dest`` (created or replaced whole); return its sha256."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unreachable(f"cannot reach {url} ({reason})") from exc
    with response, atomic_writer(dest) as out:
        digest, _ = _stream(url, response, out, progress)
    return digest


def _stream(
    url: str, response: Any, out: BinaryIO, progress: ByteProgress | None
) -> tuple[str, int]:
    """Copy the body in chunks; ``response`` is urllib's (HTTP or file), both file-like."""
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    digest, done = hashlib.sha256(), 0
    if progress:
        progress(0, total)
    while True:
        try:
            block = response.read(CHUNK)
        except OSError as exc:  # reset, timeout mid-body
            raise DownloadError(f"{url}: interrupted after {done} bytes ({exc})") from exc
        if not block:
            break
        out.write(block)
        digest.update(block)
        done += len(block)
        if progress:
            progress(done, total)
    if total is not None and done != total:
        raise DownloadError(f"{url}: got {done} of {total} bytes")
    return digest.hexdigest(), done


def progress_lines(name: str, progress: Callable[[str], None], step: int = 10) -> ByteProgress:
    """Report every ``step`` percent (every 32 MB when the size is unknown)."""
    last = [-1]

    def report(done: int, total: int | None) -> None:
        if total:
            mark = done * 100 // total // step
            text = f"{name}: {done / 1e6:.1f} of {total / 1e6:.1f} MB ({done * 100 // total}%)"
        else:
            mark, text = done >> 25, f"{name}: {done / 1e6:.1f} MB"
        if mark != last[0]:
            last[0] = mark
            progress(text)

    return report
