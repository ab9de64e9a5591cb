"""Image and box geometry around the OCR networks, following RapidOCR's top level.

Sizes are rounded to multiples of 32 before detection; very flat (and here also very tall) images
get black bands so the detector sees text at a usable scale; boxes are read top to bottom, then
left to right (``reading_order`` as RapidOCR 1.4.4 does it, ``line_order`` as 3.10.0 does:
models/ocr/recipe.py); each box is cut out with a perspective warp so slanted lines reach the
recogniser straight.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from models.ocr.detect import round32


@dataclass(frozen=True)
class Placement:
    """Canvas pixels to input pixels: ``((x - left) * scale_x, (y - top) * scale_y)``."""

    scale_x: float = 1.0
    scale_y: float = 1.0
    top: int = 0
    left: int = 0


def fit_sides(image: np.ndarray, max_side: int, min_side: int) -> tuple[np.ndarray, Placement]:
    """Shrink so the long side is about ``max_side``; enlarge so the short side is >= ``min_side``.

    Both sides are rounded to 32 (never to 0: RapidOCR fails on such strips). Enlarging a thin
    strip also caps its long side at ``max_side``, where RapidOCR would build a canvas of
    gigapixels; both cases lie outside what the reference can answer at all.
    """
    h, w = image.shape[:2]
    new_h, new_w = h, w
    if max(new_h, new_w) > max_side:
        ratio = max_side / max(new_h, new_w)
        new_h, new_w = round32(int(new_h * ratio)), round32(int(new_w * ratio))
    if min(new_h, new_w) < min_side:
        ratio = min_side / min(new_h, new_w)
        new_h = round32(int(min(new_h * ratio, max_side)))
        new_w = round32(int(min(new_w * ratio, max_side)))
    if (new_h, new_w) == (h, w):
        return image, Placement()
    resized = cv2.resize(image, (new_w, new_h))
    return resized, Placement(scale_x=w / new_w, scale_y=h / new_h)


def letterbox(
    image: np.ndarray, placement: Placement, min_height: int = 30, max_aspect: float = 8.0
) -> tuple[np.ndarray, Placement]:
    """Pad very flat images top and bottom with black to 4:1, as RapidOCR does, and (our
    addition) very tall ones left and right the same way.

    The detector scales the short side up to 736 px, so without the bands a strip 32 px wide and
    2000 px tall would become a 736x46000 canvas: gigabytes and a minute of CPU for one request.
    RapidOCR 1.4.4 only pads flat images; tall images over 8:1 are where we knowingly differ.
    """
    h, w = image.shape[:2]
    black = (0, 0, 0)
    if h <= min_height or w / h > max_aspect:
        pad = int(abs(max(int(w / max_aspect), min_height) * 2 - h) / 2)
        padded = cv2.copyMakeBorder(image, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=black)
        return padded, replace(placement, top=pad)
    if w <= min_height or h / w > max_aspect:
        pad = int(abs(max(int(h / max_aspect), min_height) * 2 - w) / 2)
        padded = cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=black)
        return padded, replace(placement, left=pad)
    return image, placement


def to_input_pixels(quads: np.ndarray, placement: Placement, height: int, width: int) -> np.ndarray:
    """Canvas quads (N, 4, 2) -> input image pixels, clamped to ``[0, width] x [0, height]``."""
    out = quads.astype(np.float32).copy()
    out[..., 0] -= placement.left
    out[..., 1] -= placement.top
    out[..., 0] *= placement.scale_x
    out[..., 1] *= placement.scale_y
    np.clip(out[..., 0], 0, width, out=out[..., 0])
    np.clip(out[..., 1], 0, height, out=out[..., 1])
    return out


def reading_order(quads: np.ndarray, same_line_px: float = 10.0) -> list[int]:
    """Indices in RapidOCR 1.4.4's reading order: by top-left y then x, and boxes whose top-left
    corners lie within ``same_line_px`` vertically count as one line, read left to right.

    Like the reference, the second rule is one insertion pass over the first order, so it only
    moves a box leftwards past neighbours on its own line.
    """
    order = sorted(range(len(quads)), key=lambda i: (quads[i][0][1], quads[i][0][0]))
    for end in range(1, len(order)):
        pos = end
        while pos > 0:
            here, before = quads[order[pos]][0], quads[order[pos - 1]][0]
            if abs(here[1] - before[1]) >= same_line_px or here[0] >= before[0]:
                break
            order[pos - 1], order[pos] = order[pos], order[pos - 1]
            pos -= 1
    return order


def line_order(quads: np.ndarray, same_line_px: float = 10.0) -> list[int]:
    """Indices in RapidOCR 3.10's reading order: boxes sorted by top-left y; a box whose y is
    less than ``same_line_px`` below the previous one's joins its line (so a slanted line of
    words stays one line however far its ends drift); each line read by top-left x."""
    if len(quads) == 0:
        return []
    ys = quads[:, 0, 1]
    by_y = np.argsort(ys, kind="stable")
    line = np.concatenate([[0], np.cumsum(np.diff(ys[by_y]) >= same_line_px)])
    return [int(i) for i in by_y[np.lexsort((quads[by_y, 0, 0], line))]]


def crop_quad(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Warp the quad to an upright rectangle; stand tall results (h >= 1.5 w) on their side."""
    quad = quad.astype(np.float32)
    width = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    height = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(quad, target)
    crop = cv2.warpPerspective(
        image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC
    )
    if crop.shape[0] >= 1.5 * crop.shape[1]:
        crop = np.ascontiguousarray(np.rot90(crop))  # counter-clockwise: vertical text reads on
    return crop
