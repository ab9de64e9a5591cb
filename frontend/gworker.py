"""The front's gunicorn worker class: gunicorn's gevent worker (a greenlet per connection), with
a shutdown that fits a supervised front.

gunicorn's own gevent worker looks at its state once a second, exits on the spot when it sees
a new parent (dropping what it holds), and on SIGTERM waits for idle keep-alive connections as
long as they stay idle. Here:

- a worker whose master was killed stops accepting at once and finishes the requests it holds,
  while the supervisor starts a new master on the same listening socket (no request fails);
- on SIGTERM a worker is gone within a fraction of a second of its last request, so the port is
  free at once for a supervisor started again (idle keep-alive connections are closed, as
  gthread does after a short linger);
- requests still running at the graceful timeout are cut off, as gunicorn does.
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any

import gevent
from gevent.pool import Pool
from gevent.server import StreamServer
from gunicorn.workers.base import Worker
from gunicorn.workers.ggevent import GeventWorker

TICK = 0.1  # seconds between looks at the worker's state
HEARTBEAT = 1.0  # seconds between notes to the master that this worker lives
LINGER = 0.5  # a stopping worker keeps idle connections this long for a request in flight


class FrontWorker(GeventWorker):
    def init_process(self) -> None:
        self.active = 0  # requests being handled now (idle keep-alive connections excluded)
        super().init_process()

    def notify(self) -> None:
        Worker.notify(self)  # the heartbeat; GeventWorker.notify would sys.exit() instead
        if self.alive and self.ppid != os.getppid():
            self.log.info("master %s is gone; finishing the requests held, then leaving",
                          self.ppid)
            self.alive = False

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        self.active += 1
        try:
            return super().handle_request(listener_name, req, sock, addr)
        finally:
            self.active -= 1

    def run(self) -> None:
        servers = []
        for listener in self.sockets:
            listener.setblocking(1)
            server = StreamServer(listener, handle=partial(self.handle, listener),
                                  spawn=Pool(self.worker_connections))
            if self.cfg.workers > 1:
                server.max_accept = 1  # leave connections to the other, less busy workers
            server.start()
            servers.append(server)
        beat = 0.0
        while self.alive:
            if time.monotonic() >= beat:
                self.notify()
                beat = time.monotonic() + HEARTBEAT
            gevent.sleep(TICK)
        for server in servers:
            server.close()  # accept no more
        self._drain(servers, time.monotonic() + self.cfg.graceful_timeout)
        for server in servers:
            server.stop(timeout=1)  # ends idle keep-alive connections, and any overrun

    def _drain(self, servers: list[StreamServer], deadline: float) -> None:
        """Until the requests in hand are answered (or the graceful timeout), then, while
        kept-alive connections remain, a short linger for a request on its way on one."""
        while self.active and time.monotonic() < deadline:
            self.notify()
            gevent.sleep(TICK)
        if self.active:
            self.log.warning("graceful timeout: %d requests cut off", self.active)
            return
        linger = time.monotonic() + LINGER
        while any(s.pool.free_count() < s.pool.size for s in servers) and not self.active \
                and time.monotonic() < linger:
            gevent.sleep(TICK / 5)
        if self.active:  # a request did come: answer it too
            self._drain(servers, deadline)
