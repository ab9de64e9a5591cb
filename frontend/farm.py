"""The front's path to the worker farm: one ZeroMQ socket per gunicorn thread, created
lazily in that thread (so always after gunicorn forked), reused for its lifetime.

Each gunicorn worker also watches the supervisor (its grandparent): once that process is
gone no answer can come, so every waiting call is released with FarmUnreachable (a 503)
at once instead of holding its client until the request timeout.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from protocol.client import FarmClient
from protocol.wire import Message

log = logging.getLogger("mtai.front")
WATCH_SECONDS = 0.2


class Farm:
    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.gone = threading.Event()  # set once the supervisor has ended
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
        return client.call(task, options, arrays, timeout or self.timeout, gone=self.gone)

    def watch_supervisor(self) -> None:
        """In a gunicorn worker: set ``gone`` when the supervisor that started our master
        ends (the master is reparented then)."""
        master = os.getppid()
        supervisor = parent_of(master)

        def watch() -> None:
            while parent_of(master) == supervisor and not self.gone.wait(WATCH_SECONDS):
                pass
            if not self.gone.is_set():
                log.error("the supervisor (pid %s) is gone; answering 503 and leaving",
                          supervisor)
                self.gone.set()

        threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid`` from /proc, or None once ``pid`` has ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
