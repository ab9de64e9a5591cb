"""A worker's connection to its broker: a DEALER over ipc:// (this board) or over tcp:// with
CURVE (a remote node), registration, heartbeats both ways and reconnection.

The zguide's Paranoid Pirate, in its ping-pong form: the broker pings every worker each
HEARTBEAT_INTERVAL and the worker answers at once with the ping's id (so the broker measures the
round trip), also while a job runs, since jobs run in a thread of their own (workers/worker.py).
A broker silent for HEARTBEAT_TIMEOUT is taken for dead: the socket is closed and, after a
back-off that doubles up to RECONNECT_MAX, a new one connects and registers again. The broker
drops a worker silent for as long and retries its job elsewhere. As in Majordomo, a broker that
does not know a worker (it restarted) tells it so, and the worker says READY again.

Over tcp the socket is watched through a ZeroMQ monitor, so a refused key or a wrong server
key is said in the log in words, with the command that fixes it, instead of a silent retry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from protocol.wire import (
    ABANDONED,
    ERROR,
    HEARTBEAT,
    READY,
    REFUSED,
    REQUEST,
    UNREGISTERED,
    VERSION,
    Frame,
    Message,
    ProtocolError,
    decode_header,
    encode,
    peek_version,
)
from workers.keys import add_command

log = logging.getLogger("mtai.worker")

HEARTBEAT_INTERVAL = 1.0  # seconds between the broker's pings
HEARTBEAT_TIMEOUT = 10.0  # seconds of silence after which either side counts the other gone
RECONNECT_FIRST = 1.0
RECONNECT_MAX = 32.0
REFUSED_RETRY = 60.0  # a refused worker asks again this much later (an upgrade may fix it)
LOG_EVERY = 60.0  # the same connection problem is logged at most this often
MONITORED = (zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
             | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
             | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_DISCONNECTED)
HANDSHAKE_FAILED = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL


class Abandoned(Exception):
    """The broker gave up on this worker's job (past its deadline): the worker must restart."""


@dataclass(frozen=True)
class Curve:
    """CURVE credentials of a node worker (Z85): the broker's public key and our pair."""

    server_key: bytes
    public: bytes
    secret: bytes


@dataclass
class Throttle:
    """At most one log line per topic every LOG_EVERY seconds."""

    last: dict[str, float] = field(default_factory=dict)

    def __call__(self, topic: str) -> bool:
        now = time.monotonic()
        if now - self.last.get(topic, -LOG_EVERY) < LOG_EVERY:
            return False
        self.last[topic] = now
        return True


class Link:
    """The worker's end; the caller polls ``poller`` and calls `handle` and `tick`."""

    def __init__(self, endpoint: str, identity: bytes, info: dict[str, Any],
                 curve: Curve | None = None, extra_fds: tuple[int, ...] = (),
                 context: zmq.Context | None = None) -> None:
        self.endpoint = endpoint
        self.identity = identity
        self.info = info
        self.curve = curve
        self.extra_fds = extra_fds
        self.context = context or zmq.Context.instance()
        self.socket: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.poller = zmq.Poller()
        self.heard = 0.0  # monotonic time of the broker's last message
        self.registered = False  # READY sent on this connection and not revoked since
        self.handshakes = 0  # CURVE handshakes on this socket (a second one = a reconnection)
        self.reopen_at: float | None = None
        self.backoff = RECONNECT_FIRST
        self.throttle = Throttle()

    # -- connection -------------------------------------------------------------------------
    def open(self) -> None:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.IDENTITY, self.identity)
        socket.setsockopt(zmq.LINGER, 2000)
        socket.setsockopt(zmq.RECONNECT_IVL, 500)
        socket.setsockopt(zmq.RECONNECT_IVL_MAX, 5000)
        if self.curve is not None:
            socket.curve_serverkey = self.curve.server_key
            socket.curve_publickey = self.curve.public
            socket.curve_secretkey = self.curve.secret
            self.monitor = socket.get_monitor_socket(MONITORED)
        socket.connect(self.endpoint)
        self.socket, self.handshakes, self.registered = socket, 0, False
        self.heard, self.reopen_at = time.monotonic(), None
        self.poller = zmq.Poller()
        for item in (socket, self.monitor, *self.extra_fds):
            if item is not None:
                self.poller.register(item, zmq.POLLIN)

    def close(self, linger: int = 0) -> None:
        if self.monitor is not None:
            self.socket.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        if self.socket is not None:
            self.socket.close(linger=linger)
            self.socket = None
        self.poller = zmq.Poller()
        for fd in self.extra_fds:
            self.poller.register(fd, zmq.POLLIN)

    def reconnect_later(self, delay: float, why: str, level: int = logging.WARNING) -> None:
        """Close now, open again in ``delay`` seconds."""
        if self.throttle(why.split(":")[0]):
            log.log(level, "%s; reconnecting to %s in %.0f s", why, self.endpoint, delay)
        self.close()
        self.reopen_at = time.monotonic() + delay

    # -- messages ---------------------------------------------------------------------------
    def send(self, frames: list[Frame]) -> None:
        if self.socket is not None:  # a reply for a broker we left is dropped: it retried the job
            self.socket.send_multipart(frames, copy=False)

    def handle(self, events: dict[Any, int]) -> list | None:
        """Read what arrived; returns the frames of a job to run, if one came."""
        if self.monitor is not None and self.monitor in events:
            self._monitor_events()
        if self.socket is None or self.socket not in events:
            return None
        job = None
        while self.socket is not None and self.socket.get(zmq.EVENTS) & zmq.POLLIN:
            frames = self.socket.recv_multipart(copy=False)
            request = self._message(frames)
            if request is not None:
                job = request
                break  # one job at a time: the next messages wait in the socket
        return job

    def tick(self, idle: bool) -> None:
        """Register when needed, notice a silent broker; call once per loop turn."""
        now = time.monotonic()
        if self.socket is None:
            if self.reopen_at is not None and now >= self.reopen_at and idle:
                self.open()
            return
        if not self.registered and idle:
            self.send(encode(Message(READY, self.identity.decode(), result=self.info)))
            self.registered = True
        silent = now - self.heard
        if silent > HEARTBEAT_TIMEOUT and idle:
            self.reconnect_later(self.backoff, f"no word from the broker for {silent:.0f} s")
            self.backoff = min(RECONNECT_MAX, self.backoff * 2)

    def _message(self, frames: list) -> list | None:
        try:
            header = decode_header(frames[0].buffer)
        except ProtocolError as exc:
            version = peek_version(frames[0].buffer)
            if version is not None and version != VERSION:
                self.reconnect_later(REFUSED_RETRY, f"refused: the broker at {self.endpoint} "
                                     f"speaks protocol version {version!r}, this worker speaks "
                                     f"{VERSION}; run the same mtai release on both machines",
                                     logging.ERROR)
            else:
                log.warning("malformed message from the broker dropped: %s", exc)
            return None
        self.heard = time.monotonic()
        self.backoff = RECONNECT_FIRST
        kind = header["kind"]
        if kind == HEARTBEAT:  # a ping: answer with its id, the broker times the round trip
            self.send(encode(Message(HEARTBEAT, header["id"])))
        elif kind == ERROR and header["id"] == self.identity.decode():
            self._about_us(header.get("error") or {})
        elif kind == REQUEST:
            return frames
        return None

    def _about_us(self, error: dict[str, Any]) -> None:
        code, message = error.get("code"), error.get("message", "")
        if code == UNREGISTERED:
            log.info("the broker does not know this worker (it restarted?); registering again")
            self.registered = False
        elif code == REFUSED:
            self.reconnect_later(REFUSED_RETRY, f"refused: {message}", logging.ERROR)
        elif code == ABANDONED:
            raise Abandoned(message)

    def _monitor_events(self) -> None:
        while self.monitor is not None and self.monitor.poll(0):
            event = recv_monitor_message(self.monitor)
            kind, value = event["event"], event["value"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self.handshakes += 1
                if self.handshakes == 1:
                    log.info("connected to the broker at %s (CURVE)", self.endpoint)
                else:  # reconnected: the broker may be a new one that never heard of us
                    self.registered = False
            elif kind == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                key = self.curve.public.decode() if self.curve else "?"
                self.reconnect_later(self.backoff, f"refused: the broker at {self.endpoint} "
                                     f"does not authorise this node's key {key} (status {value})."
                                     f" On the main board run: {add_command(key)}", logging.ERROR)
                self.backoff = min(RECONNECT_MAX, self.backoff * 2)
            elif kind & HANDSHAKE_FAILED:
                if self.throttle("handshake"):
                    log.error("the CURVE handshake with %s failed: is NODE_SERVER_KEY "
                              "(--server-key) the key `mtai keys init` printed on the main "
                              "board?", self.endpoint)
            elif kind == zmq.EVENT_CONNECT_RETRIED and self.throttle("unreachable"):
                log.warning("cannot reach the broker at %s yet: is NODE_LISTEN set there, and "
                            "its port open in the firewall? (retrying)", self.endpoint)
            elif kind == zmq.EVENT_DISCONNECTED and self.handshakes:
                log.warning("lost the connection to the broker at %s; ZeroMQ reconnects",
                            self.endpoint)
