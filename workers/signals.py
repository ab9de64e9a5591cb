"""Signals for a supervisor's loop (`mtai serve` and `mtai node`), taken as gunicorn's arbiter
takes them: a handler only queues the signal, and the byte the kernel writes to the wake-up
pipe (``signal.set_wakeup_fd``) ends the loop's wait at once, so the loop acts on the signal
in its next turn, never inside a handler.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGHUP)


class SignalQueue:
    """Installs the handlers; the loop waits on ``wake_r`` and then calls `drain` and `take`."""

    def __init__(self, signums: tuple[int, ...] = HANDLED_SIGNALS) -> None:
        self.pending: list[int] = []
        self.wake_r, wake_w = os.pipe()
        for fd in (self.wake_r, wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_w)
        for signum in signums:
            signal.signal(signum, self._queue)

    def _queue(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def drain(self) -> None:
        """Empty the wake-up pipe: one byte per signal, the queue holds the signals."""
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def take(self) -> Iterator[int]:
        """The queued signals, oldest first, each once."""
        while self.pending:
            yield self.pending.pop(0)
