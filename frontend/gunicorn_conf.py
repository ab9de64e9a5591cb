"""gunicorn settings for the HTTP front, from the values `mtai serve` validated and handed down
(protocol/settings.py); nothing here reads the environment itself.

The worker class is gevent: every connection is a greenlet, so a client that sends its request
slowly, or stops half-way, holds a few kB of memory instead of one of a handful of threads (with
gthread, 40 such sockets left `/check` unanswered; BENCHMARKS.md has the measurement). Headers
must arrive within READ_TIMEOUT (gunicorn's keep-alive timeout bounds the wait for a request's
head under gevent, also between the requests of a kept-alive connection); the body gets as long
again (frontend/limits.py). Image decoding runs in real threads (frontend/imaging.py) and the
farm is reached through one green ZeroMQ socket per process (frontend/farm.py).

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
worker_class = "frontend.gworker.FrontWorker"  # gevent, leaving gracefully
workers = _settings.http_workers
# Connections one process serves at once; past this it stops accepting and the kernel queues
# them in the listening socket's backlog. Slow ones end by READ_TIMEOUT.
worker_connections = 1000
keepalive = _settings.read_timeout
timeout = 120
graceful_timeout = 30
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
