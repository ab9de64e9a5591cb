"""The broker's door for nodes with real ZeroMQ sockets and no processes: CURVE over loopback
tcp, ZAP answered from the broker's own loop, keys added and removed while it runs, refusals."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq

from protocol.wire import (
    ERROR,
    HEARTBEAT,
    READY,
    REFUSED,
    REQUEST,
    UNREGISTERED,
    Message,
    decode_header,
    encode,
)
from tests.service import free_port
from workers import keys
from workers.broker import Broker
from workers.dispatch import Dispatcher
from workers.nodes import NodeGate


class Rig:
    """A broker with a local back socket (inproc) and a node gate on a loopback port."""

    def __init__(self, context: zmq.Context, key_dir: Path) -> None:
        self.context = context
        front, back = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
        back.setsockopt(zmq.ROUTER_MANDATORY, 1)
        front.bind("inproc://front")
        back.bind("inproc://back")
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.gate = NodeGate(context, self.address, key_dir)
        self.broker = Broker(front, back, Dispatcher(queue_size=8), gate=self.gate)
        self.client = context.socket(zmq.DEALER)
        self.client.connect("inproc://front")

    def turn(self, seconds: float = 0.3, until: Callable[[], bool] | None = None) -> None:
        """Run the broker's loop for a while, as the supervisor does (or until ``until``)."""
        end = time.monotonic() + seconds
        pairs = ((self.gate.zap_socket, self.gate.handle_zap),
                 (self.broker.front, self.broker.on_front),
                 (self.broker.back, self.broker.on_back),
                 (self.gate.socket, self.broker.on_nodes))
        while time.monotonic() < end and not (until and until()):
            time.sleep(0.01)
            for socket, handle in pairs:
                while socket.get(zmq.EVENTS) & zmq.POLLIN:
                    handle()
            self.broker.pump()
            self.broker.heartbeat()

    def node_worker(self, key_pair: tuple[bytes, bytes], name: bytes, info: dict | None = None,
                    header: bytes | None = None) -> zmq.Socket:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.IDENTITY, name)
        socket.curve_serverkey = self.gate.public_key.encode()
        socket.curve_publickey, socket.curve_secretkey = key_pair
        socket.connect(self.address)
        ready = header or encode(Message(READY, name.decode(), result=info or {}))[0]
        socket.send_multipart([ready])
        # tcp, the CURVE handshake, ZAP and READY take their time on a loaded machine: until
        # the broker registered the worker or answered it (an unknown key gets no answer).
        self.turn(3.0, until=lambda: name in self.broker.workers
                  or bool(socket.poll(0, zmq.POLLIN)))
        self.turn(0.1)
        return socket

    def submit(self, task: str, name: str) -> None:
        self.client.send_multipart(encode(Message(REQUEST, name, task=task,
                                                  deadline=time.time() + 30)))
        self.turn(0.1)


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[Rig]:
    context = zmq.Context()
    made = Rig(context, tmp_path / "main")
    try:
        yield made
    finally:
        made.gate.close()
        context.destroy(linger=0)


def node_keys(directory: Path) -> tuple[bytes, bytes]:
    return keys.ensure_keypair(directory)


def received(socket: zmq.Socket, wait_ms: int = 300) -> list[dict]:
    found = []
    while socket.poll(wait_ms):
        found.append(decode_header(socket.recv_multipart()[0]))
        wait_ms = 50
    return found


def test_an_authorised_node_registers_and_answers_pings(rig: Rig, tmp_path: Path):
    pair = node_keys(tmp_path / "node")
    keys.authorise(tmp_path / "main", pair[0].decode(), "board-2")
    worker = rig.node_worker(pair, b"n0.1.aa", {"versions": {"sleep": ""},
                                                 "node": {"hostname": "board-2"}})
    pings = [h for h in received(worker) if h["kind"] == HEARTBEAT]
    assert pings, "the broker pings a registered worker"
    worker.send_multipart(encode(Message(HEARTBEAT, pings[-1]["id"])))
    rig.turn()
    status = rig.broker.status()
    (node,) = status["nodes"]
    assert node["name"] == "board-2" and node["key_id"] == pair[0].decode()[:8]
    assert node["address"] == "127.0.0.1" and node["hostname"] == "board-2"
    assert node["workers"] == 1 and node["connected"] and node["tasks"] == ["sleep"]
    assert node["rtt_ms"] is not None and node["last_heartbeat_seconds"] < 5
    assert [w["name"] for w in node["worker_list"]] == ["n0.1.aa"]
    assert status["workers"] == {}  # this board's workers only: the shape did not change
    assert json.dumps(status)  # the control reply must stay JSON
    worker.close()


def test_an_unknown_key_never_connects_and_is_logged_then_joins_once_added(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    pair = node_keys(tmp_path / "stranger")
    key = pair[0].decode()
    worker = rig.node_worker(pair, b"n0.2.bb", {"versions": {"sleep": ""}})
    rig.submit("sleep", "job-1")
    assert rig.broker.workers == {} and received(worker) == []
    assert f"refused a node with key {key} from 127.0.0.1: not authorised" in caplog.text
    assert "mtai keys add" in caplog.text
    worker.close()

    keys.authorise(tmp_path / "main", key)  # while the broker runs: no restart
    again = rig.node_worker(pair, b"n0.2.cc", {"versions": {"sleep": ""}})
    assert list(rig.broker.workers) == [b"n0.2.cc"]
    jobs = [h for h in received(again) if h["kind"] == REQUEST]
    assert [j["id"] for j in jobs] == ["job-1"]  # the job waited for a worker that may run it
    again.close()


def test_a_node_of_another_protocol_version_is_refused_with_a_clear_line(
        rig: Rig, tmp_path: Path, caplog: pytest.LogCaptureFixture):
    pair = node_keys(tmp_path / "node")
    keys.authorise(tmp_path / "main", pair[0].decode())
    header = json.dumps({"v": 2, "kind": "ready", "id": "n0.3.dd", "result": {}}).encode()
    worker = rig.node_worker(pair, b"n0.3.dd", header=header)
    assert rig.broker.workers == {}
    assert "speaks protocol version 2, this broker speaks 1" in caplog.text
    (answer,) = received(worker)
    assert answer["kind"] == ERROR and answer["error"]["code"] == REFUSED
    assert "protocol version 2" in answer["error"]["message"] and answer["v"] == 1
    worker.close()


def test_a_removed_key_loses_its_workers_and_a_late_message_is_told_to_register(
        rig: Rig, tmp_path: Path):
    pair = node_keys(tmp_path / "node")
    keys.authorise(tmp_path / "main", pair[0].decode(), "gone")
    worker = rig.node_worker(pair, b"n0.4.ee", {"versions": {"sleep": ""}})
    assert b"n0.4.ee" in rig.broker.workers
    keys.revoke(tmp_path / "main", "gone")
    rig.turn()
    assert rig.broker.workers == {}
    codes = [h["error"]["code"] for h in received(worker) if h["kind"] == ERROR]
    assert REFUSED in codes
    worker.send_multipart(encode(Message(HEARTBEAT, "ping-1")))  # an old connection talks on
    rig.turn()
    codes = [h["error"]["code"] for h in received(worker) if h["kind"] == ERROR]
    assert codes == [UNREGISTERED] and rig.broker.workers == {}
    worker.close()


def test_a_removed_key_loses_its_workers_even_when_a_knock_rereads_the_keys_first(
        rig: Rig, tmp_path: Path):
    """The ZAP check rereads the keys too: a handshake answered between the removal and the
    broker's next heartbeat must not hide the removal from the broker."""
    pair = node_keys(tmp_path / "node")
    keys.authorise(tmp_path / "main", pair[0].decode(), "gone")
    worker = rig.node_worker(pair, b"n0.6.ab", {"versions": {"sleep": ""}})
    assert b"n0.6.ab" in rig.broker.workers
    keys.revoke(tmp_path / "main", "gone")
    stranger = node_keys(tmp_path / "stranger")[0]
    assert not rig.gate.callback("mtai-nodes", stranger)  # a knock, answered first
    rig.turn()
    assert rig.broker.workers == {}
    codes = [h["error"]["code"] for h in received(worker) if h["kind"] == ERROR]
    assert REFUSED in codes
    worker.close()


def test_a_node_without_a_task_never_gets_it_and_a_node_name_is_required(rig: Rig,
                                                                         tmp_path: Path):
    pair = node_keys(tmp_path / "node")
    keys.authorise(tmp_path / "main", pair[0].decode())
    ocr_less = rig.node_worker(pair, b"n0.5.ff", {"versions": {"sleep": ""}})
    local = rig.context.socket(zmq.DEALER)
    local.setsockopt(zmq.IDENTITY, b"w0.5")
    local.connect("inproc://back")
    local.send_multipart(encode(Message(READY, "w0.5", result={"versions": {"ocr": "ocr-1"}})))
    rig.turn()
    rig.submit("ocr", "ocr-1")
    rig.submit("sleep", "sleep-1")
    node_jobs = [h["task"] for h in received(ocr_less) if h["kind"] == REQUEST]
    local_jobs = [h["task"] for h in received(local) if h["kind"] == REQUEST]
    assert node_jobs == ["sleep"] and local_jobs == ["ocr"]

    impostor = rig.node_worker(pair, b"w9.9", {"versions": {"ocr": "ocr-1"}})
    assert b"w9.9" not in rig.broker.workers  # a node may not pose as a local worker
    assert [h["error"]["code"] for h in received(impostor)] == [REFUSED]
    for socket in (ocr_less, local, impostor):
        socket.close()
