"""Child processes the supervisor keeps alive: workers and the gunicorn front.

Each is started with fork+exec (subprocess), never a bare fork, so no native runtime state
is ever duplicated. A child that keeps dying is restarted with exponential backoff and
reported as a crash loop instead of being spun. Every child gets SIGTERM from the kernel the
moment the supervisor dies (PR_SET_PDEATHSIG), however it dies: nothing is left holding the
port or an NPU core for a new supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from protocol.settings import Settings

log = logging.getLogger("mtai.supervisor")

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 60.0
STABLE_SECONDS = 60.0  # a child that lived this long is healthy again
CRASH_LOOP_AFTER = 5
GROUP_DRAIN = 30.0  # seconds the workers of a dead gunicorn master get to finish requests
PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised process slot; `argv` and `env` are reused on every respawn."""

    name: str
    argv: list[str]
    env: dict[str, str]
    group: bool = False  # own process group: its orphans die with it (gunicorn's workers)
    pass_fds: tuple[int, ...] = ()  # descriptors the child inherits (the listening socket)
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    failures: int = 0
    restarts: int = 0
    recycles: int = 0
    next_start: float = 0.0
    kill_at: float | None = None
    stopping: bool = False
    recycling: bool = False
    last_exit: str = ""  # how the last process ended, for the status page
    # process groups left by a dead leader, and when they get SIGKILL
    orphans: dict[int, float] = field(default_factory=dict)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def crash_loop(self) -> bool:
        return self.failures >= CRASH_LOOP_AFTER

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, start_new_session=self.group,
                                        pass_fds=self.pass_fds, preexec_fn=_die_with_parent)
        self.started_at = time.monotonic()
        self.kill_at = None
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def reap(self) -> int | None:
        """Return the exit status once the process has ended, and schedule its restart."""
        if self.process is None or self.process.poll() is None:
            return None
        status = self.process.returncode
        if self.group:
            # A dead gunicorn master leaves its workers: they stop accepting, finish the
            # requests they hold (SIGTERM is gunicorn's graceful stop) and get SIGKILL if
            # they are still there after GROUP_DRAIN.
            self.orphans[self.process.pid] = time.monotonic() + GROUP_DRAIN
            _signal_group(self.process.pid, signal.SIGTERM)
        self.process = None
        self.last_exit = describe_status(status)
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
        now = time.monotonic()
        if self.kill_at is not None and now >= self.kill_at and self.alive():
            log.error("%s ignored SIGTERM; sending SIGKILL", self.name)
            self.signal(signal.SIGKILL)
            self.kill_at = None
        for group, kill_at in list(self.orphans.items()):
            if not _signal_group(group, 0):
                del self.orphans[group]
            elif now >= kill_at or self.stopping:
                _signal_group(group, signal.SIGKILL)
                del self.orphans[group]

    def signal(self, signum: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signum)


def _signal_group(group: int, signum: int) -> bool:
    """Signal a process group; False once it has no member left."""
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal: treat the group as gone
        return False
    return True


_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux). preexec_fn is
    unsafe with threads in the parent; the supervisor is single-threaded."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def child_env(settings: Settings) -> dict[str, str]:
    """Our environment minus systemd's notify variables (only the supervisor may say READY:
    gunicorn would announce itself the moment it listens, before any worker is up), plus
    the validated settings, which children read instead of the environment."""
    private = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    base = {k: v for k, v in os.environ.items() if k not in private}
    return settings.child_env(base)


def describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"signal {signal.Signals(-status).name}"
        except ValueError:  # real-time signals have no name
            return f"signal {-status}"
    return f"code {status}"
