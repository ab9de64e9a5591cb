"""OCR accuracy against ground truth: every model, per script group, and the large-photo decode.

The ground truth is generated (models/tools/ocr_truth.py: known text rendered onto the shared
real photos, seeded), so nothing here is kept in git and anyone can rerun it. For each model
(``--models``) every image is decoded as the front decodes it and read by our pipeline;
``--decode`` compares, on the photos of 12 MP and more, today's JPEG draft decode (DCT scaling
to the smallest of 1/2, 1/4, 1/8 still over 2000 px, then the pipeline's resize) with a full
decode followed by RapidOCR's own resize (what the reference does), in accuracy and in front CPU
time (and a full decode with an area-averaging resize, for comparison). ``--static`` also
reads with the NPU shape profile (onnxruntime on the profile's shapes).

    .venv/bin/python benchmarks/ocr_accuracy.py --static          # every model, both modes
    .venv/bin/python benchmarks/ocr_accuracy.py --models ppocrv6-small --decode
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.ocr.generations import OCR_MODELS, family_name  # noqa: E402
from models.ocr.geometry import fit_sides  # noqa: E402
from models.ocr.pipeline import MAX_SIDE, MIN_SIDE, OcrPipeline  # noqa: E402
from models.tools.ocr_score import Score, score_image  # noqa: E402
from models.tools.ocr_truth import GROUPS, Sample, generate, large_specs, standard_specs  # noqa: E402
from protocol.images import OCR_MAX_SIDE, decode_image  # noqa: E402
from protocol.settings import Settings  # noqa: E402

TESTDATA = ROOT.parent / "shared" / "testdata"


def decoders() -> dict[str, Callable[[bytes], tuple[np.ndarray, float]]]:
    """name -> (bytes -> (array handed to the worker, array width / full width))."""

    def draft(data: bytes) -> tuple[np.ndarray, float]:
        decoded = decode_image(data, max_side=OCR_MAX_SIDE)  # as the front decodes for /ocr
        return decoded.array, decoded.scale

    def full_reference(data: bytes) -> tuple[np.ndarray, float]:
        decoded = decode_image(data)
        resized, placement = fit_sides(decoded.array, MAX_SIDE, MIN_SIDE)  # RapidOCR's resize
        return resized, 1.0 / placement.scale_x

    def full_area(data: bytes) -> tuple[np.ndarray, float]:
        decoded = decode_image(data)
        resized, _ = fit_sides(decoded.array, MAX_SIDE, MIN_SIDE)
        size = resized.shape[1], resized.shape[0]
        area = cv2.resize(decoded.array, size, interpolation=cv2.INTER_AREA)
        return area, size[0] / decoded.width

    return {"draft": draft, "full": full_reference, "full-area": full_area}


def read(pipeline: OcrPipeline, array: np.ndarray, scale: float) -> list[tuple[list, str]]:
    """Predicted (box in full-resolution pixels, text) lines."""
    return [([[x / scale, y / scale] for x, y in line.box], line.text) for line in pipeline(array)]


def table(rows: list[tuple[str, Score]]) -> str:
    groups = [g for g in GROUPS if any(g in s.groups for _, s in rows)]
    head = "| model | all: CER | CER without ko | word acc | line recall | found | " + " | ".join(
        f"{g} CER / word" for g in groups) + " |"
    out = [head, "|" + "---|" * (6 + len(groups))]
    for name, score in rows:
        total = score.total()
        readable = Score({g: t for g, t in score.groups.items() if g != "ko"}).total()
        cells = [name, f"{total.cer:.3f}", f"{readable.cer:.3f}", _pct(total.word_accuracy),
                 f"{total.line_recall:.2f}", f"{total.found_rate:.2f}"]
        for g in groups:
            tally = score.groups.get(g)
            if tally is None:
                cells.append("")
                continue
            cells.append(f"{tally.cer:.3f} / {_pct(tally.word_accuracy)}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(OCR_MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--decode", action="store_true", help="large photos: draft vs full decode")
    parser.add_argument("--static", action="store_true", help="also the NPU shape profile")
    parser.add_argument("--large", type=int, default=6, help="large photos for --decode")
    args = parser.parse_args()
    model_dir = Settings.from_env().model_dir
    specs = (large_specs(TESTDATA, args.seed, args.large) if args.decode
             else standard_specs(TESTDATA, args.seed))
    samples: list[Sample] = list(generate(specs))
    lines = sum(len(s.lines) for s in samples)
    sizes = sorted({f"{s.width}x{s.height}" for s in samples})
    print(f"{len(samples)} images, {lines} truth lines, sizes {', '.join(sizes)}", flush=True)
    variants = ["draft", "full", "full-area"] if args.decode else ["draft"]
    rows: list[tuple[str, Score]] = []
    front_ms: dict[str, list[float]] = {v: [] for v in variants}
    for model in args.models.split(","):
        modes = [("dynamic", False)] + ([("static", True)] if args.static else [])
        for mode, static in modes:
            pipeline = OcrPipeline.load(model_dir, threads=args.threads, family=family_name(model),
                                        static_shapes=static)
            for variant in variants:
                decode = decoders()[variant]
                score, started = Score(), time.monotonic()
                for sample in samples:
                    t0 = time.process_time()
                    array, scale = decode(sample.jpeg)
                    front_ms[variant].append((time.process_time() - t0) * 1000)
                    score.add(score_image(sample.lines, read(pipeline, array, scale)))
                name = model + ("" if mode == "dynamic" else " (NPU profile)")
                name += f", {variant} decode" if args.decode else ""
                rows.append((name, score))
                print(f"{name}: CER {score.total().cer:.3f} "
                      f"({time.monotonic() - started:.1f} s)", flush=True)
    print()
    print(table(rows))
    if args.decode:
        print()
        print("| decode | front CPU per photo, median ms | min | max |")
        print("|---|---|---|---|")
        for variant, times in front_ms.items():
            print(f"| {variant} | {np.median(times):.0f} | {min(times):.0f} | {max(times):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
