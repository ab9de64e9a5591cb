"""Batching text-line crops for the classifier and the recogniser, as the reference batches them.

Crops are resized to the network height keeping their aspect, normalised, and left-aligned on a
zero canvas (mid-grey once normalised); batches are formed in aspect order so similar widths
share a canvas.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from models.manifest import ModelSpec
from models.preprocess import normalize_chw


def fit_height(crop: np.ndarray, height: int, max_width: int) -> np.ndarray:
    """Resize to ``height`` keeping the aspect, width capped at ``max_width`` (squeezed beyond)."""
    h, w = crop.shape[:2]
    width = min(max_width, math.ceil(height * (w / h)))
    return cv2.resize(crop, (width, height))


def padded_batch(crops: list[np.ndarray], spec: ModelSpec, height: int, width: int) -> np.ndarray:
    """Normalise each crop and left-align it on a zero (mid-grey after normalising) canvas."""
    batch = np.zeros((len(crops), 3, height, width), dtype=np.float32)
    for slot, crop in enumerate(crops):
        chw = normalize_chw(fit_height(crop, height, width), spec.preprocess)
        batch[slot, :, :, : chw.shape[2]] = chw
    return batch


def by_aspect(crops: list[np.ndarray]) -> np.ndarray:
    """Crop indices from narrowest to widest (numpy's default sort, as the reference batches)."""
    return np.argsort(np.array([c.shape[1] / float(c.shape[0]) for c in crops]))
