"""Worker identities on the broker sockets: `w<slot>.<pid>` for this board's workers, unique
per process, so a late message from a dead predecessor is never taken for its replacement's;
`n<slot>.<pid>.<token>` for a remote node's, whose pids may repeat across machines."""

from __future__ import annotations

import secrets

NODE_PREFIX = b"n"  # what the broker's node door requires of a name (workers/nodes.py)


def worker_identity(slot: int, pid: int | None) -> bytes:
    return f"w{slot}.{pid}".encode()


def node_worker_identity(slot: int, pid: int) -> bytes:
    """A remote node's worker: a random token keeps two machines' slot and pid apart."""
    return NODE_PREFIX + f"{slot}.{pid}.{secrets.token_hex(3)}".encode()


def parse_worker_identity(identity: bytes) -> tuple[int, int | None]:
    """(slot, pid), or (-1, None) for an identity we did not make."""
    try:
        slot, pid = identity.decode().removeprefix("w").split(".")
        return int(slot), int(pid)
    except (UnicodeDecodeError, ValueError):
        return -1, None
