"""Start the real service (supervisor, gunicorn, workers, ZeroMQ) for a test session."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from protocol.client import FarmClient
from protocol.endpoints import front_endpoint
from protocol.wire import REPLY


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Service:
    process: subprocess.Popen
    url: str
    key: str
    runtime: Path
    log_path: Path

    def post(self, path: str, key: str | None = "", **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if key is not None:
            headers["api-key"] = key or self.key
        kwargs.setdefault("timeout", 120)
        return requests.post(self.url + path, headers=headers, **kwargs)

    def farm_status(self) -> dict[str, Any]:
        client = FarmClient(front_endpoint(self.runtime))
        try:
            return client.call("status", timeout=5).result
        finally:
            client.close()

    def wait_ready(self, workers: int, task: str = "ocr", timeout: float = 180) -> dict[str, Any]:
        """Until `workers` workers have said READY with the model for `task`."""
        end = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.tail()}")
            try:
                status = self.farm_status()
            except Exception:
                status = {}
            ready = [w for w in status.get("workers", {}).values() if task in w.get("models", {})]
            if len(ready) >= workers and _http_up(self.url):
                return status
            time.sleep(0.3)
        raise TimeoutError(f"not ready in {timeout}s: {status}\n{self.tail()}")

    def log(self) -> str:
        """The whole log: what a test looks for may be anywhere in it."""
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 5000) -> str:
        """The end of the log, for a failure message."""
        return self.log()[-chars:]

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def _http_up(url: str) -> bool:
    try:
        return requests.get(url + "/", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def start_service(workdir: Path, model_dir: Path, port: int | None = None, **env: str) -> Service:
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    runtime = workdir / "run"
    log_path = workdir / "service.log"
    environment = {
        **os.environ,
        "HTTP_PORT": str(port),
        "RUNTIME_DIR": str(runtime),
        "MODEL_DIR": str(model_dir),
        "API_AUTH_KEY": "test-key",
        "WORKERS": "3",
        "CPU_THREADS": "1",
        "HTTP_WORKERS": "1",
        "HTTP_THREADS": "8",
        "OCR_MODEL": "ppocrv4",  # what the shared references were read with; tests may override
        **env,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "serve"],
            env=environment, stdout=log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
    return Service(process, f"http://127.0.0.1:{port}", "test-key", runtime, log_path)


def sleep_job(service: Service, seconds: float, timeout: float = 20) -> str:
    """One diagnostic job straight to the broker; returns 'ok' or the error code."""
    client = FarmClient(front_endpoint(service.runtime))
    try:
        reply = client.call("sleep", {"seconds": seconds}, timeout=timeout)
    finally:
        client.close()
    return "ok" if reply.kind == REPLY else reply.error["code"]


def under_load(action: Callable[[], None], request: Callable[[], tuple[int, dict]],
               until: Callable[[], bool], limit: float = 120,
               threads: int = 4) -> list[tuple[int, dict]]:
    """Keep `threads` clients busy from 1 s before `action` until `until()` holds (at
    most `limit` seconds), then 1 s more; return every answer."""
    stop = threading.Event()
    answers: list[tuple[int, dict]] = []

    def client() -> None:
        while not stop.is_set():
            answers.append(request())

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(client) for _ in range(threads)]
        time.sleep(1.0)
        action()
        end = time.monotonic() + limit
        while not until() and time.monotonic() < end:
            time.sleep(0.2)
        time.sleep(1.0)
        stop.set()
        for future in futures:
            future.result()
    assert until(), "the condition under load was not reached"
    return answers


def wait_for(condition: Callable[[], bool], timeout: float, what: str, service: Service) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {timeout}s\n{service.tail()}")


def mtai(*argv: str, **env: str) -> subprocess.CompletedProcess:
    """The `mtai` command as a user runs it, from this checkout."""
    return subprocess.run([sys.executable, "-m", "workers.cli", *argv], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1], check=False)


@dataclass
class Node:
    """`mtai node` in a process group of its own: its supervisor and its workers."""

    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL to the whole group, as a power cut or the OOM killer of a cgroup would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> int:
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.kill()
            raise


def start_node(log_path: Path, model_dir: Path, keys: Path, connect: str, server_key: str,
               workers: int = 2, **env: str) -> Node:
    environment = {**os.environ, "MODEL_DIR": str(model_dir), "NODE_KEYS": str(keys),
                   "WORKERS": str(workers), "CPU_THREADS": "1",
                   "OCR_MODEL": "ppocrv4",  # the board's, as start_service sets it
                   **env}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "node", "--connect", connect,
             "--server-key", server_key],
            env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parents[1])
    return Node(process, log_path)


class BusyWorkerKiller:
    """SIGKILLs one of the service's workers while it runs a job (``kill``, an action for
    ``under_load``), then tells when every slot has a ready worker again, none of them the one
    killed (``replaced``; the status lists a worker once it has said READY)."""

    def __init__(self, service: Service, workers: int = 3) -> None:
        self.service = service
        self.workers = workers
        self.killed: list[int] = []

    def kill(self) -> None:
        """Until a kill hit a job: the job the status showed may have ended just before the
        signal, and then it is an idle worker that dies and nothing is retried."""
        retries = self.service.farm_status()["counters"]["retries"]
        end = time.monotonic() + 30
        while time.monotonic() < end:
            busy = [w["pid"] for w in self.service.farm_status()["workers"].values()
                    if w["busy"] and w["pid"] not in self.killed]
            if not busy:
                continue
            os.kill(busy[0], signal.SIGKILL)
            self.killed.append(busy[0])
            settle = time.monotonic() + 5
            while time.monotonic() < settle:
                if self.service.farm_status()["counters"]["retries"] > retries:
                    return
                time.sleep(0.1)
        raise AssertionError(f"no kill hit a running job (killed {self.killed})")

    def replaced(self) -> bool:
        workers = self.service.farm_status()["workers"].values()
        return len(workers) == self.workers and all(w["pid"] not in self.killed
                                                    for w in workers)
