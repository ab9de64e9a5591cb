"""`mtai doctor` on a node: can this machine reach its broker, and does the broker accept it?

Connects as `mtai node`'s workers do (tcp://, CURVE with this machine's key pair), watches the
handshake through a ZeroMQ monitor, then sends one heartbeat: a broker that does not know the
sender answers "unregistered" in its own protocol version, which gives the version check and
a round trip. Nothing registers, so the broker never hands this probe a job.
"""

from __future__ import annotations

import os
import secrets
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from models.doctor import OK, PROBLEM, Finding
from protocol.settings import Settings
from protocol.wire import (
    ERROR,
    HEARTBEAT,
    UNREGISTERED,
    VERSION,
    Message,
    ProtocolError,
    decode_header,
    encode,
    peek_version,
)
from workers.keys import KeyProblem, add_command, load_keypair
from workers.link import HANDSHAKE_FAILED

PROBE_SECONDS = 5.0


def broker_findings(settings: Settings, timeout: float = PROBE_SECONDS) -> list[Finding]:
    """Findings about the broker this node is configured for (NODE_CONNECT)."""
    address, server_key = settings.node_connect, settings.node_server_key
    if not address or not server_key:
        missing = "NODE_CONNECT" if not address else "NODE_SERVER_KEY"
        return [Finding(PROBLEM, "broker", f"{missing} is not set (see `mtai keys add` on the "
                        "main board for both values)")]
    try:
        public, secret = load_keypair(settings.node_keys)
    except KeyProblem as exc:
        return [Finding(PROBLEM, "node key", str(exc))]
    key = public.decode("ascii")
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.IDENTITY, f"d{os.getpid()}.{secrets.token_hex(3)}".encode())
        socket.curve_serverkey, socket.curve_publickey, socket.curve_secretkey = (
            server_key.encode(), public, secret)
        monitor = socket.get_monitor_socket()
        socket.connect(address)
        started = time.monotonic()
        outcome = _handshake(monitor, started + timeout)
        if outcome != "ok":
            return [_handshake_finding(outcome, address, key, timeout)]
        sent = time.monotonic()
        socket.send_multipart(encode(Message(HEARTBEAT, "doctor")))
        if not socket.poll(int(timeout * 1000)):
            return [Finding(PROBLEM, "broker", f"{address} accepted this node's key but did not "
                            f"answer within {timeout:.0f} s")]
        rtt = time.monotonic() - sent
        frames = socket.recv_multipart()
        return [_answer_finding(frames[0], address, rtt)]
    finally:
        socket.disable_monitor()
        socket.close(linger=0)
        context.destroy(linger=0)


def _handshake(monitor: zmq.Socket, deadline: float) -> str:
    """'ok', 'refused', 'bad-server-key', 'connected' (no handshake) or 'unreachable'."""
    connected = False
    while (left := deadline - time.monotonic()) > 0:
        if not monitor.poll(int(left * 1000) + 1):
            break
        event = recv_monitor_message(monitor)["event"]
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            return "ok"
        if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
            return "refused"
        if event & HANDSHAKE_FAILED:
            return "bad-server-key"
        connected |= event == zmq.EVENT_CONNECTED
    return "connected" if connected else "unreachable"


def _handshake_finding(outcome: str, address: str, key: str, timeout: float) -> Finding:
    if outcome == "refused":
        return Finding(PROBLEM, "node key", f"{address} refuses this node's key {key}; on the "
                       f"main board run: {add_command(key)}")
    if outcome == "bad-server-key":
        return Finding(PROBLEM, "server key", f"the CURVE handshake with {address} failed: "
                       "NODE_SERVER_KEY (--server-key) is not the main board's key; `mtai keys "
                       "init` there prints it")
    if outcome == "connected":
        return Finding(PROBLEM, "broker", f"{address} takes TCP connections but no CURVE "
                       f"handshake finished in {timeout:.0f} s: is it mtai's NODE_LISTEN port?")
    return Finding(PROBLEM, "broker", f"cannot reach {address} within {timeout:.0f} s: is "
                   "`mtai serve` running there with NODE_LISTEN set, and the port open in its "
                   "firewall?")


def _answer_finding(header_frame: bytes, address: str, rtt: float) -> Finding:
    try:
        header = decode_header(header_frame)
    except ProtocolError:
        version = peek_version(header_frame)
        return Finding(PROBLEM, "protocol", f"{address} speaks protocol version {version!r}, "
                       f"this node {VERSION}: install the same mtai release on both machines")
    error = header.get("error") or {}
    if header["kind"] == ERROR and error.get("code") == UNREGISTERED:
        return Finding(OK, "broker", f"{address}: reachable, this node's key accepted (CURVE), "
                       f"protocol version {VERSION}, round trip {rtt * 1000:.1f} ms")
    return Finding(PROBLEM, "broker", f"{address} answered a heartbeat with {header['kind']} "
                   f"{error}: is it an mtai broker?")
