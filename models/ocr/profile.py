"""Static input shapes for OCR on an NPU: the fixed set of tensors the models are built for.

RKNN runs only the input shapes a model was converted with, so the NPU pipeline cannot feed the
detector "short side 736, rounded to 32" or the recogniser "48 high, as wide as the widest line
of the batch" for every image. PP-OCRv4 reads differently at a slightly different scale or
padding, so the profile holds the dynamic recipe's own sizes for the images that are common: the
detector canvases are every 736-high size up to 736x1984 (both ways), the sizes of 2000 px and
1440 px photos of common aspects, and strip canvases up to 736x6016 each 1.2 times the last
(panoramas and text strips, padded a little); other images are padded a little or tiled at their
dynamic size (models/ocr/layout.py). The recogniser gets widths every 16 px up to 1280 and every
32 px up to 2048 (a line is resized as the dynamic pipeline resizes it and padded to the
narrowest width holding it; longer lines are split), the classifier its own 48x192, each model
a fixed batch. The set was chosen by measurement (benchmarks/ocr_npu_profile.py, BENCHMARKS.md):
text agreement with the dynamic pipeline on the shared images against the pixels each photo
pushes through the NPU.

The profile is written into the OCR manifest (``shapes`` of det/cls/rec), so the RKNN converter
builds exactly these shapes (the detector's in parts: models/runtime/parts.py) and the runtime
reads them back from the same file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from models.ocr.detect import det_input_size


class ProfileError(ValueError):
    """Manifest shapes that do not form a usable OCR profile."""


@dataclass(frozen=True)
class ShapeProfile:
    """Every input shape the OCR models may receive in static mode.

    ``det_canvases`` are (height, width) in multiples of 32 (the detector downsamples by 32);
    ``rec_widths`` ascend; batches are the fixed leading dimension of each model's input.
    """

    det_canvases: tuple[tuple[int, int], ...]
    rec_widths: tuple[int, ...]
    rec_height: int = 48
    cls_size: tuple[int, int] = (48, 192)
    det_batch: int = 1
    cls_batch: int = 1
    rec_batch: int = 1

    def __post_init__(self) -> None:
        if not self.det_canvases or not self.rec_widths:
            raise ProfileError("a profile needs at least one detector canvas and one rec width")
        if any(h % 32 or w % 32 or h <= 0 or w <= 0 for h, w in self.det_canvases):
            raise ProfileError(f"detector canvases must be multiples of 32: {self.det_canvases}")
        if list(self.rec_widths) != sorted(set(self.rec_widths)) or self.rec_widths[0] <= 0:
            raise ProfileError(f"rec widths must be positive and ascending: {self.rec_widths}")
        if min(self.det_batch, self.cls_batch, self.rec_batch, self.rec_height) <= 0:
            raise ProfileError("batches and the rec height must be positive")

    def shapes(self) -> dict[str, list[list[int]]]:
        """NCHW input shapes per role, as the manifest stores them."""
        return {
            "det": [[self.det_batch, 3, h, w] for h, w in self.det_canvases],
            "cls": [[self.cls_batch, 3, *self.cls_size]],
            "rec": [[self.rec_batch, 3, self.rec_height, w] for w in self.rec_widths],
        }

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, Sequence[Sequence[int]] | None]) -> ShapeProfile:
        """Read a profile back from per-role manifest shapes; refuse what the pipeline can't
        feed (mixed batches, several classifier sizes, rec shapes of different heights)."""
        try:
            det = [tuple(int(d) for d in s) for s in shapes["det"] or ()]
            rec = [tuple(int(d) for d in s) for s in shapes["rec"] or ()]
            cls_shapes = [tuple(int(d) for d in s) for s in shapes["cls"] or ()]
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"OCR shapes {dict(shapes)!r} are malformed ({exc!r})") from exc
        if not det or not rec or len(cls_shapes) != 1:
            raise ProfileError(f"OCR shapes need det, rec and exactly one cls shape: {shapes!r}")
        if any(len(s) != 4 or s[1] != 3 for s in (*det, *rec, *cls_shapes)):
            raise ProfileError(f"OCR shapes must be N x 3 x H x W: {shapes!r}")
        if len({s[0] for s in det}) != 1 or len({(s[0], s[2]) for s in rec}) != 1:
            raise ProfileError(f"one batch per model and one rec height: {shapes!r}")
        (cls_shape,) = cls_shapes
        return cls(
            det_canvases=tuple((s[2], s[3]) for s in det),
            rec_widths=tuple(sorted(s[3] for s in rec)),
            rec_height=rec[0][2],
            cls_size=(cls_shape[2], cls_shape[3]),
            det_batch=det[0][0],
            cls_batch=cls_shape[0],
            rec_batch=rec[0][0],
        )


def canvas_ladder(longest: int, step: int = 32, short: int = 736) -> tuple[tuple[int, int], ...]:
    """Canvases ``short`` by ``short``..``longest`` in both orientations: at step 32, exactly the
    dynamic recipe's sizes for every image under 736 px on its short side up to that aspect."""
    sides = range(short, longest + 1, step)
    return tuple(sorted({(short, side) for side in sides} | {(side, short) for side in sides}))


def photo_canvases(
    long_sides: Sequence[int] = (2000, 1440),
    aspects: Sequence[float] = (1.0, 4 / 3, 3 / 2, 16 / 9, 13 / 6),
) -> tuple[tuple[int, int], ...]:
    """The dynamic recipe's sizes for photos of common aspects (square, 4:3, 3:2, 16:9, phone
    screens) at common long sides (2000: what the service hands over; 1440: Immich previews),
    both orientations."""
    sizes = set()
    for long_side in long_sides:
        for aspect in aspects:
            height, width = det_input_size(round(long_side / aspect), long_side)
            sizes |= {(height, width), (width, height)}
    return tuple(sorted(sizes))


def strip_canvases(
    longest: int = 6016, factor: float = 1.2, widest: int = 1984, short: int = 736
) -> tuple[tuple[int, int], ...]:
    """Canvases ``short`` high beyond the ladder's ``widest``, each ``factor`` times the last
    (rounded up to 32) up to ``longest``, both orientations: strips, panoramas and banners at
    their dynamic size, padded by less than ``factor`` (measured harmless, unlike cutting them
    into tiles or a coarser ladder for ordinary images: BENCHMARKS.md)."""
    sides, side = [], widest
    while side < longest:
        side = math.ceil(side * factor / 32) * 32
        sides.append(side)
    return tuple(sorted({(short, s) for s in sides} | {(s, short) for s in sides}))


def rec_ladder(step: int = 32, widest: int = 1280, narrowest: int = 320) -> tuple[int, ...]:
    """Recogniser widths ``narrowest``..``widest`` every ``step`` px (320: the nominal width)."""
    return tuple(range(narrowest, widest + 1, step))


def merged(*canvas_sets: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Several canvas sets as one, sorted, each canvas once."""
    return tuple(sorted(set().union(*canvas_sets)))


# The shipped profile (see the module docstring and BENCHMARKS.md for how it was chosen).
DEFAULT_PROFILE = ShapeProfile(
    det_canvases=merged(canvas_ladder(1984), photo_canvases(), strip_canvases()),
    rec_widths=rec_ladder(16) + rec_ladder(32, 2048, 1312),
)
