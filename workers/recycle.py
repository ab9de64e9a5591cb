"""Rolling recycle: replace workers one at a time without failing a request.

Used by /restart_v2, the idle timer (SERVER_RESTART_TIME) and the memory watermark. For each
slot: stop giving the worker jobs, let its current job finish, SIGTERM it, wait for the
replacement to say READY, then take the next slot. The other workers keep serving and the
queue holds the rest, so a recycle under load costs latency, never a request.
"""

from __future__ import annotations

import logging
import signal
import time
from collections import deque
from dataclasses import dataclass, field

from workers.broker import Broker
from workers.children import Child
from workers.identity import worker_identity

log = logging.getLogger("mtai.recycle")

STOP_GRACE = 10.0  # seconds a drained worker gets to exit on SIGTERM before SIGKILL
READY_WAIT = 180.0  # seconds a replacement may take to load its models


@dataclass
class Recycler:
    pending: deque[int] = field(default_factory=deque)
    slot: int | None = None
    phase: str = ""
    since: float = 0.0
    old_pid: int | None = None
    completed: int = 0

    def request(self, slots: list[int], reason: str) -> list[int]:
        """Queue slots for recycling; returns those newly queued."""
        added = [s for s in slots if s != self.slot and s not in self.pending]
        self.pending.extend(added)
        if added:
            log.info("recycling workers %s (%s)", added, reason)
        return added

    @property
    def busy(self) -> bool:
        return self.slot is not None or bool(self.pending)

    def step(self, workers: list[Child], broker: Broker) -> None:
        """Advance the current slot by at most one phase; call every loop turn."""
        if self.slot is None:
            if not self.pending:
                return
            self._begin(self.pending.popleft(), workers, broker)
            if self.slot is None:
                return
        child = workers[self.slot]
        now = time.monotonic()
        if self.phase == "drain":
            if child.pid != self.old_pid:  # it died while draining: the respawn is ours
                self._enter("start")
            elif worker_identity(self.slot, self.old_pid) not in broker.dispatch.running:
                child.recycling = True
                child.signal(signal.SIGTERM)
                self._enter("stop")
        elif self.phase == "stop":
            if child.pid != self.old_pid:
                self._enter("start")
            elif now - self.since > STOP_GRACE:
                child.signal(signal.SIGKILL)
        elif self.phase == "start":
            fresh = worker_identity(self.slot, child.pid) if child.pid else None
            ready = fresh in broker.workers
            if ready or now - self.since > READY_WAIT:
                if not ready:
                    log.error("worker %d not ready %.0fs after recycle; moving on", self.slot,
                              READY_WAIT)
                self.completed += 1
                self.slot = None

    def _begin(self, slot: int, workers: list[Child], broker: Broker) -> None:
        self.old_pid = workers[slot].pid
        if self.old_pid is None:  # not running (backing off after a crash): it starts fresh
            log.info("worker %d is not running; nothing to recycle", slot)
            return
        self.slot = slot
        broker.dispatch.pause(worker_identity(slot, self.old_pid))
        self._enter("drain")

    def _enter(self, phase: str) -> None:
        self.phase, self.since = phase, time.monotonic()
