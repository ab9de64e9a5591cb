"""The broker with real ZeroMQ sockets (inproc) and no processes: clock steps, overruns,
hostile frames. Time is the broker's own monotonic clock; the wall clock may jump."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import zmq

from protocol.wire import (
    CANCEL,
    ERROR,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    UNREGISTERED,
    Message,
    decode,
    encode,
)
from workers.broker import Broker
from workers.dispatch import Dispatcher


class Rig:
    """A broker between one client DEALER and worker DEALERs, all inproc."""

    def __init__(self, context: zmq.Context) -> None:
        self.context = context
        front, back = context.socket(zmq.ROUTER), context.socket(zmq.ROUTER)
        back.setsockopt(zmq.ROUTER_MANDATORY, 1)
        front.bind("inproc://front")
        back.bind("inproc://back")
        self.broker = Broker(front, back, Dispatcher(queue_size=4))
        self.client = context.socket(zmq.DEALER)
        self.client.connect("inproc://front")

    def worker(self, name: bytes) -> zmq.Socket:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.IDENTITY, name)
        socket.connect("inproc://back")
        socket.send_multipart(encode(Message(READY, name.decode(), result={"tasks": ["ocr"]})))
        self.turn()
        return socket

    def turn(self) -> None:
        time.sleep(0.02)
        for socket, handle in ((self.broker.front, self.broker.on_front),
                               (self.broker.back, self.broker.on_back)):
            while socket.get(zmq.EVENTS) & zmq.POLLIN:
                handle()
        self.broker.pump()

    def send(self, *frames: bytes) -> None:
        self.client.send_multipart(list(frames))
        self.turn()

    def answers(self) -> list[Message]:
        found = []
        while self.client.poll(50):
            found.append(decode(self.client.recv_multipart()))
        return found


@pytest.fixture()
def rig() -> Iterator[Rig]:
    context = zmq.Context()
    try:
        yield Rig(context)
    finally:
        context.destroy(linger=0)


def request(deadline: float, name: str = "r1") -> list:
    return encode(Message(REQUEST, name, task="ocr", deadline=deadline))


def test_a_wall_clock_step_neither_expires_jobs_nor_kills_workers(rig: Rig, monkeypatch):
    worker = rig.worker(b"w0.1")
    rig.worker(b"w1.2")
    rig.send(*request(time.time() + 60))
    assert worker.poll(1000)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 120)  # NTP steps the clock
    rig.turn()
    assert rig.answers() == []
    assert rig.broker.silent(10) == [] and rig.broker.overdue(5) == []
    job = decode(worker.recv_multipart())
    worker.send_multipart(encode(job.reply({"lines": []})))
    rig.turn()
    assert [m.kind for m in rig.answers()] == [REPLY]


def test_an_overrun_job_is_answered_once(rig: Rig):
    worker = rig.worker(b"w0.1")
    rig.send(*request(time.time() + 0.3))  # room for a slow turn before the broker sees it
    time.sleep(0.5)
    rig.turn()
    rig.broker.worker_gone(b"w0.1", "killed after its deadline")
    rig.turn()
    answers = rig.answers()
    assert [(m.kind, m.error["code"]) for m in answers] == [(ERROR, "timeout")]
    assert rig.broker.stats.totals()["lost"] == 0
    worker.close()


@pytest.mark.parametrize(("frames", "answered"), [
    ([b'{"v": 1, "kind": [], "id": "a"}'], False),  # no valid header: no id to answer
    ([b'{"v": 1, "kind": "request", "id": "a", "deadline": 1e999}'], True),
    ([b'{"v": 1, "kind": "request", "id": "a", "deadline": 1' + b"0" * 400 + b"}"], True),
    ([b'{"v": 1, "kind": "request", "id": "a", "arrays": [{"dtype": "uint8", "shape": [4]}]}',
      b"abc"], True),
    ([b"\xff"], False),
])
def test_hostile_frames_are_refused_and_the_broker_carries_on(rig: Rig, frames, answered):
    worker = rig.worker(b"w0.1")
    rig.send(*frames)
    refused = [(m.kind, m.id, m.error["code"]) for m in rig.answers()]
    assert refused == ([(ERROR, "a", "bad_request")] if answered else [])
    assert not rig.broker.dispatch.queue and not rig.broker.dispatch.running
    rig.send(*request(time.time() + 30, "ok"))
    assert worker.poll(1000)


def test_a_deadline_far_in_the_future_is_capped(rig: Rig):
    worker = rig.worker(b"w0.1")
    rig.send(*request(time.time() + 10**9))
    (job,) = rig.broker.dispatch.running.values()
    assert job.deadline - time.monotonic() <= 3600
    worker.close()


def test_a_cancelled_job_never_reaches_a_worker(rig: Rig):
    """The front cancels a queued job whose HTTP client has gone: no worker runs it, nobody
    is answered, and it is counted."""
    worker = rig.worker(b"w0.1")
    rig.send(*request(time.time() + 30, "runs"))
    rig.send(*request(time.time() + 30, "queued"))
    assert [j.id for j in rig.broker.dispatch.queue] == ["queued"]
    rig.send(*encode(Message(REQUEST, "c1", task=CANCEL, options={"id": "queued"})))
    assert list(rig.broker.dispatch.queue) == [] and rig.answers() == []
    job = decode(worker.recv_multipart())
    worker.send_multipart(encode(job.reply({"lines": []})))
    rig.turn()
    assert [m.id for m in rig.answers()] == ["runs"]
    assert not worker.poll(200)  # the cancelled job was never handed out
    assert rig.broker.stats.totals()["cancelled"] == 1


def test_a_burst_from_an_unregistered_worker_is_logged_once_and_each_is_told(rig: Rig, caplog):
    """A worker that was dropped flushes its queued heartbeats: every one is answered
    UNREGISTERED (it must say READY), but the log says so once, and again after it
    registered and was lost a second time."""
    stray = rig.context.socket(zmq.DEALER)
    stray.setsockopt(zmq.IDENTITY, b"n0.7.abc")
    stray.connect("inproc://back")
    with caplog.at_level("INFO", logger="mtai.broker"):
        for n in range(5):
            stray.send_multipart(encode(Message(HEARTBEAT, f"ping-{n}")))
        rig.turn()
        told = []
        while stray.poll(100):
            told.append(decode(stray.recv_multipart()).error["code"])
        assert told == [UNREGISTERED] * 5
        assert caplog.text.count("unregistered worker n0.7.abc") == 1
        stray.send_multipart(encode(Message(READY, "n0.7.abc", result={"tasks": ["ocr"]})))
        rig.turn()
        rig.broker.worker_gone(b"n0.7.abc", "stopped heartbeating")
        stray.send_multipart(encode(Message(HEARTBEAT, "ping-9")))
        rig.turn()
        assert caplog.text.count("unregistered worker n0.7.abc") == 2
    stray.close(linger=0)
