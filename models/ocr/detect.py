"""Text detection: PP-OCR's DB detectors with RapidOCR's default resize and post-process (the
same in 1.4.4 and 3.10.0, so in every generation: models/ocr/recipe.py).

The network outputs a per-pixel text probability map; Differentiable Binarization (DB) turns it
into quadrilaterals: threshold, find connected regions, score each region's min-area box, grow the
box back to the full text extent (the network predicts shrunk text kernels) and scale to the image.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
import pyclipper

from models.manifest import ModelSpec
from models.ocr.layout import plan_layout
from models.preprocess import PixelTable
from models.runtime import Session


@dataclass(frozen=True)
class DbParams:
    """DB post-process settings (RapidOCR's defaults, 1.4.4 and 3.10.0 alike)."""

    thresh: float = 0.3  # pixel probability that counts as text
    box_thresh: float = 0.5  # mean probability a box needs to be kept
    unclip_ratio: float = 1.6  # how far to grow the shrunk kernel back out
    use_dilation: bool = True  # 2x2 dilation joins characters split by one pixel
    max_candidates: int = 1000
    min_size: int = 3  # shortest side in map pixels of a usable box


def round32(value: float) -> int:
    """Nearest multiple of 32 (the network downsamples by 32), never below 32."""
    return max(32, int(round(value / 32) * 32))


def det_input_size(
    height: int, width: int, limit_side_len: int = 736, max_long_side: int | None = None
) -> tuple[int, int]:
    """Canvas for the detector: short side brought up to ``limit_side_len``, sides rounded to 32.

    ``max_long_side`` (off by default, as in RapidOCR) stops the enlargement once the long side
    reaches it: an 11x65 px image otherwise becomes a 736x4416 canvas.
    """
    short = min(height, width)
    ratio = limit_side_len / short if short < limit_side_len else 1.0
    if max_long_side is not None and ratio > 1.0:
        ratio = max(1.0, min(ratio, max_long_side / max(height, width)))
    return round32(int(height * ratio)), round32(int(width * ratio))


def min_area_quad(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-area rectangle of ``points`` as [tl, tr, br, bl] float32, and its short side."""
    rect = cv2.minAreaRect(points)
    corners = cv2.boxPoints(rect)
    corners = corners[np.argsort(corners[:, 0], kind="stable")]
    left = corners[:2] if corners[1, 1] > corners[0, 1] else corners[1::-1]
    right = corners[2:] if corners[3, 1] > corners[2, 1] else corners[:1:-1]
    quad = np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)
    return quad, float(min(rect[1]))


def quad_score(prob: np.ndarray, quad: np.ndarray) -> float:
    """Mean probability inside the quad ('fast' mode: the box, not the exact contour)."""
    h, w = prob.shape
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x0, y0], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, shifted.reshape(1, -1, 2), 1)
    return float(cv2.mean(prob[y0 : y1 + 1, x0 : x1 + 1], mask)[0])


def unclip(quad: np.ndarray, ratio: float) -> np.ndarray:
    """Grow the quad by ``area * ratio / perimeter`` (DB's offset); (N, 2) int32, maybe empty."""
    pts = quad.astype(np.float64)
    x, y = pts[:, 0], pts[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    perimeter = float(np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1).sum())
    if perimeter <= 0:
        return np.zeros((0, 2), dtype=np.int32)
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(quad, pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)  # truncates to ints
    paths = offset.Execute(area * ratio / perimeter)
    if not paths:
        return np.zeros((0, 2), dtype=np.int32)
    return np.concatenate([np.asarray(p, dtype=np.int32).reshape(-1, 2) for p in paths])


def db_boxes(
    prob: np.ndarray, dest_h: float, dest_w: float, params: DbParams = DbParams()
) -> tuple[np.ndarray, np.ndarray]:
    """Probability map (H, W) -> quads (N, 4, 2) int32 in a dest_h x dest_w image, and scores."""
    h, w = prob.shape
    mask = (prob > params.thresh).astype(np.uint8)
    if params.use_dilation:
        mask = cv2.dilate(mask, np.ones((2, 2), dtype=np.uint8))
    contours, _ = cv2.findContours(mask * 255, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads, scores = [], []
    for contour in contours[: params.max_candidates]:
        quad, short = min_area_quad(contour)
        if short < params.min_size:
            continue
        score = quad_score(prob, quad)
        if score < params.box_thresh:
            continue
        grown = unclip(quad, params.unclip_ratio)
        if len(grown) == 0:
            continue
        quad, short = min_area_quad(grown)
        if short < params.min_size + 2:
            continue
        quad[:, 0] = np.clip(np.round(quad[:, 0] / w * dest_w), 0, dest_w)
        quad[:, 1] = np.clip(np.round(quad[:, 1] / h * dest_h), 0, dest_h)
        quads.append(quad.astype(np.int32))
        scores.append(score)
    return np.array(quads, dtype=np.int32).reshape(-1, 4, 2), np.array(scores, dtype=np.float32)


def order_clockwise(quad: np.ndarray) -> np.ndarray:
    """[tl, tr, br, bl]: two left-most points split by y, then the two right-most."""
    by_x = quad[np.argsort(quad[:, 0], kind="stable")]
    left = by_x[:2][np.argsort(by_x[:2, 1], kind="stable")]
    right = by_x[2:][np.argsort(by_x[2:, 1], kind="stable")]
    return np.array([left[0], right[0], right[1], left[1]], dtype=np.float32)


def tidy_boxes(
    quads: np.ndarray, scores: np.ndarray, height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Order corners, clamp them to whole pixels inside the image, drop boxes 3 px thin or less."""
    kept, kept_scores = [], []
    for quad, score in zip(quads, scores):
        quad = order_clockwise(quad)
        quad[:, 0] = np.trunc(np.clip(quad[:, 0], 0, width - 1))
        quad[:, 1] = np.trunc(np.clip(quad[:, 1], 0, height - 1))
        width_px = int(np.linalg.norm(quad[0] - quad[1]))
        height_px = int(np.linalg.norm(quad[0] - quad[3]))
        if width_px <= 3 or height_px <= 3:
            continue
        kept.append(quad)
        kept_scores.append(score)
    return np.array(kept, dtype=np.float32).reshape(-1, 4, 2), np.array(kept_scores, np.float32)


class TextDetector:
    """Runs the detector on an RGB image (the pixel table puts channels in the model's order).

    Dynamic mode (``canvases`` None) follows RapidOCR: one canvas per image, short side 736.
    Static mode keeps that size but feeds only ``canvases`` (padded, or tiles stitched, see
    models/ocr/layout.py), ``batch`` canvases per call.
    """

    def __init__(
        self,
        session: Session,
        spec: ModelSpec,
        limit_side_len: int = 736,
        params: DbParams = DbParams(),
        *,
        canvases: Sequence[tuple[int, int]] | None = None,
        batch: int = 1,
        max_long_side: int | None = None,
    ) -> None:
        self.session = session
        self.spec = spec
        self.limit_side_len = limit_side_len
        self.params = params
        self.canvases = None if canvases is None else tuple(canvases)
        self.batch = batch
        self.max_long_side = max_long_side
        self.table = PixelTable(spec.preprocess)

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """The detector's text probability map over ``image`` resized by the dynamic recipe
        (static mode: as far as the canvases allow, see models/ocr/layout.py)."""
        height, width = image.shape[:2]
        size = det_input_size(height, width, self.limit_side_len, self.max_long_side)
        resized = cv2.resize(image, (size[1], size[0]))
        if self.canvases is None:
            tensor = self.table(resized)[np.newaxis]
            return self.session.run({self.spec.input_name: tensor})[0][0, 0]
        layout = plan_layout(size, (height, width), self.canvases, resized)
        if layout.size != size:  # too many tiles: scaled down into one canvas
            resized = cv2.resize(image, (layout.size[1], layout.size[0]))
        prob = np.zeros(layout.size, dtype=np.float32)
        canvas_h, canvas_w = layout.canvas
        tensor = np.empty((self.batch, 3, canvas_h, canvas_w), dtype=np.float32)
        canvas = np.empty((canvas_h, canvas_w, 3), dtype=np.uint8)
        for start in range(0, len(layout.tiles), self.batch):
            tiles = layout.tiles[start : start + self.batch]
            for slot in range(self.batch):  # unused slots of a fixed batch: black canvases
                canvas[:] = 0
                if slot < len(tiles):
                    part = resized[tiles[slot].y : tiles[slot].y + canvas_h,
                                   tiles[slot].x : tiles[slot].x + canvas_w]
                    canvas[: part.shape[0], : part.shape[1]] = part
                self.table(canvas, out=tensor[slot])
            maps = self.session.run({self.spec.input_name: tensor})[0]
            for tile, out in zip(tiles, maps):
                y0, y1, x0, x1 = tile.keep
                prob[y0:y1, x0:x1] = out[0, y0 - tile.y : y1 - tile.y, x0 - tile.x : x1 - tile.x]
        return prob

    def __call__(
        self, image: np.ndarray, box_thresh: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Quads (N, 4, 2) float32 in ``image`` pixels, clockwise from top-left, and box scores."""
        height, width = image.shape[:2]
        prob = self.probabilities(image)
        params = self.params if box_thresh is None else replace(self.params, box_thresh=box_thresh)
        quads, scores = db_boxes(prob, height, width, params)
        return tidy_boxes(quads, scores, height, width)
