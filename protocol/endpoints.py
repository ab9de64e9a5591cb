"""Where the broker's two sockets live: ipc:// in the runtime directory (RUNTIME_DIR, see
protocol/settings.py), private to one instance, so two instances never share sockets."""

from __future__ import annotations

from pathlib import Path


def front_endpoint(directory: Path) -> str:
    """Where HTTP handlers send jobs."""
    return f"ipc://{directory / 'front'}"


def back_endpoint(directory: Path) -> str:
    """Where workers fetch jobs."""
    return f"ipc://{directory / 'back'}"
