"""The HTTP port, held by the supervisor and lent to every gunicorn it starts.

gunicorn could bind the port itself, but then a front that dies (or is killed) takes the port
with it: connections are refused until its replacement has bound again, and an orphaned front
keeps the port from a new supervisor. Held here, the listening socket outlives every front:
while one front is replaced, the kernel queues new connections in the socket's backlog and
the next front accepts them (gunicorn binds an inherited descriptor with ``fd://N``).
"""

from __future__ import annotations

import errno
import logging
import socket
import time

log = logging.getLogger("mtai.supervisor")

BACKLOG = 1024  # connections the kernel queues while no front accepts (capped by somaxconn)
BIND_WAIT = 15.0  # seconds to wait for a port still held by a front that is leaving


class PortUnavailable(OSError):
    """The port stayed in use (another service, or a front that does not leave)."""


def open_listener(port: int, wait: float = BIND_WAIT) -> socket.socket:
    """A listening TCP socket on ``port``: one IPv6 socket taking IPv4 too where the kernel
    has IPv6, else IPv4 only. Inheritable, so children can be handed its descriptor."""
    deadline = time.monotonic() + wait
    while True:
        try:
            sock = _bind(port)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                raise PortUnavailable(exc.errno, f"cannot listen on port {port}: "
                                      f"{exc.strerror}; set HTTP_PORT or stop what uses it"
                                      ) from exc
            log.warning("port %d in use; retrying until %.0f s have passed", port, wait)
            time.sleep(0.5)
            continue
        sock.listen(BACKLOG)
        sock.set_inheritable(True)
        return sock


def _bind(port: int) -> socket.socket:
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:  # no IPv6 in this kernel
        return _bound(socket.socket(socket.AF_INET, socket.SOCK_STREAM), ("0.0.0.0", port))
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    return _bound(sock, ("::", port))


def _bound(sock: socket.socket, address: tuple[str, int]) -> socket.socket:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock
