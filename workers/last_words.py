"""A worker's last words: the error that ended it, left for the supervisor to show.

A worker in a crash loop exits with "code 1" a few times a minute; the reason is in its
traceback in the journal. So that the status page and `mtai doctor` can say which error it was,
a worker that dies of an exception writes one line into the runtime directory (private to the
service user) and the supervisor takes it when it reaps the process. The file is named by the
worker's slot and pid, so `mtai serve` and `mtai node` sharing one runtime directory never take
each other's. Paths in the message are shortened to their file name: the status page needs no
key to read.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

MAX_CHARS = 300
_PATH = re.compile(r"(?<![\w.])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def _file(runtime: Path, slot: int, pid: int) -> Path:
    return Path(runtime) / f"worker-{slot}.{pid}.last-error"


def without_paths(text: str) -> str:
    """``text`` with every absolute path reduced to its file name (``…/name``)."""
    return _PATH.sub(r"…/\1", text)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, paths reduced to file names, at most MAX_CHARS."""
    text = without_paths(" ".join(f"{type(exc).__name__}: {exc}".split()))
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def leave(runtime: Path, slot: int, exc: BaseException) -> None:
    """In the dying worker; never raises (the original error matters more)."""
    with contextlib.suppress(OSError):
        _file(runtime, slot, os.getpid()).write_text(describe(exc) + "\n")


def take(runtime: Path, slot: int, pid: int) -> str | None:
    """In the supervisor, on reaping worker ``pid``: its last words, once."""
    path = _file(runtime, slot, pid)
    try:
        text = path.read_text(errors="replace").strip()[:MAX_CHARS]
    except OSError:
        return None
    with contextlib.suppress(OSError):
        path.unlink()
    return text or None
