"""Worker identities on the broker socket: `w<slot>.<pid>`, unique per process, so a late
message from a dead predecessor is never taken for its replacement's."""

from __future__ import annotations


def worker_identity(slot: int, pid: int | None) -> bytes:
    return f"w{slot}.{pid}".encode()


def parse_worker_identity(identity: bytes) -> tuple[int, int | None]:
    """(slot, pid), or (-1, None) for an identity we did not make."""
    try:
        slot, pid = identity.decode().removeprefix("w").split(".")
        return int(slot), int(pid)
    except (UnicodeDecodeError, ValueError):
        return -1, None
