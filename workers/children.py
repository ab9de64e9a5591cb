"""Child processes the supervisor keeps alive: workers and the gunicorn front.

Each is started with fork+exec (subprocess), never a bare fork, so no native runtime state
is ever duplicated. A child that keeps dying is restarted with exponential backoff and
reported as a crash loop instead of being spun.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass

log = logging.getLogger("mtai.supervisor")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 60.0
STABLE_SECONDS = 60.0  # a child that lived this long is healthy again
CRASH_LOOP_AFTER = 5


@dataclass
class Child:
    """One supervised process slot; `argv` and `env` are reused on every respawn."""

    name: str
    argv: list[str]
    env: dict[str, str]
    group: bool = False  # own process group: its orphans die with it (gunicorn's workers)
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    recycles: int = 0
    next_start: float = 0.0
    kill_at: float | None = None
    stopping: bool = False
    recycling: bool = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def crash_loop(self) -> bool:
        return self.failures >= CRASH_LOOP_AFTER

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=self.group)
        self.started_at = time.monotonic()
        self.kill_at = None
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def reap(self) -> int | None:
        """Return the exit status once the process has ended, and schedule its restart."""
        if self.process is None or self.process.poll() is None:
            return None
        status = self.process.returncode
        if self.group:
            # A killed gunicorn master leaves workers that keep the port; they go with it.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None
        if self.stopping:
            log.info("%s stopped (%s)", self.name, describe_status(status))
            return status
        if self.recycling:
            self.recycling = False
            self.recycles += 1
            self.next_start = time.monotonic()
            log.info("%s recycled (%s)", self.name, describe_status(status))
            return status
        lived = time.monotonic() - self.started_at
        self.failures = 0 if lived >= STABLE_SECONDS else self.failures + 1
        delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, self.failures - 1))
        self.next_start = time.monotonic() + (0 if self.failures == 0 else delay)
        self.restarts += 1
        level = logging.ERROR if self.crash_loop else logging.WARNING
        log.log(level, "%s exited with %s after %.1fs; restart in %.1fs%s", self.name,
                describe_status(status), lived, self.next_start - time.monotonic(),
                " (crash loop)" if self.crash_loop else "")
        return status

    def due(self) -> bool:
        return self.process is None and not self.stopping and time.monotonic() >= self.next_start

    def terminate(self, grace: float) -> None:
        """SIGTERM now, SIGKILL after `grace` seconds if it is still there (see escalate)."""
        self.signal(signal.SIGTERM)
        if self.kill_at is None:
            self.kill_at = time.monotonic() + grace

    def escalate(self) -> None:
        if self.kill_at is not None and time.monotonic() >= self.kill_at and self.alive():
            log.error("%s ignored SIGTERM; sending SIGKILL", self.name)
            self.signal(signal.SIGKILL)
            self.kill_at = None

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)


def describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:  # real-time signals have no name
            return f"signal {-status}"
    return f"code {status}"
