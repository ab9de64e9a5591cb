"""Slow and broken clients against the real service: do they starve a normal client, and are
they ever closed?

Starts the service as `mtai serve` runs it (two gunicorn processes, default threads), measures a
normal client alone (the reference), then opens N hostile connections from this host, a third
of each kind:

- trickle: the headers of `POST /ocr`, one byte every 3 s;
- stall: the complete headers of an Immich upload (`POST /predict`, no key needed), 6 body
  bytes, then nothing;
- short: the same with a Content-Length longer than the body sent, then nothing.

While they hold their sockets, a normal client keeps calling `POST /check` (a new connection
each time, as a refused or queued connection then shows) and `POST /ocr` with a real photo.
Afterwards: how many hostile sockets the server closed, and when.

    .venv/bin/python benchmarks/bench_slow_clients.py [--connections 500] [--hold 45]

Extra settings for the service: `--env READ_TIMEOUT=10` (repeatable).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.settings import Settings
from tests.hostile import KINDS, Attack
from tests.service import Service, start_service

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"
CLIENT_TIMEOUT = 10.0  # the normal client gives up here; a failure counts as this long
print = functools.partial(print, flush=True)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def check_latencies(service: Service, seconds: float, pause: float = 0.05) -> list[float]:
    """POST /check on a fresh connection again and again; a failure counts as the timeout."""
    times, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            ok = service.post("/check", headers={"Connection": "close"},
                              timeout=CLIENT_TIMEOUT).status_code == 200
        except requests.RequestException:
            ok = False
        times.append(time.perf_counter() - started if ok else CLIENT_TIMEOUT)
        time.sleep(pause)
    return times


def ocr_calls(service: Service, image: bytes, seconds: float) -> list[tuple[int, float]]:
    results, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            code = service.post("/ocr", files={"file": ("photo.jpg", image)},
                                headers={"Connection": "close"},
                                timeout=CLIENT_TIMEOUT).status_code
        except requests.RequestException:
            code = -1
        results.append((code, time.perf_counter() - started))
    return results


def measure(service: Service, image: bytes, seconds: float) -> tuple[list[float], list]:
    """/check latencies and /ocr results, both clients running at once for ``seconds``."""
    ocr: list = []
    worker = threading.Thread(target=lambda: ocr.extend(ocr_calls(service, image, seconds)))
    worker.start()
    checks = check_latencies(service, seconds)
    worker.join()
    return checks, ocr


def report(name: str, checks: list[float], ocr: list[tuple[int, float]]) -> str:
    served = [t for code, t in ocr if code == 200]
    ocr_line = (f"/ocr {len(served)} of {len(ocr)} served, median {statistics.median(served):.2f} s"
                if served else f"/ocr 0 of {len(ocr)} served")
    failed = sum(t >= CLIENT_TIMEOUT for t in checks)
    return (f"{name}: /check p50 {percentile(checks, 0.5) * 1e3:.1f} ms, "
            f"p95 {percentile(checks, 0.95) * 1e3:.1f} ms, max {max(checks) * 1e3:.0f} ms "
            f"({len(checks)} calls, {failed} failed or over {CLIENT_TIMEOUT:.0f} s); {ocr_line}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--measure", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--hold", type=float, default=45.0,
                        help="seconds the hostile sockets are kept before counting closures")
    parser.add_argument("--workers", default="1", help="WORKERS for the service")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    env = {"WORKERS": args.workers, "HTTP_WORKERS": "2", "HTTP_THREADS": "",
           "SERVER_RESTART_TIME": "0", **dict(item.split("=", 1) for item in args.env)}
    image = (SHARED / "ocr" / "rapidocr_ch_en_num.jpg").read_bytes()
    with tempfile.TemporaryDirectory(prefix="mtai-slow-") as tmp:
        service = start_service(Path(tmp), Settings.from_env().model_dir, **env)
        try:
            service.wait_ready(workers=int(args.workers))
            port = int(service.url.rsplit(":", 1)[1])
            print(report("alone (reference)", *measure(service, image, args.measure)))
            attack = Attack("127.0.0.1", port, args.connections)
            opened_at = time.monotonic()
            driver = attack.start()
            print(f"opened {len(attack.conns)} hostile connections in "
                  f"{time.monotonic() - opened_at:.1f} s ({attack.failed_to_open} failed)")
            time.sleep(3)
            print(report(f"with {len(attack.conns)} hostile", *measure(service, image,
                                                                       args.measure)))
            rest = args.hold - (time.monotonic() - opened_at)
            if rest > 0:
                time.sleep(rest)
            print(f"after {time.monotonic() - opened_at:.0f} s:")
            for kind in KINDS:
                print("  " + attack.summary(kind))
            attack.close()
            driver.join(timeout=10)
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
