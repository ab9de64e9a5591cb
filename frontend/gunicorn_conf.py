"""gunicorn settings for the HTTP front, from the values `mtai serve` validated and handed down
(protocol/settings.py); nothing here reads the environment itself.

gunicorn leaves with the supervisor: the kernel sends its master SIGTERM (gunicorn's graceful
stop) when the supervisor dies (workers/children.py), and its workers release what they hold
with a 503 (frontend/farm.py)."""

from __future__ import annotations

import os
from typing import Any

from protocol.client import FarmUnreachable
from protocol.settings import Settings

_settings = Settings.inherited()
# No `bind` here: the supervisor holds the port and passes `--bind fd://N` (workers/listener.py).
worker_class = "gthread"
workers = _settings.http_workers
threads = _settings.front_threads
timeout = 120
graceful_timeout = 30
keepalive = 5
loglevel = _settings.log_level.lower()
errorlog = "-"
proc_name = "mtai-front"
control_socket_disable = True  # gunicorn 25+ would otherwise write a socket into $HOME


def post_worker_init(worker: Any) -> None:
    """In each gunicorn worker, once the app is loaded: watch the supervisor (its death
    releases every waiting request with a 503), and tell it this front is serving, which
    READY=1 waits for."""
    farm = worker.wsgi.extensions["farm"]
    farm.watch_supervisor()
    try:
        farm.call("front_ready", {"master": os.getppid(), "pid": os.getpid()}, timeout=5)
    except FarmUnreachable as exc:  # the supervisor will start another front if it must
        worker.log.warning("could not report ready to the supervisor: %s", exc)
