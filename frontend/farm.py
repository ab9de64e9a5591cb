"""The front's path to the worker farm: one ZeroMQ socket per gunicorn thread, created
lazily in that thread (so always after gunicorn forked), reused for its lifetime."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from protocol.client import FarmClient
from protocol.wire import Message


class Farm:
    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._local = threading.local()

    def call(
        self,
        task: str,
        options: dict[str, Any] | None = None,
        arrays: Sequence[np.ndarray] = (),
        timeout: float | None = None,
    ) -> Message:
        """Raises protocol.client.FarmUnreachable when the broker does not answer."""
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = FarmClient(self.endpoint)
        return client.call(task, options, arrays, timeout or self.timeout)
