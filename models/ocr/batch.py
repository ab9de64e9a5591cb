"""Batching text-line crops for the classifier and the recogniser.

Crops are resized to the network height keeping their aspect, normalised, and left-aligned on a
zero canvas (mid-grey once normalised). What a crop is padded to matters to the recogniser (its
attention sees the padding: the same crop padded to 371 or 640 px can read differently), so the
padded width of every crop is decided first: RapidOCR's (groups of 6 in aspect order, each as
wide as its widest member, never under 320), or on static shapes the narrowest profile bucket
that holds RapidOCR's width, so the recogniser sees nearly what it sees in dynamic mode. How
many crops then share one call does not change any output, so that is chosen for speed alone
(see BENCHMARKS.md: on the CPU one crop per call is the fastest).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from models.preprocess import PixelTable


def resized_width(crop: np.ndarray, height: int) -> int:
    """Width of ``crop`` once scaled to ``height`` with its aspect kept."""
    h, w = crop.shape[:2]
    return math.ceil(height * (w / h))


def fit_height(crop: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Resize to ``height`` keeping the aspect, width capped at ``max_width`` (squeezed beyond)."""
    return cv2.resize(crop, (min(max_width, resized_width(crop, height)), height))


def by_aspect(crops: Sequence[np.ndarray]) -> np.ndarray:
    """Crop indices from narrowest to widest (numpy's default sort, as the reference batches)."""
    return np.argsort(np.array([c.shape[1] / float(c.shape[0]) for c in crops]))


def reference_widths(
    crops: Sequence[np.ndarray], height: int, base_width: int, group: int
) -> list[int]:
    """The padded width RapidOCR gives each crop: in aspect order, groups of ``group`` are
    padded to the widest member of the group, and never narrower than ``base_width``."""
    widths = [0] * len(crops)
    order = by_aspect(crops)
    for start in range(0, len(order), group):
        chunk = order[start : start + group]
        ratio = max([base_width / height] + [crops[i].shape[1] / crops[i].shape[0] for i in chunk])
        for i in chunk:
            widths[i] = int(height * ratio)
    return widths


def bucket_for(width: int, buckets: Sequence[int]) -> int:
    """The narrowest bucket at least ``width`` wide; the widest when none is."""
    return next((b for b in buckets if b >= width), buckets[-1])


def same_width_runs(widths: Sequence[int], size: int) -> Iterator[list[int]]:
    """Crop indices grouped by padded width (narrow first), in chunks of at most ``size``."""
    order = sorted(range(len(widths)), key=lambda i: (widths[i], i))
    start = 0
    while start < len(order):
        width = widths[order[start]]
        end = start
        while end < len(order) and end - start < size and widths[order[end]] == width:
            end += 1
        yield order[start:end]
        start = end


def padded_batch(
    crops: Sequence[np.ndarray],
    table: PixelTable,
    height: int,
    width: int,
    size: int = 0,
    fits: Sequence[int] | None = None,
) -> np.ndarray:
    """Normalise each RGB crop and left-align it on a zero canvas; ``size`` > len(crops) adds
    all-zero slots (a fixed batch on a static-shape backend). A crop is at most ``width`` wide
    once resized, or its ``fits`` entry when given (the reference's squeeze, kept on a wider
    static canvas)."""
    batch = np.zeros((max(size, len(crops)), 3, height, width), dtype=np.float32)
    for slot, crop in enumerate(crops):
        cap = width if fits is None else min(width, fits[slot])
        resized = fit_height(crop, height, cap)
        table(resized, out=batch[slot, :, :, : resized.shape[1]])
    return batch
