"""What the front will not wait for or hold, and answers that say which limit was hit.

- Read deadlines (READ_TIMEOUT): gunicorn's gevent worker closes a connection whose request
  headers have not arrived within its keep-alive timeout, which gunicorn_conf sets to
  READ_TIMEOUT; `BodyDeadline` gives the body the same time from the moment the headers were
  read. A body that misses it is answered 408 and the connection is closed (a client that
  trickles a byte now and then, or announces more bytes than it sends, holds nothing for long).
- Size limits: MAX_UPLOAD_MB for the body, and Werkzeug's per-form limits (`max_form_parts`,
  `max_form_memory_size`); a 413 names the one that was hit.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterable
from typing import Any, Callable

import gevent
from flask import Response, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestTimeout
from werkzeug.wsgi import ClosingIterator

ARRIVED = "mtai.arrived"  # environ key: wall-clock time the request's headers were read
CLOSE_AFTER = "mtai.close_after"  # environ key: end the connection once answered
MAX_JSON_BYTES = 1024 * 1024  # a CLIP text query is at most 10000 characters


class BodyTimedOut(RequestTimeout):
    """The request body did not arrive within READ_TIMEOUT."""


class DeadlineInput:
    """``wsgi.input`` whose reads all end by one deadline: a read still waiting then raises
    BodyTimedOut (under gevent the wait is interrupted; elsewhere it is checked per read)."""

    def __init__(self, stream: Any, seconds: float) -> None:
        self._stream = stream
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def _timed(self, method: Callable[..., Any], *args: Any) -> Any:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise BodyTimedOut(self._message())
        timer = gevent.Timeout(remaining)
        timer.start()
        try:
            return method(*args)
        except gevent.Timeout as expired:
            if expired is not timer:
                raise
            raise BodyTimedOut(self._message()) from None
        finally:
            timer.close()

    def _message(self) -> str:
        return f"request body not received within READ_TIMEOUT ({self._seconds:g} s)"

    def read(self, size: int = -1) -> bytes:
        return self._timed(self._stream.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._timed(self._stream.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._timed(self._stream.readlines, hint)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class BodyDeadline:
    """WSGI middleware: stamps the request's arrival and bounds the time its body may take."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        environ.setdefault(ARRIVED, time.time())
        environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], self.seconds)
        return ClosingIterator(self.app(environ, start_response),
                               lambda: _close_if_asked(environ))


def _close_if_asked(environ: dict[str, Any]) -> None:
    """After the answer went out: shut the reading side, so gunicorn finds the connection at
    its end instead of draining a body that is not coming, and closes it."""
    sock = environ.get("gunicorn.socket")
    if environ.get(CLOSE_AFTER) and sock is not None:
        with contextlib.suppress(OSError):  # already gone
            sock.shutdown(socket.SHUT_RD)


def refusal(status: int, message: str) -> tuple[Response, int]:
    """A limit's answer in the caller's format: Immich reads `detail`, MT-Photos `msg`."""
    if request.path.startswith("/predict"):
        return jsonify(detail=message), status
    return jsonify(result=[], msg=message), status


def body_timed_out(exc: BodyTimedOut) -> tuple[Response, int]:
    request.environ[CLOSE_AFTER] = True
    return refusal(408, exc.description)


def too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
    return refusal(413, f"upload too large: {too_large_reason(exc)}")


def too_large_reason(exc: RequestEntityTooLarge) -> str:
    """Which limit Werkzeug applied. It raises the same bare exception for each, so the
    place it was raised tells them apart (tests/test_front_limits.py pins each one)."""
    raised_in = _innermost_function(exc)
    if raised_in == "next_event":
        return f"more than {request.max_form_parts} form parts (Werkzeug's max_form_parts)"
    if raised_in in ("receive_data", "parse"):
        return (f"a form field other than a file is over {_size(request.max_form_memory_size)} "
                "(Werkzeug's max_form_memory_size)")
    limit = request.max_content_length
    if limit == current_app.config["MAX_CONTENT_LENGTH"]:
        return f"the body is over {_size(limit)} (MAX_UPLOAD_MB)"
    return f"the body is over {_size(limit)}, the most this endpoint takes"


def _innermost_function(exc: BaseException) -> str:
    traceback = exc.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_code.co_name if traceback is not None else ""


def _size(count: int | None) -> str:
    if count is None:
        return "no limit"
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB"
    return f"{count / 1000:g} kB"
