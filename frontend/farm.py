"""The front's path to the worker farm: one ZeroMQ DEALER per gunicorn process, shared by every
request, with each reply handed to the request that waits for its id.

The front runs gunicorn's gevent worker: every connection is a greenlet of one OS thread, so
the socket is pyzmq's green flavour (it yields to other greenlets instead of blocking them) and
a single receiving greenlet routes replies by request id; a socket per request would mean a
connect per request and hundreds of sockets under load. The socket is created on first use,
so always after gunicorn forked.

A request whose HTTP client has gone while its job waits in the broker's queue is cancelled
there (protocol.wire.CANCEL): a photo nobody waits for is not worth an NPU slot.

Each gunicorn worker also watches the supervisor (its grandparent): once that process is gone
no answer can come, so every waiting call is released with FarmUnreachable (a 503) at once
instead of holding its client until the request timeout.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import gevent
import numpy as np
import zmq.green as zmq
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from protocol.client import REPLY_GRACE_SECONDS, FarmUnreachable
from protocol.wire import CANCEL, REQUEST, Message, ProtocolError, decode, encode

log = logging.getLogger("mtai.front")
WATCH_SECONDS = 0.2
CHECK_SECONDS = 0.2  # how often a waiting request looks at its client and at `gone`


class ClientGone(Exception):
    """The HTTP client closed its connection while its job waited: nobody to answer."""


class Farm:
    def __init__(self, endpoint: str, timeout: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.gone = Event()  # set once the supervisor has ended
        self._socket: zmq.Socket | None = None
        self._send_lock = Semaphore()
        self._waiting: dict[str, AsyncResult] = {}

    def call(
        self,
        task: str,
        options: dict[str, Any] | None = None,
        arrays: Sequence[np.ndarray] = (),
        timeout: float | None = None,
        *,
        deadline: float | None = None,
        client_gone: Callable[[], bool] | None = None,
    ) -> Message:
        """One job; its reply or error message. ``deadline`` (wall clock) defaults to now plus
        ``timeout``. Raises FarmUnreachable when no answer comes, ProtocolError when the
        request cannot be encoded, ClientGone when ``client_gone()`` turned true meanwhile."""
        deadline = deadline if deadline is not None else time.time() + (timeout or self.timeout)
        request = Message(REQUEST, uuid.uuid4().hex, task=task, options=options or {},
                          deadline=deadline, arrays=list(arrays))
        frames = encode(request)
        if self.gone.is_set():
            raise FarmUnreachable("the worker farm's supervisor is gone")
        budget = max(0.0, deadline - time.time())
        waiter = self._waiting[request.id] = AsyncResult()
        try:
            self._send(frames)
            give_up = time.monotonic() + budget + REPLY_GRACE_SECONDS
            while not waiter.wait(min(CHECK_SECONDS, max(0.0, give_up - time.monotonic()))):
                if self.gone.is_set():
                    raise FarmUnreachable("the worker farm's supervisor is gone")
                if client_gone is not None and client_gone():
                    self._send(encode(Message(REQUEST, uuid.uuid4().hex, task=CANCEL,
                                              options={"id": request.id})))
                    raise ClientGone(f"client left while {task} {request.id} waited")
                if time.monotonic() >= give_up:
                    raise FarmUnreachable(f"no answer from the worker farm within {budget:.0f}s")
            return waiter.get()
        finally:
            self._waiting.pop(request.id, None)

    def _send(self, frames: list) -> None:
        """Whole messages only: two greenlets must not interleave their frames."""
        with self._send_lock:
            if self._socket is None:
                self._socket = zmq.Context.instance().socket(zmq.DEALER)
                self._socket.setsockopt(zmq.LINGER, 0)
                self._socket.connect(self.endpoint)
                gevent.spawn(self._receive, self._socket)
            self._socket.send_multipart(frames, copy=False)

    def _receive(self, socket: zmq.Socket) -> None:
        """Hand each reply to the call waiting for its id; late or stray replies are dropped."""
        while True:
            frames = socket.recv_multipart(copy=False)
            try:
                reply = decode([f.buffer for f in frames])
            except ProtocolError as exc:
                log.warning("garbled reply from the broker dropped: %s", exc)
                continue
            waiter = self._waiting.get(reply.id)
            if waiter is not None:
                waiter.set(reply)

    def watch_supervisor(self) -> None:
        """In a gunicorn worker: set ``gone`` when the supervisor that started our master
        ends. The master itself may die and be replaced (its workers then finish what they
        hold, frontend/gworker.py): that is not the supervisor's end."""
        supervisor = parent_of(os.getppid())
        born = started_at(supervisor) if supervisor is not None else None

        def watch() -> None:
            while born is not None and started_at(supervisor) == born \
                    and not self.gone.wait(WATCH_SECONDS):
                pass
            if not self.gone.is_set():
                log.error("the supervisor (pid %s) is gone; answering 503 and leaving",
                          supervisor)
                self.gone.set()

        gevent.spawn(watch)


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/<pid>/stat after the command name, or None once ``pid`` ended."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    """The parent pid of ``pid``, or None once ``pid`` has ended."""
    fields = _stat(pid)
    return int(fields[1]) if fields and len(fields) > 1 else None


def started_at(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None once it has ended or is a zombie:
    with the pid it names one process, even if the pid is reused."""
    fields = _stat(pid)
    if not fields or len(fields) < 20 or fields[0] == b"Z":
        return None
    return int(fields[19])
