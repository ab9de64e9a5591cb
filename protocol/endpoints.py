"""Where the broker's two sockets live. ipc:// in a runtime directory by default; a tcp://
address works the same, for remote workers on a second board later."""

from __future__ import annotations

import os
from pathlib import Path


def runtime_dir(port: int) -> Path:
    """`RUNTIME_DIR` (or systemd's `RUNTIME_DIRECTORY`); else a per-port folder in /tmp or
    `XDG_RUNTIME_DIR`, so two instances on one machine never share sockets."""
    explicit = os.environ.get("RUNTIME_DIR") or os.environ.get("RUNTIME_DIRECTORY")
    if explicit:
        return Path(explicit.split(":")[0])
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    return Path(base) / f"mtai-{os.getuid()}-{port}"


def front_endpoint(directory: Path) -> str:
    """Where HTTP handlers send jobs."""
    return f"ipc://{directory / 'front'}"


def back_endpoint(directory: Path) -> str:
    """Where workers fetch jobs."""
    return f"ipc://{directory / 'back'}"
