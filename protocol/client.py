"""A blocking request/reply client for the farm, one per thread (ZeroMQ sockets are not
thread-safe): `mtai doctor`, the tests and the benchmarks use it; the HTTP front has its own
green client that shares one socket between requests (frontend/farm.py). The broker owns
retries; this client never resends, it only waits for the reply that carries its request id
and drops stale ones left by an earlier timeout."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import zmq

from protocol.wire import REQUEST, Message, ProtocolError, decode, encode

# Extra wait past the job deadline: the broker answers TIMEOUT itself at the deadline,
# so this only matters when the broker is gone.
REPLY_GRACE_SECONDS = 2.0


class FarmUnreachable(RuntimeError):
    """No reply from the broker in time: it is down or restarting. ``retry_after`` is the
    seconds a client is told to wait before it tries again (HTTP Retry-After)."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FarmClient:
    """DEALER socket to the broker's front ROUTER."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None) -> None:
        self._socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)

    def call(
        self,
        task: str,
        options: dict[str, Any] | None = None,
        arrays: Sequence[np.ndarray] = (),
        timeout: float = 30.0,
    ) -> Message:
        """Send one job and wait for its REPLY or ERROR message."""
        request = Message(
            REQUEST,
            uuid.uuid4().hex,
            task=task,
            options=options or {},
            deadline=time.time() + timeout,
            arrays=list(arrays),
        )
        self._socket.send_multipart(encode(request), copy=False)
        give_up = time.monotonic() + timeout + REPLY_GRACE_SECONDS
        while (remaining := give_up - time.monotonic()) > 0:
            if not self._socket.poll(int(remaining * 1000) + 1):
                break
            frames = self._socket.recv_multipart(copy=False)
            try:
                reply = decode([f.buffer for f in frames])
            except ProtocolError:
                continue  # a garbled reply cannot be ours to trust; keep waiting
            if reply.id == request.id:
                return reply
        raise FarmUnreachable(f"no answer from the worker farm within {timeout:.0f}s")

    def close(self) -> None:
        self._socket.close(linger=0)
