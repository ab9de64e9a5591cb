"""One farm round trip for an HTTP handler, with failures sorted for the client's format:
`Overloaded` (retry later: 503, with the Retry-After the cause calls for) versus `JobFailed`
(this input or task cannot be served).

A job's deadline runs from when its request arrived (REQUEST_TIMEOUT), not from when the handler
got round to the farm: time spent receiving the upload and waiting for a decode thread counts.
A request whose deadline has passed, or whose client has already gone, is not sent at all, and
one whose client leaves while its job waits in the queue is cancelled there.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from flask import current_app, request

from frontend.farm import ClientGone
from frontend.limits import ARRIVED
from protocol.client import FarmUnreachable
from protocol.wire import BAD_INPUT, BUSY, ERROR, Message, ProtocolError


class Overloaded(RuntimeError):
    """Queue full, deadline passed, or no broker: the client should retry after
    ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobFailed(RuntimeError):
    """The farm answered this job with an error (code from protocol.wire)."""

    # The client's input or a missing model: retrying the same request cannot help.
    FINAL = frozenset({"bad_input", "unavailable", "bad_request"})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def run_job(task: str, options: dict[str, Any] | None = None,
            arrays: Sequence[np.ndarray] = ()) -> Message:
    deadline = request_deadline()
    if deadline <= time.time():
        raise Overloaded("the request's deadline passed before it reached a worker")
    gone = client_gone_check()
    if gone is not None and gone():
        raise ClientGone(f"client left before {task} was sent")
    farm = current_app.extensions["farm"]
    try:
        reply = farm.call(task, options or {}, arrays, deadline=deadline, client_gone=gone)
    except FarmUnreachable as exc:
        raise Overloaded(str(exc), exc.retry_after) from None
    except ProtocolError as exc:  # e.g. an option too large for the wire's header limit
        raise JobFailed(BAD_INPUT, f"request cannot be sent: {exc}") from None
    if reply.kind != ERROR:
        return reply
    error = reply.error or {}
    if error.get("code") == BUSY:
        raise Overloaded(f"server busy: {error.get('message')}")
    raise JobFailed(error.get("code", "internal"), error.get("message", "the job failed"))


def request_deadline() -> float:
    """Wall-clock time by which this request must be answered (REQUEST_TIMEOUT from arrival)."""
    arrived = request.environ.get(ARRIVED, time.time())
    return arrived + current_app.config["REQUEST_TIMEOUT"]


def client_gone_check() -> Callable[[], bool] | None:
    """A cheap test of whether this request's client has closed its connection, or None when
    the server gives no socket (Flask's test client)."""
    sock = request.environ.get("gunicorn.socket")
    return None if sock is None else (lambda: connection_closed(sock))


def connection_closed(sock: socket.socket) -> bool:
    """True once the peer has closed (or reset) the connection. Looks without reading: bytes
    already sent (a pipelined next request) mean the client is still there."""
    timeout = sock.gettimeout()
    sock.settimeout(0.0)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        sock.settimeout(timeout)
