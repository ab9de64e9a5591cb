"""How much memory the HTTP front takes for huge uploads, and whether it gives it back.

Starts the service with one gunicorn process, sends `--parallel` 10000x10000 RGBA PNGs (small
files, 100 MP each once decoded) to `/ocr` at once, and reads the gunicorn process's memory
from /proc: resident before, peak during (VmHWM, reset first), resident 5 s after. Then the same
with ordinary photos, as the reference for what the front needs anyway.

    .venv/bin/python benchmarks/bench_front_memory.py [--parallel 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.settings import Settings
from tests.service import Service, start_service

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def huge_png(side: int = 10_000) -> bytes:
    """A transparent 100 MP RGBA PNG with some dark text: a few hundred kB of file."""
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for row in range(0, side, 1000):
        draw.rectangle((100, row + 100, 4000, row + 400), fill=(20, 20, 20, 255))
        draw.text((200, row + 500), "mtai front memory", fill=(0, 0, 0, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=9)
    return buffer.getvalue()


def front_processes(service: Service) -> list[int]:
    master = service.farm_status()["front"]["pid"]
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) // 1024
    return values


def burst(service: Service, payloads: list[bytes]) -> tuple[list[int], float]:
    def post(data: bytes) -> int:
        return service.post("/ocr", files={"file": ("i.png", data)}, timeout=300).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(len(payloads)) as pool:
        codes = list(pool.map(post, payloads))
    return codes, time.monotonic() - started


def measure(service: Service, pid: int, name: str, payloads: list[bytes]) -> None:
    before = memory(pid)["VmRSS"]
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    codes, seconds = burst(service, payloads)
    peak = memory(pid)["VmHWM"]
    time.sleep(5)
    after = memory(pid)["VmRSS"]
    print(f"{name}: {len(payloads)} at once, answers {sorted(set(codes))} in {seconds:.1f} s; "
          f"RSS before {before} MB, peak {peak} MB, 5 s after {after} MB", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()
    png = huge_png()
    photo = (SHARED / "photos" / "tanners_ridge.jpg").read_bytes()
    print(f"huge PNG: {len(png) // 1024} kB file, 10000x10000 RGBA", flush=True)
    env = {"WORKERS": "1", "HTTP_WORKERS": "1", "HTTP_THREADS": "", "QUEUE_SIZE": "16",
           "REQUEST_TIMEOUT": "300", "SERVER_RESTART_TIME": "0",
           **dict(item.split("=", 1) for item in args.env)}
    with tempfile.TemporaryDirectory(prefix="mtai-mem-") as tmp:
        service = start_service(Path(tmp), Settings.from_env().model_dir, **env)
        try:
            service.wait_ready(workers=1)
            (pid,) = front_processes(service)
            measure(service, pid, "photos (reference)", [photo] * args.parallel)
            for round_ in range(1, args.rounds + 1):
                measure(service, pid, f"huge PNGs, round {round_}", [png] * args.parallel)
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
