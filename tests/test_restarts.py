"""Restarts of the front and of the supervisor, with real processes on loopback.

The supervisor holds the listening socket, so a front that dies refuses no connection; the
front leaves with its supervisor and answers what it holds with 503 instead of a dropped
connection; a new supervisor gets the port at once.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from models.doctor import PROBLEM
from protocol.settings import Settings
from tests.service import Service, free_port, start_service, under_load
from workers.cli import main
from workers.probe import judge
from workers.supervisor import Supervisor

pytestmark = pytest.mark.service


def post_check(service: Service) -> tuple[int, dict]:
    """A fresh connection each time (no keep-alive), so a refused connection shows."""
    try:
        response = service.post("/check", headers={"Connection": "close"})
    except requests.RequestException as exc:
        return -1, {"error": f"{type(exc).__name__}: {exc}"}
    return response.status_code, response.json()


def test_killed_front_master_refuses_no_connection_and_fails_no_request(model_dir: Path,
                                                                       tmp_path: Path):
    service = start_service(tmp_path, model_dir, WORKERS="1", HTTP_WORKERS="2")
    try:
        status = service.wait_ready(workers=1)
        master = status["front"]["pid"]

        def replaced() -> bool:
            front = service.farm_status()["front"]
            return front["pid"] not in (None, master) and front["serving"] >= 1

        answers = under_load(lambda: os.kill(master, signal.SIGKILL),
                             lambda: post_check(service), until=replaced, limit=60)
        assert len(answers) >= 20
        assert [a for a in answers if a[0] != 200] == []
        assert service.farm_status()["front"]["restarts"] == 1
    finally:
        assert service.stop() == 0, service.tail()


def test_killed_supervisor_answers_held_requests_and_frees_the_port(model_dir: Path,
                                                                    tmp_path: Path,
                                                                    shared: Path):
    service = start_service(tmp_path / "first", model_dir, WORKERS="1", QUEUE_SIZE="8")
    image = (shared / "testdata/ocr/rapidocr_ch_doc_server.png").read_bytes()
    port = int(service.url.rsplit(":", 1)[1])

    def ocr(_: int) -> tuple[int | str, float]:
        started = time.monotonic()
        try:
            code: int | str = service.post("/ocr", files={"file": ("i.png", image)}).status_code
        except requests.RequestException as exc:
            code = type(exc).__name__
        return code, time.monotonic() - started

    try:
        service.wait_ready(workers=1)
        with ThreadPoolExecutor(4) as pool:  # one runs, three wait in the queue
            held = [pool.submit(ocr, n) for n in range(4)]
            time.sleep(0.5)
            killed_at = time.monotonic()
            service.process.kill()
            results = [future.result(timeout=60) for future in held]
        assert all(code in (200, 503) for code, _ in results), results
        assert max(seconds for _, seconds in results) < 10, results
        assert any(code == 503 for code, _ in results), results
    finally:
        service.process.kill()
        service.process.wait(10)
    second = start_service(tmp_path / "second", model_dir, port=port, WORKERS="1")
    try:
        second.wait_ready(workers=1, timeout=60)
        assert time.monotonic() - killed_at < 45
        assert post_check(second)[0] == 200
        assert "in use" not in second.log()
    finally:
        assert second.stop() == 0, second.tail()


def test_front_in_a_crash_loop_is_reported_and_never_announced_ready(tmp_path: Path,
                                                                     monkeypatch):
    """A front that exits at once: the supervisor backs off, marks the crash loop in its
    status and never sends READY=1, although the worker is ready."""
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path / "models"), "WORKERS": "1",
                                  "RUNTIME_DIR": str(tmp_path / "run"), "CPU_THREADS": "1",
                                  "HTTP_PORT": str(free_port())})
    supervisor = Supervisor(settings)
    sent: list[str] = []
    monkeypatch.setattr(supervisor.notifier, "send", sent.append)
    monkeypatch.setattr(supervisor, "_front_argv",
                        lambda: [sys.executable, "-c", "raise SystemExit(3)"])
    assert supervisor.start()
    try:
        end = time.monotonic() + 40
        while not supervisor.front_child.crash_loop and time.monotonic() < end:
            supervisor.tick()
        while not supervisor.broker.workers and time.monotonic() < end:
            supervisor.tick()  # a loaded machine may start the worker later than that
        front = supervisor.status({})["front"]
        assert front["crash_loop"] and front["last_exit"] == "code 3", front
        assert len(supervisor.broker.workers) == 1  # the worker is ready all the same
        assert not any(m.startswith("READY=1") for m in sent), sent
        assert any("HTTP front in a crash loop" in m for m in sent), sent
        doctor = {f.topic: f for f in judge(supervisor.status({}))}
        assert doctor["HTTP front"].status == PROBLEM and "code 3" in doctor["HTTP front"].detail
    finally:
        supervisor.halt()


def test_check_and_doctor_say_the_front_serves(service: Service, monkeypatch, capsys):
    front = service.farm_status()["front"]
    assert front["serving"] >= 1 and not front["crash_loop"]
    check = service.post("/check").json()
    assert check["front"]["serving"] >= 1 and check["front"]["crash_loop"] is False
    monkeypatch.setenv("RUNTIME_DIR", str(service.runtime))
    monkeypatch.setenv("MODEL_DIR", str(service.runtime / "no-models"))
    main(["doctor"])
    out = capsys.readouterr().out
    assert "HTTP front: serving" in out and "workers: 3/3 ready" in out
