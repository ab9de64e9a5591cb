"""Choosing the OCR static-shape profile for the NPU: text kept against NPU work spent.

Runs candidate profiles on the CPU backend (onnxruntime, the same ONNX files the converter
builds from) over every shared OCR image and photo and reports, per candidate:

- agreement with the dynamic pipeline (RapidOCR's shapes), per dynamic line: "exact" when the
  candidate has a line of identical text with box corners within max(2 px, 20% of the line
  height) (the fidelity test's 2 px, widened because a different detector scale moves box
  edges by a few pixels), "2px" the same at the fidelity test's 2 px; "found" when a candidate
  box lies within that tolerance whatever its text; "chars": characters read alike over all
  dynamic lines (1 - edit distance / length; a line not found counts as all lost); "extra":
  candidate lines with no dynamic counterpart;
- the pixels each model is fed per image (batch x height x width, padding included), recorded
  by a wrapper around the real sessions;
- an ESTIMATE of RK3588 NPU time per image and of photos/s on its 3 cores, scaled by pixels
  from published single-core figures: PP-OCRv4 det 480x480 ~20 ms, rec 48x320 fp16 ~13.5 ms;
  the classifier (no published figure) at the detector's per-pixel rate. Estimates only: no
  NPU was used, per-call overheads and CPU post-processing are not included.

``rknn-port`` is the scheme of the published RKNN ports: every image stretched to 480x480,
every line stretched to 48x320. The ``dyn/...`` rows are the noise floor: the dynamic pipeline
itself with one harmless setting changed (RapidOCR's own options: recogniser batch 8 instead of
6, detector short side 768 or 704 instead of 736), to show how much "same text" moves when
nothing is lost.

Photo-size costs: the detector canvas each candidate picks for common camera photos as the
service hands them over (long side 2000 px after decoding; Immich's 1440 px previews; a 4:1
panorama) and the ESTIMATED detector time for them. Last, each candidate's shape totals: the
converter's memory and the .rknn size grow with them (measured in BENCHMARKS.md).

    python benchmarks/ocr_npu_profile.py [--candidates all|name,...] [--detail NAME]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.ocr.compare import match_lines  # noqa: E402
from models.ocr.detect import TextDetector, det_input_size  # noqa: E402
from models.ocr.generations import OCR_MODELS, family_name  # noqa: E402
from models.ocr.layout import plan_layout  # noqa: E402
from models.ocr.pipeline import OcrLine, OcrPipeline  # noqa: E402
from models.ocr.profile import (  # noqa: E402
    DEFAULT_PROFILE,
    ShapeProfile,
    canvas_ladder,
    merged,
    photo_canvases,
    rec_ladder,
    strip_canvases,
)
from models.ocr.recognize import TextRecognizer  # noqa: E402
from protocol.images import decode_image  # noqa: E402
from protocol.settings import Settings  # noqa: E402
from tests.ocr_fixtures import (  # noqa: E402
    BOX_TOLERANCE_PX,
    profile_tolerance,
    read_agreement,
    recorded_pipeline,
)

TESTDATA = REPO.parent / "shared" / "testdata"
DET_MS, DET_PX = 20.0, 480 * 480  # published RK3588 single-core figures (estimate basis)
REC_MS, REC_PX = 13.5, 48 * 320
NPU_CORES = 3
OLD_CANVASES = ((736, 736), (736, 992), (992, 736), (736, 1312), (1312, 736))
R5 = (320, 480, 640, 960, 1280)
PHOTO_SIZES = {"4:3 2000": (1500, 2000), "3:2 2000": (1333, 2000), "16:9 2000": (1125, 2000),
               "4:3 1440": (1080, 1440), "3:4 2000": (2000, 1500),
               "5:4 1700": (1360, 1700), "4:1 pano": (500, 2000)}


PHOTO_LADDER = merged(canvas_ladder(1984), photo_canvases())
WITH_STRIPS = merged(PHOTO_LADDER, strip_canvases())
CANDIDATES: dict[str, ShapeProfile | None] = {
    "rknn-port": None,  # built below: stretch to 480x480 and 48x320
    "c5/r5": ShapeProfile(OLD_CANVASES, R5),  # the profile shipped before tiling
    "L1312s64/r32": ShapeProfile(canvas_ladder(1312, 64), rec_ladder(32)),
    "L1984s64/r32": ShapeProfile(canvas_ladder(1984, 64), rec_ladder(32)),
    "L1984s32/r64": ShapeProfile(canvas_ladder(1984), rec_ladder(64)),
    "L1984s32/r32": ShapeProfile(canvas_ladder(1984), rec_ladder(32)),
    "L1984s32/r16": ShapeProfile(canvas_ladder(1984), rec_ladder(16)),
    "L1984s32+ph/r32": ShapeProfile(merged(canvas_ladder(1984), photo_canvases()), rec_ladder(32)),
    "L1984s32+ph/r32-2048": ShapeProfile(PHOTO_LADDER, rec_ladder(32, 2048)),
    "L1984s32+ph+st/r32-2048": ShapeProfile(WITH_STRIPS, rec_ladder(32, 2048)),
    "L1984s32+ph+st/r16+32": ShapeProfile(WITH_STRIPS, rec_ladder(16) + rec_ladder(32, 2048, 1312)),
    "L1984s32+ph+st/r16-2048": ShapeProfile(WITH_STRIPS, rec_ladder(16, 2048)),
}
SHIPPED = "L1984s32+ph+st/r16+32"  # models/ocr/profile.py DEFAULT_PROFILE (checked in main)
NOISE: dict[str, Callable[[OcrPipeline], None]] = {
    "dyn/group8": lambda p: setattr(p.recognizer, "group", 8),
    "dyn/limit768": lambda p: setattr(p.detector, "limit_side_len", 768),
    "dyn/limit704": lambda p: setattr(p.detector, "limit_side_len", 704),
}


class StretchDetector(TextDetector):
    """The RKNN ports' detector input: the whole image stretched to one square canvas."""

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        size_h, size_w = self.canvases[0]
        tensor = self.table(cv2.resize(image, (size_w, size_h)))[np.newaxis]
        return self.session.run({self.spec.input_name: tensor})[0][0, 0]


class StretchRecognizer(TextRecognizer):
    """The RKNN ports' recogniser input: every line stretched to 48x320, however long."""

    def __call__(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        stretched = [cv2.resize(c, (self.widths[-1], self.height)) for c in crops]
        return self.read(stretched, [self.widths[-1]] * len(crops))


@dataclass
class Outcome:
    """One candidate over the image set."""

    lines: dict[str, list[OcrLine]]
    pixels: dict[str, dict[str, int]]  # image -> role -> pixels fed
    shapes: dict[str, set[tuple[int, ...]]]
    seconds: float


def run_candidate(
    model_dir: Path,
    profile: ShapeProfile | None,
    images: list[tuple[str, np.ndarray]],
    port: bool = False,
    tweak: Callable[[OcrPipeline], None] | None = None,
    family: str = "ocr",
) -> Outcome:
    pipeline, recorders = recorded_pipeline(model_dir, profile, family=family)
    if tweak is not None:
        tweak(pipeline)
    if port:
        pipeline.detector.__class__ = StretchDetector
        pipeline.recognizer.__class__ = StretchRecognizer
    lines, pixels = {}, {}
    started = time.perf_counter()
    for name, image in images:
        marks = {role: len(rec.shapes) for role, rec in recorders.items()}
        lines[name] = pipeline(image)
        pixels[name] = {
            role: sum(int(np.prod(s)) // s[1] for s in rec.shapes[marks[role] :])
            for role, rec in recorders.items()
        }  # N*H*W: channels are not pixels
    shapes = {role: set(rec.shapes) for role, rec in recorders.items()}
    return Outcome(lines, pixels, shapes, time.perf_counter() - started)


def npu_ms(pixels: dict[str, int]) -> float:
    """ESTIMATED single-core NPU milliseconds for one image's model inputs."""
    return (
        DET_MS * pixels["det"] / DET_PX
        + DET_MS * pixels["cls"] / DET_PX
        + REC_MS * pixels["rec"] / REC_PX
    )


def agreement(
    reference: dict[str, list[OcrLine]], lines: dict[str, list[OcrLine]], tolerance: Callable
) -> tuple[int, int, int, list[str]]:
    """(dynamic lines, matched, extra, notes on misses) over all images."""
    total = matched = extra = 0
    notes = []
    for name, ref_lines in reference.items():
        found = match_lines(ref_lines, lines[name], tolerance)
        total, matched, extra = total + len(ref_lines), matched + found.matched, extra + found.extra
        if found.missed or found.extra:
            ours = [line.text for line in lines[name]]
            notes.append(f"{name}: missed {[m.text for m in found.missed]}, ours {ours}")
    return total, matched, extra, notes


def summarise(name: str, outcome: Outcome, reference: Outcome, photos: list[str]) -> str:
    total, exact, extra, _ = agreement(reference.lines, outcome.lines, profile_tolerance)
    _, strict, _, _ = agreement(reference.lines, outcome.lines, lambda ref: BOX_TOLERANCE_PX)
    chars = alike = found = 0
    for image, ref_lines in reference.lines.items():
        c, a, f = read_agreement(ref_lines, outcome.lines[image], profile_tolerance)
        chars, alike, found = chars + c, alike + a, found + f
    per_image = {n: npu_ms(p) for n, p in outcome.pixels.items()}
    mean_all = statistics.mean(per_image.values())
    mean_photo = statistics.mean(per_image[n] for n in photos)
    px = {
        role: statistics.mean(p[role] for p in outcome.pixels.values()) / 1e3
        for role in ("det", "cls", "rec")
    }
    return (
        f"{name:10s} {100 * exact / total:5.1f}% {100 * strict / total:5.1f}%"
        f" {100 * found / total:5.1f}% {100 * alike / chars:5.1f}% {extra:4d}"
        f" {px['det']:6.0f} {px['cls']:4.0f} {px['rec']:4.0f} {mean_all:6.1f} {mean_photo:6.1f}"
        f" {max(per_image.values()):6.1f} {NPU_CORES * 1000 / mean_all:5.1f}"
        f" {NPU_CORES * 1000 / mean_photo:5.1f} {outcome.seconds:5.1f}"
    )


def photo_costs(name: str, profile: ShapeProfile | None) -> str:
    """Detector canvas and ESTIMATED det ms for common photo sizes (no inference)."""
    cells = []
    for height, width in PHOTO_SIZES.values():
        if profile is None:  # the dynamic recipe: short side 736 only when smaller
            canvas = det_input_size(height, width)
            tiles = 1
        else:
            size = det_input_size(height, width)
            layout = plan_layout(size, (height, width), profile.det_canvases)
            canvas, tiles = layout.canvas, len(layout.tiles)
        ms = tiles * DET_MS * canvas[0] * canvas[1] / DET_PX
        shown = f"{tiles}x" if tiles > 1 else ""
        cells.append(f"{shown}{canvas[0]}x{canvas[1]} {ms:4.0f}")
    return f"{name:10s} " + " ".join(f"{c:>15s}" for c in cells)


def rescaled(path: Path, scale: float) -> np.ndarray:
    """A shared image decoded as the service decodes it, then resized by ``scale`` (other sizes
    than the shared ones, e.g. 2000 px photos: the profile must not fit only these images)."""
    image = decode_image(path.read_bytes()).array
    if scale == 1:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", default="all")
    parser.add_argument("--detail", action="append", default=[], help="list misses of NAME")
    parser.add_argument("--model-dir", default=str(Settings.from_env().model_dir))
    parser.add_argument("--model", default="ppocrv4", choices=OCR_MODELS,
                        help="OCR generation (NPU times stay scaled from PP-OCRv4's figures: "
                             "benchmarks/ocr_npu_cost.py scales them per model)")
    parser.add_argument(
        "--scales", default="1", help="also run every image resized by these factors, e.g. 1,2.5"
    )
    args = parser.parse_args()
    model_dir = Path(args.model_dir)
    assert CANDIDATES[SHIPPED] == DEFAULT_PROFILE, "keep SHIPPED in step with DEFAULT_PROFILE"
    names = [*CANDIDATES, *NOISE] if args.candidates == "all" else args.candidates.split(",")
    images = [
        (f"{folder}/{p.name}{'' if scale == 1 else f'@{scale:g}'}", rescaled(p, scale))
        for scale in (float(f) for f in args.scales.split(","))
        for folder in ("ocr", "photos")
        for p in sorted((TESTDATA / folder).iterdir())
    ]
    photos = [n for n, _ in images if n.startswith("photos/")]  # at every scale
    family = family_name(args.model)
    reference = run_candidate(model_dir, None, images, family=family)
    port = ShapeProfile(((480, 480),), (320,))
    outcomes = {"dynamic": reference}
    for name in names:
        if name in NOISE:
            outcomes[name] = run_candidate(model_dir, None, images, tweak=NOISE[name],
                                           family=family)
        else:
            profile = port if name == "rknn-port" else CANDIDATES[name]
            outcomes[name] = run_candidate(model_dir, profile, images, port=name == "rknn-port",
                                           family=family)
    lines = sum(len(v) for v in reference.lines.values())
    print(f"{len(images)} images ({len(photos)} photos), {lines} dynamic-pipeline lines")
    print("exact: same text, box within max(2 px, 20% line height); 2px: same at 2 px; found: box")
    print("only; chars: characters read alike. kpx: mean thousands of pixels fed per image.")
    print("ms (per image, per photo, worst image) and img/s, pho/s (3 cores): NPU ESTIMATES")
    print(
        f"{'candidate':10s} {'exact':>6s} {'2px':>6s} {'found':>6s} {'chars':>6s} {'extra':>4s}"
        f" {'det':>6s} {'cls':>4s} {'rec':>4s} {'ms/img':>6s} {'ms/pho':>6s} {'msmax':>6s}"
        f" {'img/s':>5s} {'pho/s':>5s} {'cpu s':>5s}"
    )
    for name, outcome in outcomes.items():
        print(summarise(name, outcome, reference, photos))
    print("\ndetector canvas and ESTIMATED det ms per photo as the service receives them:")
    print(f"{'candidate':10s} " + " ".join(f"{k:>15s}" for k in PHOTO_SIZES))
    print(photo_costs("dynamic", None))
    for name in names:
        if name in CANDIDATES and name != "rknn-port":
            print(photo_costs(name, CANDIDATES[name]))
    print("\nshapes to convert (the toolkit's memory and the .rknn size grow with the pixels):")
    for name in names:
        profile = CANDIDATES.get(name)
        if profile is not None:
            mpx = sum(h * w for h, w in profile.det_canvases) / 1e6
            print(f"{name:10s} det {len(profile.det_canvases):3d} shapes {mpx:6.1f} Mpx,"
                  f" rec {len(profile.rec_widths):3d} widths")
    for name in names:
        if name in CANDIDATES and CANDIDATES[name] is not None:
            allowed = CANDIDATES[name].shapes()
            stray = {
                role: sorted(s for s in outcomes[name].shapes[role] if list(s) not in allowed[role])
                for role in allowed
            }
            if any(stray.values()):
                print(f"{name}: fed shapes outside its profile: {stray}")
    for name in args.detail:
        *_, notes = agreement(reference.lines, outcomes[name].lines, profile_tolerance)
        print(f"\n{name}: images with differences")
        for note in notes:
            print("  " + note)


if __name__ == "__main__":
    main()
