"""Where an image goes on the detector's static canvases: one canvas, or tiles of one.

The detector's reading shifts with the input scale (RapidOCR's own recipe at short side 704 or
768 instead of 736 changes a quarter of its lines), so the static profile keeps the dynamic
recipe's scale whenever it can: the image is resized exactly as the dynamic pipeline resizes it,
then either placed on the smallest canvas that holds it without much padding (black, at the
right and bottom), or cut into overlapping tiles of one canvas whose probability maps are
stitched back together along seams away from both tiles' borders, each in the emptiest row or
column of the half tile before it (between words or lines: a word cut at a seam can come out as
two boxes, since neither tile sees all of it). Only an image that would need more than ``MAX_TILES``
tiles is scaled down into one canvas instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Ink = tuple[np.ndarray, np.ndarray]  # per row, per column
SEAM_MARGIN = 64  # a seam keeps this far from the border of both tiles it joins
MAX_PADDING = 1.25  # a holding canvas this many times the image's area or less is used whole
MAX_TILES = 8  # tiles per image at most; bounds the NPU time of extreme strips


@dataclass(frozen=True)
class Tile:
    """One detector call: the canvas holds the resized image from (``y``, ``x``); its map
    supplies rows ``keep[0]:keep[1]`` and columns ``keep[2]:keep[3]`` of the resized image."""

    y: int
    x: int
    keep: tuple[int, int, int, int]


@dataclass(frozen=True)
class Layout:
    """The canvas shape fed, the size the image is resized to, and the tiles covering it."""

    canvas: tuple[int, int]
    size: tuple[int, int]
    tiles: tuple[Tile, ...]


def spans(length: int, tile: int, ink: np.ndarray | None = None) -> list[tuple[int, int, int]]:
    """(start, keep_from, keep_to) of tiles covering ``length``, left to right: each seam lies
    at the least ``ink`` (per row or column) in the second half of the tile before it, and the
    next tile starts ``SEAM_MARGIN`` before it. Without ``ink`` tiles go as far as they can."""
    if length <= tile:
        return [(0, 0, length)]
    out, start, keep_from = [], 0, 0
    while start + tile < length:
        low, high = start + tile // 2, start + tile - SEAM_MARGIN
        seam = high if ink is None else low + int(np.argmin(ink[low:high]))
        out.append((start, keep_from, seam))
        start, keep_from = seam - SEAM_MARGIN, seam
    out.append((length - tile, keep_from, length))
    return out


def tiled(
    size: tuple[int, int], canvas: tuple[int, int], ink: Ink | None = None
) -> tuple[Tile, ...]:
    """The tiles of ``canvas`` covering an image of ``size`` (height, width)."""
    rows = spans(size[0], canvas[0], None if ink is None else ink[0])
    cols = spans(size[1], canvas[1], None if ink is None else ink[1])
    return tuple(Tile(y, x, (y0, y1, x0, x1)) for y, y0, y1 in rows for x, x0, x1 in cols)


def ink_profiles(image: np.ndarray) -> Ink:
    """Per row and per column of an RGB image: grey-level range, smoothed over 9 pixels. Low
    between lines and between words, whatever the colours."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    box = np.ones(9, np.float32) / 9
    rows = grey.max(axis=1).astype(np.float32) - grey.min(axis=1)
    cols = grey.max(axis=0).astype(np.float32) - grey.min(axis=0)
    return np.convolve(rows, box, mode="same"), np.convolve(cols, box, mode="same")


def plan_layout(
    size: tuple[int, int],
    image: tuple[int, int],
    canvases: Sequence[tuple[int, int]],
    resized: np.ndarray | None = None,
) -> Layout:
    """Layout for an image of ``image`` pixels that the dynamic recipe resizes to ``size``.

    ``resized``: the image at ``size``, whose ``ink_profiles`` lay the seams between tiles
    (measured only when tiles are needed; without it tiles go as far as they can).
    Preference: the smallest canvas holding ``size`` within ``MAX_PADDING``; else the tiling
    with the fewest tiles (then the fewest pixels); else, beyond ``MAX_TILES``, the image
    scaled down with its aspect kept into the canvas where it comes out largest.
    """
    area = size[0] * size[1]
    holding = [
        (h * w, (h, w))
        for h, w in canvases
        if h >= size[0] and w >= size[1] and h * w <= MAX_PADDING * area
    ]
    if holding:
        canvas = min(holding)[1]
        return Layout(canvas, size, tiled(size, canvas))
    ink = None if resized is None else ink_profiles(resized)
    tilings = [
        (len(tiles), len(tiles) * h * w, (h, w), tiles)
        for h, w in canvases
        if min(h, w) > 4 * SEAM_MARGIN
        for tiles in [tiled(size, (h, w), ink)]
    ]
    best = min(tilings, default=None, key=lambda t: t[:2])
    if best is not None and best[0] <= MAX_TILES:
        return Layout(best[2], size, best[3])
    scales = [min(h / image[0], w / image[1], size[0] / image[0]) for h, w in canvases]
    top = max(scales)
    _, canvas, scale = min(
        (h * w, (h, w), s) for (h, w), s in zip(canvases, scales) if s >= 0.99 * top
    )
    fitted = (
        min(canvas[0], max(1, round(image[0] * scale))),
        min(canvas[1], max(1, round(image[1] * scale))),
    )
    return Layout(canvas, fitted, tiled(fitted, canvas))
