"""The front's farm client: one green DEALER per process shared by concurrent requests, with
replies routed by request id, cancellation of a job whose HTTP client left, and release of
every waiter once the supervisor is gone. A real ZeroMQ ROUTER plays the broker (ipc, in this
process, green sockets; no gunicorn)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import zmq.green as zmq

from frontend.farm import ClientGone, Farm
from protocol.client import FarmUnreachable
from protocol.wire import CANCEL, REPLY, decode, encode


class Broker:
    """A ROUTER that answers each request after the delay its options ask for (in any
    order) and records everything it was sent."""

    def __init__(self, endpoint: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind(endpoint)
        self.received: list = []
        self.peers: set[bytes] = set()
        self._loop = gevent.spawn(self._serve)

    def _serve(self) -> None:
        while True:
            peer, *frames = self.socket.recv_multipart()
            message = decode(frames)
            self.received.append(message)
            self.peers.add(peer)
            if message.task != CANCEL and "delay" in message.options:
                gevent.spawn(self._answer, peer, message)

    def _answer(self, peer: bytes, message) -> None:
        gevent.sleep(message.options["delay"])
        self.socket.send_multipart([peer, *encode(message.reply({"echo": message.id}))])

    def close(self) -> None:
        self._loop.kill()
        self.socket.close()


@pytest.fixture()
def rig(tmp_path: Path) -> Iterator[tuple[Farm, Broker]]:
    endpoint = f"ipc://{tmp_path / 'front'}"
    broker = Broker(endpoint)
    try:
        yield Farm(endpoint, timeout=5), broker
    finally:
        broker.close()


def test_concurrent_calls_share_one_socket_and_each_gets_its_own_reply(rig):
    farm, broker = rig
    delays = [0.3, 0.1, 0.2, 0.0, 0.25, 0.05]
    calls = [gevent.spawn(farm.call, "ocr", {"delay": d}) for d in delays]
    gevent.joinall(calls, timeout=5, raise_error=True)
    replies = [call.value for call in calls]
    assert all(r.kind == REPLY for r in replies)
    sent = {m.options["delay"]: m.id for m in broker.received}
    assert [r.result["echo"] for r in replies] == [sent[d] for d in delays]
    assert len(broker.peers) == 1  # one DEALER for the whole process


def test_a_client_that_leaves_cancels_its_queued_job(rig):
    farm, broker = rig
    left_at = time.monotonic() + 0.3
    with pytest.raises(ClientGone):
        farm.call("ocr", {"delay": 3}, client_gone=lambda: time.monotonic() > left_at)
    end = time.monotonic() + 5
    while len(broker.received) < 2 and time.monotonic() < end:
        gevent.sleep(0.05)  # the CANCEL crosses ipc and ZeroMQ's I/O thread
    job, cancel = broker.received
    assert cancel.task == CANCEL and cancel.options == {"id": job.id}


def test_the_deadline_travels_with_the_job_and_bounds_the_wait(rig):
    farm, broker = rig
    deadline = time.time() + 0.2
    started = time.monotonic()
    with pytest.raises(FarmUnreachable) as caught:
        farm.call("ocr", {}, deadline=deadline)  # the fake broker never answers this one
    assert broker.received[0].deadline == deadline
    assert time.monotonic() - started < 0.2 + 4  # the deadline plus the reply grace (2 s)
    assert caught.value.retry_after == 5


def test_waiting_calls_are_released_as_soon_as_the_supervisor_is_gone(rig):
    farm, _ = rig
    calls = [gevent.spawn(farm.call, "ocr", {"delay": 30}) for _ in range(3)]
    gevent.sleep(0.2)
    started = time.monotonic()
    farm.gone.set()
    gevent.joinall(calls, timeout=5)
    assert all(isinstance(call.exception, FarmUnreachable) for call in calls)
    assert time.monotonic() - started < 1.0
    with pytest.raises(FarmUnreachable, match="supervisor is gone"):
        farm.call("ocr", {"delay": 0})
