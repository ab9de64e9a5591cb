"""Measure the farm itself, not the models: throughput of N workers on a job that holds a
worker without using CPU (the `sleep` task), and the per-request overhead of the broker and
the HTTP front against an in-process call. Real processes on loopback, bounded in time.

    .venv/bin/python benchmarks/bench_farm.py [--seconds 0.2] [--jobs 60]

Prints a table; the figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.client import FarmClient
from protocol.endpoints import front_endpoint
from protocol.settings import Settings
from protocol.wire import REPLY, REQUEST, Message
from tests.service import Service, start_service
from workers.tasks import TaskRunner, sleep_handler


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def throughput(service: Service, workers: int, seconds: float, jobs: int) -> float:
    """Jobs per second with 2 clients per worker keeping the queue full."""

    def one(_: int) -> None:
        client = FarmClient(front_endpoint(service.runtime))
        try:
            assert client.call("sleep", {"seconds": seconds}, timeout=120).kind == REPLY
        finally:
            client.close()

    with ThreadPoolExecutor(2 * workers) as pool:
        started = time.perf_counter()
        list(pool.map(one, range(jobs)))
        return jobs / (time.perf_counter() - started)


def latencies(call, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=0.2, help="hold time of one job")
    parser.add_argument("--jobs", type=int, default=60, help="jobs per throughput run")
    parser.add_argument("--calls", type=int, default=300, help="calls per latency run")
    args = parser.parse_args()
    rows = []
    for workers in (1, 3):
        with tempfile.TemporaryDirectory(prefix="mtai-bench-") as tmp:
            service = start_service(
                Path(tmp),
                Settings.from_env().model_dir,
                WORKERS=str(workers),
                CPU_THREADS="1",
                SERVER_RESTART_TIME="0",
            )
            try:
                service.wait_ready(workers=workers)
                rate = throughput(service, workers, args.seconds, args.jobs)
                ideal = workers / args.seconds
                rows.append(
                    (
                        f"throughput, {workers} worker(s), {args.seconds}s jobs",
                        f"{rate:.2f} jobs/s",
                        f"{rate / ideal:.3f} of N/t = {ideal:.1f}",
                    )
                )
                if workers == 3:
                    rows += overhead(service, args.calls)
            finally:
                service.stop()
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>22}  {ratio}")
    return 0


def overhead(service: Service, calls: int) -> list[tuple[str, str, str]]:
    runner = TaskRunner(handlers={"sleep": sleep_handler})
    request = Message(REQUEST, "bench", task="sleep", options={"seconds": 0})
    local = latencies(lambda: runner.run(request), calls)
    client = FarmClient(front_endpoint(service.runtime))
    farm = latencies(lambda: client.call("sleep", {"seconds": 0}, timeout=30), calls)
    client.close()
    session = requests.Session()
    headers = {"api-key": service.key}
    http = latencies(lambda: session.post(service.url + "/check", headers=headers), calls)
    rows = []
    for name, values in (
        ("in-process call", local),
        ("broker + worker round trip", farm),
        ("HTTP front + broker (/check)", http),
    ):
        p50, p99 = percentile(values, 0.5) * 1e3, percentile(values, 0.99) * 1e3
        ratio = statistics.median(values) / statistics.median(local)
        rows.append(
            (
                f"latency, {name}",
                f"p50 {p50:.3f} ms p99 {p99:.3f} ms",
                f"{ratio:.0f}x in-process p50",
            )
        )
    return rows


if __name__ == "__main__":
    sys.exit(main())
