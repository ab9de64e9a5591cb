"""Slow, stalled and departed clients against the real service (gunicorn's gevent worker).

Reported on the threaded front: 40 sockets trickling their headers or stalling in their body
left `/check` and `/ocr` of a normal client unanswered for as long as they stayed, and the
server never closed them; requests whose clients had given up still ran on a worker. The
benchmark with 500 such sockets is benchmarks/bench_slow_clients.py (BENCHMARKS.md).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.hostile import KINDS, Attack
from tests.service import Service, sleep_job, start_service, wait_for

pytestmark = pytest.mark.service
READ_TIMEOUT = 3


@pytest.fixture(scope="module")
def front(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(tmp_path_factory.mktemp("slow"), model_dir, WORKERS="1",
                            HTTP_WORKERS="1", HTTP_THREADS="", READ_TIMEOUT=str(READ_TIMEOUT),
                            SERVER_RESTART_TIME="0")
    try:
        running.wait_ready(workers=1)
        yield running
    finally:
        assert running.stop() == 0, running.tail()


def test_hostile_connections_starve_nobody_and_are_closed_at_the_read_timeout(
        front: Service, shared: Path):
    url = urlparse(front.url)
    attack = Attack(url.hostname, url.port, 150)
    image = (shared / "testdata/ocr/rapidocr_ch_en_num.jpg").read_bytes()
    attack.start()
    try:
        assert len(attack.conns) == 150
        slowest = 0.0
        for _ in range(20):  # while all of them hold their sockets
            started = time.monotonic()
            answer = front.post("/check", headers={"Connection": "close"}, timeout=10)
            slowest = max(slowest, time.monotonic() - started)
            assert answer.status_code == 200
        assert slowest < 5.0, slowest  # starved, it took 15 s and more (issue 16)
        ocr = front.post("/ocr", files={"file": ("i.jpg", image)}, timeout=30)
        assert ocr.status_code == 200 and ocr.json()["result"]["texts"]
        end = time.monotonic() + 2 * READ_TIMEOUT + 10
        while time.monotonic() < end and any(c.closed_after is None for c in attack.conns):
            time.sleep(0.2)
        for kind in KINDS:
            mine = attack.of_kind(kind)
            assert all(c.closed_after is not None for c in mine), attack.summary(kind)
            assert max(c.closed_after for c in mine) < 2 * READ_TIMEOUT + 5, attack.summary(kind)
        for kind in ("stall", "short"):  # a body that stopped: told why, then closed
            assert all(c.answer.startswith(b"HTTP/1.1 408") for c in attack.of_kind(kind)), \
                attack.summary(kind)
    finally:
        attack.close()


def raw_upload(service: Service, image: bytes) -> socket.socket:
    """A complete /ocr request on a socket of its own, left open and unread."""
    url = urlparse(service.url)
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"i.jpg\"\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    head = (f"POST /ocr HTTP/1.1\r\nHost: x\r\napi-key: {service.key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(head + body)
    return sock


def test_a_job_whose_client_left_while_queued_never_runs(front: Service, shared: Path):
    image = (shared / "testdata/ocr/rapidocr_ch_en_num.jpg").read_bytes()
    before = front.farm_status()["tasks"].get("ocr", {"jobs": 0, "cancelled": 0})
    holder = threading.Thread(target=sleep_job, args=(front, 8.0))
    holder.start()  # the only worker is busy for 8 s: long enough on a loaded machine
    try:
        wait_for(lambda: front.farm_status()["running"] == 1, 5, "the sleep job runs", front)
        sock = raw_upload(front, image)
        wait_for(lambda: front.farm_status()["queue"] == 1, 5, "the OCR job is queued", front)
        sock.close()  # the client gives up
        wait_for(lambda: front.farm_status()["queue"] == 0, 5, "the job left the queue", front)
    finally:
        holder.join(timeout=30)
    time.sleep(0.5)
    after = front.farm_status()["tasks"]["ocr"]
    assert after["cancelled"] == before["cancelled"] + 1
    assert after["jobs"] == before["jobs"]  # no worker ever ran it
    assert front.post("/ocr", files={"file": ("i.jpg", image)}).status_code == 200

