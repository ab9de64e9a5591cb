"""The broker's door for remote worker nodes (`NODE_LISTEN`): a ROUTER with CURVE, and what
the status shows of every node.

CURVE (ZeroMQ's own encryption and authentication) runs on this socket; which client keys may
connect is decided over ZAP by pyzmq's ``zmq.auth.Authenticator``, asked through a callback
that looks the key up among the authorised ones (workers/keys.py, reread when they change, so
`mtai keys add` needs no restart). A key that is not authorised never completes the handshake,
so it can send nothing, let alone be handed a job; the log says which key knocked, from where.

The authenticator is driven from the supervisor's own poller (its ZAP socket is one more socket
in the event loop) rather than by pyzmq's ThreadAuthenticator: the supervisor starts children
with a ``preexec_fn`` (PDEATHSIG), which is unsafe in a process that runs threads, and the
check is one set lookup, so answering it in the loop blocks nothing and needs no lock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from zmq.auth import Authenticator

from workers.identity import NODE_PREFIX
from workers.keys import AuthorisedKeys, add_command, ensure_keypair, key_id, node_command
from workers.link import Throttle

log = logging.getLogger("mtai.nodes")

ZAP_DOMAIN = "mtai-nodes"


@dataclass(frozen=True)
class Peer:
    """Where a remote worker's messages come from, as CURVE and TCP tell it."""

    key: str  # Z85 public key the handshake authenticated
    name: str  # its name among the authorised keys
    address: str  # IP address of the connection

    @property
    def key_id(self) -> str:
        return key_id(self.key)


class NodeGate:
    """The nodes' ROUTER socket and its authenticator."""

    def __init__(self, context: zmq.Context, listen: str, key_dir: Path) -> None:
        self.listen = listen
        self.keys = AuthorisedKeys(key_dir)
        self.keys.reload()
        public, secret = ensure_keypair(key_dir)
        self.public_key = public.decode("ascii")
        self.auth = Authenticator(context, log=logging.getLogger("mtai.zap"))
        self.auth.start()
        self.auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self)
        self.loop = asyncio.new_event_loop()  # runs the authenticator's coroutine to its end
        self.knocks: dict[str, int] = {}  # refused key -> attempts since the last log line
        self.throttle = Throttle()
        self.address = ""  # of the ZAP request being answered
        self.socket = context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.socket.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting worker takes its name back
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.curve_server = True
        self.socket.curve_publickey, self.socket.curve_secretkey = public, secret
        self.socket.zap_domain = ZAP_DOMAIN.encode()
        try:
            self.socket.bind(listen)
        except zmq.ZMQError as exc:
            self.close()
            raise OSError(f"cannot listen for nodes on {listen}: {exc}; set NODE_LISTEN to a "
                          "free address or leave it empty") from None
        log.info("taking worker nodes on %s (CURVE, %d key(s) authorised); on a node run: %s",
                 listen, len(self.keys.names), node_command(listen, self.public_key))

    @property
    def zap_socket(self) -> zmq.Socket:
        return self.auth.zap_socket

    def handle_zap(self) -> None:
        """Answer one ZAP request (one per CURVE handshake); the caller's loop drains the
        socket, one guarded call per message, as for the broker's other sockets."""
        request = self.zap_socket.recv_multipart()
        # RFC 27: version, request id, domain, address, identity, mechanism, credentials
        self.address = request[3].decode(errors="replace") if len(request) > 3 else "?"
        self.loop.run_until_complete(self.auth.handle_zap_message(request))

    def callback(self, domain: str, key: bytes) -> bool:
        """zmq.auth's credentials provider: may the client with this key connect?"""
        self.keys.reload()
        text = key.decode("ascii", "replace")
        if text in self.keys:
            return True
        self.knocks[text] = self.knocks.get(text, 0) + 1
        if self.throttle(text):
            log.warning("refused a node with key %s from %s: not authorised (%d attempt(s)); to "
                        "let it join run here: %s", text, self.address, self.knocks.pop(text),
                        add_command(text))
        return False

    def peer(self, frame: zmq.Frame) -> Peer | None:
        """The authenticated key and address of a message's sender."""
        try:
            key, address = frame.get("User-Id"), frame.get("Peer-Address")
        except zmq.ZMQError:
            return None
        if not key:
            return None
        return Peer(key, self.keys.name(key), address or "?")

    def authorised(self, key: str) -> bool:
        return key in self.keys

    def admit(self, worker: bytes, frame: zmq.Frame) -> tuple[Peer | None, str | None]:
        """The sender of a READY, and why it may not register (None: it may)."""
        peer = self.peer(frame)
        if peer is None:
            return None, "its messages carry no CURVE key"
        if not self.authorised(peer.key):
            return peer, f"its key {peer.key} is no longer authorised (mtai keys add)"
        if not worker.startswith(NODE_PREFIX):
            return peer, "its name is not a node worker's"
        return peer, None

    def close(self) -> None:
        self.socket.close(linger=0)
        self.auth.stop()
        self.loop.close()


@dataclass
class NodeRecord:
    """One node (one key) as the broker saw it: kept after its workers leave, so the status
    says when a node went away and what it did."""

    peer: Peer
    hostname: str = ""
    last_seen: float = field(default_factory=time.monotonic)
    jobs: int = 0
    errors: int = 0
    rtt: float | None = None


def node_status(records: Iterable[NodeRecord], workers: Iterable[Any], running: set[bytes],
                describe: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """The status' ``nodes`` list: one entry per node key, connected or gone, with its
    workers as ``describe`` shows one (``worker_list``)."""
    now = time.monotonic()
    by_key: dict[str, list[Any]] = {}
    for worker in workers:
        if worker.peer is not None:
            by_key.setdefault(worker.peer.key, []).append(worker)
    found = []
    for record in records:
        mine = by_key.get(record.peer.key, [])
        rtts = sorted(w.rtt for w in mine if w.rtt is not None)
        tasks = sorted({t for w in mine for t in w.offer})
        found.append({
            "key_id": record.peer.key_id,
            "name": record.peer.name,
            "address": record.peer.address,
            "hostname": record.hostname,
            "connected": bool(mine),
            "workers": len(mine),
            "busy": sum(w.identity in running for w in mine),
            "tasks": tasks,
            "refused_tasks": sorted({t for w in mine for t in w.excluded}),
            "jobs": record.jobs,
            "errors": record.errors,
            "last_heartbeat_seconds": round(now - record.last_seen, 1),
            "rtt_ms": round(rtts[len(rtts) // 2] * 1000, 3) if rtts else None,
            "worker_list": [{"name": w.name, **describe(w)} for w in mine],
        })
    return found
