"""What JPEG draft mode saves the front on a CLIP request: decode a 24 MP photo straight at
reduced scale versus a full decode, both followed by the same bicubic resize to 224 px.

    .venv/bin/python benchmarks/bench_decode.py [--rounds 7]

Also prints how far the two 224x224 results are apart (what the model would see).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocol.images import clip_pixels, decode_image

SHARED = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "photos"


def big_jpeg(source: Path, size: tuple[int, int] = (6000, 4000)) -> bytes:
    """A 24 MP JPEG made from a real photo (upscaled, so it has real image statistics)."""
    with Image.open(source) as image:
        big = image.convert("RGB").resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def prepare(data: bytes, max_side: int | None) -> np.ndarray:
    """What the front does for /clip/img: decode (maybe in draft mode), resize to 224."""
    return clip_pixels(decode_image(data, max_side=max_side).array)


def timed(call) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{'photo':<28} {'full ms':>9} {'draft ms':>9} {'ratio':>7} {'max|d|':>7} {'mean|d|':>8}")
    ratios = []
    for name in ("tanners_ridge.jpg", "prairie_falcon.jpg", "wood_anemones.jpg"):
        data = big_jpeg(SHARED / name)
        full, draft = [], []
        for _ in range(args.rounds):  # alternate, so machine noise hits both alike
            t, full_pixels = timed(lambda data=data: prepare(data, None))
            full.append(t)
            t, draft_pixels = timed(lambda data=data: prepare(data, 448))
            draft.append(t)
        ratio = statistics.median(draft) / statistics.median(full)
        ratios.append(ratio)
        diff = np.abs(full_pixels.astype(int) - draft_pixels.astype(int))
        print(
            f"{name:<28} {statistics.median(full) * 1e3:>9.1f} "
            f"{statistics.median(draft) * 1e3:>9.1f} {ratio:>7.3f} {diff.max():>7d} "
            f"{diff.mean():>8.2f}"
        )
    print(f"median ratio draft/full: {statistics.median(ratios):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
