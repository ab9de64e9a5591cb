"""One farm round trip for an HTTP handler, with failures sorted for the client's format:
`Overloaded` (retry later: 503) versus `JobFailed` (this input or task cannot be served)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from flask import current_app

from protocol.client import FarmUnreachable
from protocol.wire import BAD_INPUT, BUSY, ERROR, Message, ProtocolError


class Overloaded(RuntimeError):
    """Queue full, deadline passed while queued, or no broker: the client should retry."""


class JobFailed(RuntimeError):
    """The farm answered this job with an error (code from protocol.wire)."""

    # The client's input or a missing model: retrying the same request cannot help.
    FINAL = frozenset({"bad_input", "unavailable", "bad_request"})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def run_job(task: str, options: dict[str, Any] | None = None,
            arrays: Sequence[np.ndarray] = ()) -> Message:
    try:
        reply = current_app.extensions["farm"].call(task, options or {}, arrays)
    except FarmUnreachable as exc:
        raise Overloaded(str(exc)) from None
    except ProtocolError as exc:  # e.g. an option too large for the wire's header limit
        raise JobFailed(BAD_INPUT, f"request cannot be sent: {exc}") from None
    if reply.kind != ERROR:
        return reply
    error = reply.error or {}
    if error.get("code") == BUSY:
        raise Overloaded(f"server busy: {error.get('message')}")
    raise JobFailed(error.get("code", "internal"), error.get("message", "the job failed"))
