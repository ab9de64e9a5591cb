"""Does capping the long side of the enlarged detector canvas change what is read?

RapidOCR brings the short side of every image up to 736 px, so small or flat images become huge
canvases (an 11x65 px image: 736x4416). This runs the dynamic pipeline with the long side of the
enlarged canvas capped at each given size and reports, against ocr_reference_rapidocr.json (the
fidelity test's matching: identical text, corners within 2 px), the reference lines lost, the
lines gained, and the detector time of the affected images. Only enlargement is capped; images
the recipe does not enlarge are untouched.

    python benchmarks/ocr_det_cap.py [--caps 4000,3000,2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.ocr.compare import match_lines  # noqa: E402
from models.ocr.detect import det_input_size  # noqa: E402
from models.ocr.geometry import fit_sides, letterbox  # noqa: E402
from models.ocr.pipeline import MAX_SIDE, MIN_SIDE, OcrPipeline  # noqa: E402
from protocol.images import decode_image  # noqa: E402
from protocol.settings import Settings  # noqa: E402
from tests.ocr_fixtures import reference_lines  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"


def canvas_of(image, cap: int | None) -> tuple[int, int]:
    prepared, placement = fit_sides(image, MAX_SIDE, MIN_SIDE)
    prepared, _ = letterbox(prepared, placement)
    return det_input_size(*prepared.shape[:2], max_long_side=cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caps", default="4000,3000,2000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    reference = json.loads((TESTDATA / "ocr_reference_rapidocr.json").read_text())["images"]
    images = {n: decode_image((TESTDATA / n).read_bytes()).array for n in sorted(reference)}
    pipeline = OcrPipeline.load(Settings.from_env().model_dir, threads=args.threads)
    total = sum(len(v) for v in reference.values())
    print(f"{len(images)} images, {total} reference lines")
    for cap in caps:
        affected = {n: im for n, im in images.items() if canvas_of(im, cap) != canvas_of(im, None)}
        lost = gained = 0
        timing = {}
        for name, image in affected.items():
            times = {}
            for label, value in (("uncapped", None), ("capped", cap)):
                pipeline.detector.max_long_side = value
                runs = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    lines = pipeline(image)
                    runs.append(time.perf_counter() - started)
                times[label] = statistics.median(runs)
            found = match_lines(reference_lines(reference[name]), lines)
            hits, missed, extra = found.matched, found.missed, found.extra
            lost, gained = lost + len(missed), gained + extra
            timing[name] = times
            print(
                f"  cap {cap}: {name:42s} canvas {canvas_of(image, None)} -> "
                f"{canvas_of(image, cap)}  {hits}/{len(reference[name])} lines, +{extra}; "
                f"{times['uncapped']:.2f} s -> {times['capped']:.2f} s"
            )
        pipeline.detector.max_long_side = None
        before = sum(t["uncapped"] for t in timing.values())
        after = sum(t["capped"] for t in timing.values())
        print(
            f"cap {cap}: {len(affected)} images affected, {lost} reference lines lost, "
            f"{gained} extra; their time {before:.2f} s -> {after:.2f} s"
        )


if __name__ == "__main__":
    main()
