"""Fault tests with real processes: kill, stop, flood and recycle the farm under load.

Loopback only, every loop bounded in count and time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from protocol.endpoints import front_endpoint
from protocol.wire import BUSY, ERROR, decode
from tests.service import BusyWorkerKiller, Service, sleep_job, start_service, under_load, wait_for

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def farm(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    running = start_service(
        tmp_path_factory.mktemp("farm"), model_dir,
        QUEUE_SIZE="6", REQUEST_TIMEOUT="90", HTTP_THREADS="24", SERVER_RESTART_TIME="0",
    )
    try:
        running.wait_ready(workers=3)
        yield running
    finally:
        assert running.stop() == 0, running.tail()


def post_ocr(service: Service, image: bytes) -> tuple[int, dict]:
    response = service.post("/ocr", files={"file": ("i.jpg", image)})
    return response.status_code, response.json()


def failures(answers: list[tuple[int, dict]]) -> list:
    return [a for a in answers if a[0] != 200 or "msg" in a[1] or not a[1]["result"]["texts"]]


def test_worker_killed_mid_job_under_load_loses_no_request(farm: Service, shared: Path):
    image = (shared / "testdata/ocr/rapidocr_text_rec.jpg").read_bytes()

    killer = BusyWorkerKiller(farm)
    answers = under_load(killer.kill, lambda: post_ocr(farm, image), until=killer.replaced)
    assert len(answers) >= 4
    assert failures(answers) == []
    assert farm.farm_status()["counters"]["retries"] >= 1


def test_stopped_worker_is_replaced_and_the_others_keep_serving(farm: Service):
    status = farm.wait_ready(workers=3)
    victim = status["slots"][1]["pid"]
    os.kill(victim, signal.SIGSTOP)
    try:
        with ThreadPoolExecutor(6) as pool:
            codes = Counter(pool.map(lambda _: sleep_job(farm, 0.2, timeout=6), range(60)))
        # A job handed to the stopped worker times out; every other job is served.
        assert codes["ok"] >= 55 and set(codes) <= {"ok", "timeout"}, codes
        wait_for(lambda: farm.farm_status()["slots"][1]["pid"] not in (None, victim), 30,
                 "stopped worker not replaced", farm)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGCONT)
    farm.wait_ready(workers=3)
    assert sleep_job(farm, 0) == "ok"


def test_flood_far_beyond_the_queue_gets_quick_busy_answers_then_recovers(farm: Service):
    farm.wait_ready(workers=3)
    started = time.monotonic()
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda _: (sleep_job(farm, 1.0), time.monotonic()), range(40)))
    codes = Counter(code for code, _ in results)
    assert codes["ok"] >= 3 + 6 - 1 and codes[BUSY] >= 25, codes
    assert set(codes) <= {"ok", BUSY}
    busy_latency = [at - started for code, at in results if code == BUSY]
    assert max(busy_latency) < 5.0, "busy answers must be quick"
    assert sleep_job(farm, 0) == "ok"


def test_http_flood_is_503_with_retry_after(farm: Service, shared: Path):
    farm.wait_ready(workers=3)
    image = (shared / "testdata/ocr/rapidocr_ch_en_num.jpg").read_bytes()
    hold = threading.Event()

    def occupy() -> None:  # 3 running and 6 queued: the queue is full
        with ThreadPoolExecutor(9) as pool:
            list(pool.map(lambda _: sleep_job(farm, 5.0, 60), range(9)))
        hold.set()

    threading.Thread(target=occupy, daemon=True).start()
    wait_for(lambda: farm.farm_status()["queue"] == 6, 10, "the queue did not fill", farm)
    response = farm.post("/ocr", files={"file": ("i.jpg", image)})
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"].isdigit()
    hold.wait(60)
    assert post_ocr(farm, image)[0] == 200


def test_restart_v2_under_continuous_load_fails_nothing(farm: Service, shared: Path):
    image = (shared / "testdata/ocr/rapidocr_text_rec.jpg").read_bytes()
    status = farm.wait_ready(workers=3)
    before = {s["slot"]: s["pid"] for s in status["slots"]}
    restarts = sum(s["restarts"] for s in status["slots"])

    def restart() -> None:
        assert farm.post("/restart_v2").json() == {"result": "pass"}

    def recycled() -> bool:
        now = farm.farm_status()
        return now["recycled"] >= status["recycled"] + 3 and len(now["workers"]) == 3

    answers = under_load(restart, lambda: post_ocr(farm, image), until=recycled, threads=3)
    assert len(answers) >= 4
    assert failures(answers) == []
    after = farm.farm_status()["slots"]
    assert all(s["pid"] != before[s["slot"]] for s in after)
    assert sum(s["restarts"] for s in after) == restarts, "a recycle must not look like a crash"


def test_killed_http_front_is_restarted(farm: Service):
    front = farm.farm_status()["front"]
    os.kill(front["pid"], signal.SIGKILL)
    wait_for(lambda: farm.farm_status()["front"]["pid"] not in (None, front["pid"]), 30,
             "front not restarted", farm)

    def serving() -> bool:
        try:
            return farm.post("/check").status_code == 200
        except requests.RequestException:
            return False

    wait_for(serving, 60, "front not serving again", farm)


def test_metrics_expose_counters_and_histograms(farm: Service):
    sleep_job(farm, 0)
    text = requests.get(farm.url + "/metrics", timeout=10).text
    assert 'mtai_jobs_total{task="sleep"}' in text
    assert 'mtai_run_seconds_bucket{le="+Inf",task="sleep"}' in text
    assert "mtai_queue_depth" in text and "mtai_worker_restarts_total" in text


def test_garbage_on_the_broker_socket_is_answered_or_dropped(farm: Service):
    import zmq

    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(front_endpoint(farm.runtime))
    try:
        for frames in ([b"junk"], [b'{"v":1,"kind":"request","id":"x","arrays":[{}]}', b"z"],
                       [b"\x00" * 1000, b"", b""], [b'{"v": 2}']):
            socket.send_multipart(frames)
        # only the one with a readable id can be answered; the others are dropped
        assert socket.poll(5000), "the malformed request with an id got no answer"
        answer = decode(socket.recv_multipart())
        assert (answer.kind, answer.id, answer.error["code"]) == (ERROR, "x", "bad_request")
        assert not socket.poll(500)
    finally:
        socket.close()
    assert sleep_job(farm, 0) == "ok"


def test_idle_timer_recycles_workers(model_dir: Path, tmp_path: Path):
    service = start_service(tmp_path, model_dir, WORKERS="1", SERVER_RESTART_TIME="2")
    try:
        service.wait_ready(workers=1)
        assert sleep_job(service, 0) == "ok"
        wait_for(lambda: service.farm_status()["recycled"] >= 1, 60, "no idle recycle", service)
        service.wait_ready(workers=1)
        assert sleep_job(service, 0) == "ok"
    finally:
        assert service.stop() == 0, service.tail()


def test_killed_supervisor_takes_its_children_along(model_dir: Path, tmp_path: Path):
    service = start_service(tmp_path, model_dir, WORKERS="1")
    status = service.wait_ready(workers=1)
    children = [status["slots"][0]["pid"], status["front"]["pid"]]
    service.process.kill()
    service.process.wait(10)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        with open(f"/proc/{pid}/stat") as stat:  # a zombie awaiting its reaper is gone too
            return stat.read().split(") ")[1].startswith("Z")

    wait_for(lambda: all(gone(pid) for pid in children), 30, "orphans left running", service)


def test_clip_without_a_model_says_so_in_the_error_shape(farm: Service, shared: Path):
    with (shared / "testdata/photos/pokemon.jpeg").open("rb") as handle:
        image = farm.post("/clip/img", files={"file": ("p.jpg", handle)})
    text = farm.post("/clip/txt", json={"text": "一只猫"})
    for response in (image, text):
        assert response.status_code == 200
        body = response.json()
        assert body["result"] == [] and "CLIP model is not installed" in body["msg"]
        assert "mtai models fetch clip" in body["msg"]


def test_a_job_that_loses_two_workers_is_answered_worker_lost(farm: Service):
    """Retry once, then give up: a poison input kills at most two workers."""
    farm.wait_ready(workers=3)
    killed: list[int] = []

    def kill_whoever_runs_it() -> None:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            busy = [w["pid"] for w in farm.farm_status()["workers"].values()
                    if w["busy"] and w["pid"] not in killed]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.05)

    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(sleep_job, farm, 5.0, 30)
        kill_whoever_runs_it()
        kill_whoever_runs_it()
        assert job.result(timeout=60) == "worker_lost"
    assert len(killed) == 2
    farm.wait_ready(workers=3)
    assert sleep_job(farm, 0) == "ok"


def test_http_overload_gets_quick_503s_not_a_growing_wait(model_dir: Path, tmp_path: Path,
                                                          shared: Path):
    """More concurrent requests than workers + queue: the extra ones get 503 at once; the
    front has enough threads by default that requests never pile up inside gunicorn."""
    service = start_service(tmp_path, model_dir, WORKERS="1", QUEUE_SIZE="2",
                            HTTP_THREADS="")
    image = (shared / "testdata/ocr/rapidocr_ch_en_num.jpg").read_bytes()
    try:
        service.wait_ready(workers=1)

        def timed_post(_: int) -> tuple[int, float]:
            started = time.monotonic()
            response = service.post("/ocr", files={"file": ("i.jpg", image)})
            return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(timed_post, range(12)))
        codes = Counter(code for code, _ in results)
        assert set(codes) <= {200, 503} and codes[503] >= 6 and codes[200] >= 1, codes
        assert max(t for code, t in results if code == 503) < 5.0
    finally:
        assert service.stop() == 0, service.tail()
