"""gunicorn settings for the HTTP front, from the environment (see README.md)."""

from __future__ import annotations

import os
import socket


def _dual_stack() -> bool:
    """One IPv6 socket also takes IPv4 (v4-mapped) where the kernel has IPv6 at all."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _int(name: str, default: int) -> int:
    """An integer setting; unset or empty means the default."""
    raw = os.environ.get(name, "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a whole number") from None


_port = _int("HTTP_PORT", 8060)  # HTTP_PORT: listen port, IPv4 and IPv6
bind = [f"[::]:{_port}"] if _dual_stack() else [f"0.0.0.0:{_port}"]
worker_class = "gthread"
workers = max(1, _int("HTTP_WORKERS", 2))  # HTTP_WORKERS: front processes (decoding)
# HTTP_THREADS: requests per front process. Every waiting request holds a thread, so by
# default there are enough for the whole farm queue (QUEUE_SIZE) plus the busy workers:
# overload then reaches the broker's bounded queue and gets a quick 503, instead of piling
# up in gunicorn where no deadline applies.
_farm_capacity = _int("QUEUE_SIZE", 64) + _int("WORKERS", 3) + 2
threads = _int("HTTP_THREADS", 0) or max(8, -(-_farm_capacity // workers))
timeout = 120
graceful_timeout = 30
keepalive = 5
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
errorlog = "-"
proc_name = "mtai-front"
control_socket_disable = True  # gunicorn 25+ would otherwise write a socket into $HOME


def when_ready(server: object) -> None:
    """Leave with the supervisor: gunicorn runs in its own process group (so its workers
    die with it), which also means nothing else stops it if the supervisor is killed."""
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
