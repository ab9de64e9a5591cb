"""Remote worker nodes on loopback: what tcp:// with CURVE costs against ipc://, and whether a
node's workers add to the farm's throughput.

    .venv/bin/python benchmarks/bench_nodes.py [--calls 40] [--seconds 0.2] [--jobs 120]

1. Transfer: the real service with one local worker (ipc://) and a node (`mtai node`) with one
   remote worker (tcp://127.0.0.1 + CURVE). Sequential jobs alternate between the two idle
   workers (LRU), so both paths are measured interleaved in one run; the broker's job log says
   which worker answered each call. Per payload: client round trip p50/p99, and for the tcp
   worker the bytes its TCP connection carried per job in each direction (the kernel's counters
   as `ss -ti` shows them: ZMTP framing, CURVE boxes and heartbeats included), against the wire
   format's own bytes. A unix socket has no such counter; ZMTP adds 2 to 9 bytes per frame.
   Payloads: none, a CLIP image (224x224x3 uint8), an OCR image reduced to 2000 px
   (2000x1500x3 uint8) with the `sleep` task (no compute), and a real OCR job on a shared page.
2. Compression: zlib level 1 on the shared photos' pixel arrays, ratio and speed, to see whether
   a LAN would need it.
3. Scaling: 3 local workers alone, then with a node of 3 more, on `sleep` jobs of --seconds.

Prints tables; the figures go to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_farm import percentile, throughput
from frontend.decode import decode_image
from protocol.client import FarmClient
from protocol.endpoints import front_endpoint
from protocol.settings import Settings
from protocol.wire import REPLY, REQUEST, Message, encode
from tests.service import Node, Service, free_port, mtai, start_node, start_service

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"
OCR_PAGE = SHARED / "ocr" / "rapidocr_text_vertical_words.png"  # 834x2036, near the 2000 px cap


def tcp_bytes(port: int) -> tuple[int, int]:
    """(received, sent) by the client ends of the TCP connections to ``port`` (the node
    workers'), from the kernel's per-socket counters."""
    out = subprocess.run(["ss", "-tinH", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    received = sum(int(n) for n in re.findall(r"bytes_received:(\d+)", out))
    sent = sum(int(n) for n in re.findall(r"bytes_sent:(\d+)", out))
    return received, sent


def worker_names(status: dict[str, Any]) -> list[str]:
    """This board's workers, then the nodes' (the status lists those under their node)."""
    return [*status["workers"], *(w["name"] for node in status.get("nodes", [])
                                  for w in node["worker_list"])]


def wait_workers(service: Service, count: int, timeout: float = 180) -> dict[str, Any]:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = service.farm_status()
        if len(worker_names(status)) >= count:
            return status
        time.sleep(0.3)
    raise TimeoutError(f"{count} workers not ready: {service.log()}")


def join_node(service: Service, work: Path, model_dir: Path, listen: str, keys: Path,
              workers: int) -> Node:
    """`mtai keys init` on the node, `mtai keys add` on the board, `mtai node`."""
    server = mtai("keys", "init", NODE_KEYS=str(keys)).stdout.splitlines()[-1]
    node_keys = work / "node-keys"
    key = mtai("keys", "init", NODE_KEYS=str(node_keys)).stdout.splitlines()[-1]
    mtai("keys", "add", key, NODE_KEYS=str(keys))
    return start_node(work / "node.log", model_dir, node_keys, listen, server, workers=workers)


def transfer(calls: int, model_dir: Path) -> list[tuple[str, ...]]:
    with tempfile.TemporaryDirectory(prefix="mtai-bench-nodes-") as tmp:
        work = Path(tmp)
        listen = f"tcp://127.0.0.1:{free_port()}"
        service = start_service(work / "svc", model_dir, WORKERS="1", CPU_THREADS="1",
                                SERVER_RESTART_TIME="0", NODE_LISTEN=listen,
                                NODE_KEYS=str(work / "keys"))
        node = None
        try:
            wait_workers(service, 1)
            node = join_node(service, work, model_dir, listen, work / "keys", workers=1)
            status = wait_workers(service, 2)
            workers = worker_names(status)
            port = int(listen.rsplit(":", 1)[1])
            page = decode_image(OCR_PAGE.read_bytes(), max_side=2000).array
            payloads = [
                ("sleep, no array", "sleep", {"seconds": 0}, []),
                ("sleep + CLIP image 224x224x3", "sleep", {"seconds": 0},
                 [np.zeros((224, 224, 3), np.uint8)]),
                ("sleep + OCR image 2000x1500x3", "sleep", {"seconds": 0},
                 [np.zeros((1500, 2000, 3), np.uint8)]),
                (f"OCR of a {page.shape[1]}x{page.shape[0]} page", "ocr", {}, [page]),
            ]
            rows = []
            for name, task, options, arrays in payloads:
                rows += measure(service, workers, port, name, task, options, arrays, calls)
            return rows
        finally:
            if node is not None:
                node.stop()
            service.stop()


def measure(service: Service, workers: list[str], port: int, name: str, task: str,
            options: dict[str, Any], arrays: list[np.ndarray], calls: int
            ) -> list[tuple[str, ...]]:
    """Alternating calls; latencies split by the worker the job log names."""
    payload = sum(len(f) for f in encode(Message(REQUEST, "x" * 32, task=task, options=options,
                                                 deadline=time.time(), arrays=arrays)))
    client = FarmClient(front_endpoint(service.runtime))
    for _ in range(4):  # warm-up, both workers
        client.call(task, options, arrays, timeout=60)
    log_before = len(service.log_path.read_text(errors="replace"))
    tcp_before = tcp_bytes(port)
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        assert client.call(task, options, arrays, timeout=60).kind == REPLY
        latencies.append(time.perf_counter() - started)
    tcp_after = tcp_bytes(port)
    client.close()
    time.sleep(0.2)
    log = service.log_path.read_text(errors="replace")[log_before:]
    served = re.findall(rf"job task={task} worker=(\S+) .*status=ok", log)
    assert len(served) == calls, (len(served), calls)
    rows = []
    for worker in workers:
        mine = [t for t, who in zip(latencies, served) if who == worker]
        remote = not worker.startswith("w")
        if remote:
            to_worker = (tcp_after[0] - tcp_before[0]) / len(mine)
            from_worker = (tcp_after[1] - tcp_before[1]) / len(mine)
            counted = (f"{to_worker:,.0f}", f"{from_worker:,.0f}", f"{to_worker / payload:.4f}")
        else:
            counted = ("-", "-", "-")
        rows.append((name, "tcp+CURVE" if remote else "ipc", f"{len(mine)}",
                     f"{statistics.median(mine) * 1e3:.2f}",
                     f"{percentile(mine, 0.99) * 1e3:.2f}", f"{payload:,}", *counted))
    return rows


def compression() -> list[tuple[str, ...]]:
    rows, total_raw, total_packed, total_time = [], 0, 0, 0.0
    for path in sorted((SHARED / "photos").glob("*.jp*g")):
        pixels = decode_image(path.read_bytes(), max_side=2000).array
        raw = pixels.tobytes()
        started = time.perf_counter()
        packed = zlib.compress(raw, 1)
        spent = time.perf_counter() - started
        total_raw, total_packed, total_time = (total_raw + len(raw),
                                               total_packed + len(packed), total_time + spent)
        rows.append((path.name, f"{pixels.shape[1]}x{pixels.shape[0]}",
                     f"{len(packed) / len(raw):.3f}", f"{len(raw) / spent / 1e6:.0f}"))
    rows.append(("all", "", f"{total_packed / total_raw:.3f}",
                 f"{total_raw / total_time / 1e6:.0f}"))
    return rows


def scaling(seconds: float, jobs: int) -> list[tuple[str, ...]]:
    with tempfile.TemporaryDirectory(prefix="mtai-bench-nodes-") as tmp:
        work = Path(tmp)
        empty = work / "no-models"  # the sleep task needs none; loading is quicker
        empty.mkdir()
        listen = f"tcp://127.0.0.1:{free_port()}"
        service = start_service(work / "svc", empty, WORKERS="3", CPU_THREADS="1",
                                SERVER_RESTART_TIME="0", NODE_LISTEN=listen,
                                NODE_KEYS=str(work / "keys"), QUEUE_SIZE="64")
        node = None
        try:
            wait_workers(service, 3)
            alone = throughput(service, 3, seconds, jobs // 2)
            node = join_node(service, work, empty, listen, work / "keys", workers=3)
            wait_workers(service, 6)
            start = len(service.log_path.read_text(errors="replace"))
            together = throughput(service, 6, seconds, jobs)
            counts = _jobs_by_place(service.log_path.read_text(errors="replace")[start:])
        finally:
            if node is not None:
                node.stop()
            service.stop()
    return [
        ("3 local", f"{alone:.2f}", f"{alone / (3 / seconds):.3f} of 3/t = {3 / seconds:.1f}",
         ""),
        ("3 local + 3 remote", f"{together:.2f}",
         f"{together / (6 / seconds):.3f} of 6/t = {6 / seconds:.1f}",
         f"{together / alone:.2f}x 3 local; jobs here/on the node {counts}"),
    ]


def _jobs_by_place(log: str) -> str:
    """Jobs of the 6-worker run answered by this board's workers / by the node's."""
    workers = re.findall(r"job task=sleep worker=(\S+) .*status=ok", log)
    local = sum(w.startswith("w") for w in workers)
    return f"{local}/{len(workers) - local}"


def table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40, help="calls per payload (both paths)")
    parser.add_argument("--seconds", type=float, default=0.2, help="hold time of a sleep job")
    parser.add_argument("--jobs", type=int, default=120, help="jobs of the 6-worker run")
    args = parser.parse_args()
    model_dir = Settings.from_env().model_dir
    table(("payload", "path", "jobs", "p50 ms", "p99 ms", "job bytes (wire format)",
           "TCP bytes/job to worker", "TCP bytes/job back", "to worker / job bytes"),
          transfer(args.calls, model_dir))
    table(("photo (decoded as the front does)", "pixels", "zlib-1 size ratio", "MB/s"),
          compression())
    table(("workers", "jobs/s", "against N/t", "against 3 local"),
          scaling(args.seconds, args.jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
