"""Measure the farm itself, not the models: throughput of N workers on a job that holds a
worker without using CPU (the `sleep` task), and the per-request overhead of the broker and
the HTTP front against an in-process call. Real processes on loopback, bounded in time.

    .venv/bin/python benchmarks/bench_farm.py [--seconds 0.2] [--jobs 60]
    .venv/bin/python benchmarks/bench_farm.py --http-only [--calls 300]

The HTTP part also replays the clients' real requests (MT-Photos' /ocr, /clip/img, /clip/txt
and Immich's /predict for OCR and CLIP, with the tiny test CLIP model installed) over one
kept-alive connection, each against the same job sent straight to the broker in the same
run: the ratio is what the HTTP front adds (upload, decode, formatting).

Prints a table; the figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.client import FarmClient
from protocol.endpoints import front_endpoint
from protocol.settings import Settings
from protocol.wire import REPLY, REQUEST, Message
from tests.clip_fixtures import install_tiny
from tests.service import Service, start_service
from workers.tasks import TaskRunner, sleep_handler

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"


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
    parser.add_argument("--http-only", action="store_true", help="only the HTTP part")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mtai-bench-") as tmp:
        models = Path(tmp) / "models"  # the OCR models plus the tiny test CLIP
        models.mkdir()
        (models / "ocr").symlink_to(Settings.from_env().model_dir / "ocr")
        install_tiny(models)
        for workers in (1, 3):
            if args.http_only and workers == 1:
                continue
            service = start_service(
                Path(tmp) / f"run{workers}",
                models,
                WORKERS=str(workers),
                CPU_THREADS="1",
                SERVER_RESTART_TIME="0",
            )
            try:
                service.wait_ready(workers=workers)
                if not args.http_only:
                    rate = throughput(service, workers, args.seconds, args.jobs)
                    ideal = workers / args.seconds
                    rows.append((f"throughput, {workers} worker(s), {args.seconds}s jobs",
                                 f"{rate:.2f} jobs/s", f"{rate / ideal:.3f} of N/t = {ideal:.1f}"))
                if workers == 3:
                    rows += overhead(service, args.calls)
                    rows += client_traffic(service, max(10, args.calls // 10))
            finally:
                service.stop()
    width = max(len(r[0]) for r in rows)
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>30}  {ratio}")
    return 0


def jpeg(image: Image.Image, long_side: int) -> bytes:
    scale = long_side / max(image.size)
    resized = image.convert("RGB").resize((round(image.width * scale),
                                           round(image.height * scale)), Image.BICUBIC)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def client_traffic(service: Service, calls: int) -> list[tuple[str, str, str]]:
    """Each client request over HTTP against the same job sent straight to the broker."""
    text_page = Image.open(SHARED / "ocr" / "rapidocr_ch_en_num.jpg")
    photo = jpeg(Image.open(SHARED / "photos" / "tanners_ridge.jpg"), 1440)  # Immich preview
    page = (SHARED / "ocr" / "rapidocr_ch_en_num.jpg").read_bytes()
    page_pixels = np.asarray(text_page.convert("RGB"))
    clip_pixels = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB")
                             .resize((224, 224), Image.BICUBIC))
    farm = FarmClient(front_endpoint(service.runtime))
    session = requests.Session()
    key = {"api-key": service.key}
    ocr_entries = json.dumps({"ocr": {"detection": {"modelName": "m"},
                                      "recognition": {"modelName": "m"}}})
    clip_entries = json.dumps({"clip": {"visual": {"modelName": "m"}}})

    def post(path: str, **kwargs) -> None:
        response = session.post(service.url + path, timeout=60, **kwargs)
        assert response.status_code == 200, response.text

    cases = [
        ("MT-Photos /ocr", lambda: post("/ocr", headers=key, files={"file": ("p.jpg", page)}),
         lambda: farm.call("ocr", {}, [page_pixels], timeout=60)),
        ("Immich /predict ocr", lambda: post("/predict", data={"entries": ocr_entries},
                                             files={"image": ("blob", page)}),
         lambda: farm.call("ocr", {}, [page_pixels], timeout=60)),
        ("MT-Photos /clip/img", lambda: post("/clip/img", headers=key,
                                             files={"file": ("p.jpg", photo)}),
         lambda: farm.call("clip_image", {}, [clip_pixels], timeout=60)),
        ("Immich /predict clip", lambda: post("/predict", data={"entries": clip_entries},
                                              files={"image": ("blob", photo)}),
         lambda: farm.call("clip_image", {}, [clip_pixels], timeout=60)),
        ("MT-Photos /clip/txt", lambda: post("/clip/txt", headers=key, json={"text": "海边的日落"}),
         lambda: farm.call("clip_text", {"text": "海边的日落"}, timeout=60)),
    ]
    rows = []
    for name, over_http, direct in cases:
        over_http(), direct()  # warm-up (the text model loads on first use)
        http_times, farm_times = [], []
        for _ in range(calls):  # interleaved, so load changes hit both alike
            http_times += latencies(over_http, 1)
            farm_times += latencies(direct, 1)
        p50, p99 = percentile(http_times, 0.5) * 1e3, percentile(http_times, 0.99) * 1e3
        ratio = statistics.median(http_times) / statistics.median(farm_times)
        rows.append((f"latency, {name}", f"p50 {p50:.1f} ms p99 {p99:.1f} ms",
                     f"{ratio:.2f}x the broker round trip of its job "
                     f"(p50 {statistics.median(farm_times) * 1e3:.1f} ms)"))
    farm.close()
    return rows


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
