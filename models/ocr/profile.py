"""Static input shapes for OCR on an NPU: the fixed set of tensors the models are built for.

RKNN runs only the input shapes a model was converted with, so the NPU pipeline cannot feed the
detector "short side 736, rounded to 32" or the recogniser "48 high, as wide as the widest line
of the batch". Instead it uses a profile: a few detector canvases (the image is scaled with its
aspect kept and padded, never stretched), a few recogniser widths (a line is padded to the
narrowest width that holds it; longer lines are split), the classifier's own 48x192, and a fixed
batch per model. The set below was chosen by measurement (benchmarks/ocr_npu_profile.py,
BENCHMARKS.md): text agreement with the dynamic pipeline on the shared images against the
pixels each photo pushes through the NPU.

The profile is written into the OCR manifest (``shapes`` of det/cls/rec), so the RKNN converter
builds exactly these shapes and the runtime reads them back from the same file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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


# The shipped profile (see the module docstring and BENCHMARKS.md for how it was chosen).
DEFAULT_PROFILE = ShapeProfile(
    det_canvases=((736, 736), (736, 992), (992, 736), (736, 1312), (1312, 736)),
    rec_widths=(320, 480, 640, 960, 1280),
)
