"""Text direction: the PP-OCR mobile angle classifier turns upside-down crops the right way up.

Photos and scans often hold text rotated by 180 degrees; the recogniser only reads upright text.
Every crop is padded to the classifier's fixed 48x192, so its verdict does not depend on which
crops share a call: the batch size is a speed setting only (fixed on static-shape backends).

The reference squeezes a long line into 48x192 whole: a 100:1 line becomes a smear the network
judges at random (a 2000 px line of upright text read as "180" with 0.95). The static pipeline,
which owes RapidOCR no bit-exactness, judges a line longer than ``WINDOWS_FROM`` times the input
aspect by up to three windows of the input's own aspect spread along it, and averages them.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.manifest import ModelSpec
from models.ocr.batch import padded_batch
from models.preprocess import PixelTable
from models.runtime import Session

WINDOWS_FROM = 2.0  # lines wider than this many classifier inputs are judged by windows
MAX_WINDOWS = 3


class AngleClassifier:
    """Rotates crops read as '180' with confidence above ``thresh``.

    ``fixed``: pad every call to exactly ``batch`` crops (static-shape backends).
    """

    def __init__(
        self,
        session: Session,
        spec: ModelSpec,
        batch: int = 6,
        thresh: float = 0.9,
        size: tuple[int, int] = (48, 192),
        *,
        fixed: bool = False,
        windows: bool = False,
    ) -> None:
        self.session = session
        self.spec = spec
        self.batch = batch
        self.thresh = thresh
        self.height, self.width = size
        self.fixed = fixed
        self.windows = windows
        self.table = PixelTable(spec.preprocess)

    def __call__(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Same crops, the upside-down ones turned by 180 degrees."""
        views, owners = [], []
        for k, crop in enumerate(crops):
            parts = self.views(crop) if self.windows else [crop]
            views += parts
            owners += [k] * len(parts)
        probs = self.classify(views)
        out = list(crops)
        for k, crop in enumerate(crops):
            mine = probs[[i for i, owner in enumerate(owners) if owner == k]].mean(axis=0)
            label = int(mine.argmax())
            if label == 1 and mine[label] > self.thresh:  # labels: 0 = upright, 1 = 180
                out[k] = cv2.rotate(crop, cv2.ROTATE_180)
        return out

    def views(self, crop: np.ndarray) -> list[np.ndarray]:
        """The crop itself, or windows of the input's aspect along a long line."""
        height, width = crop.shape[:2]
        window = max(1, round(height * self.width / self.height))
        if width <= WINDOWS_FROM * window:
            return [crop]
        count = min(MAX_WINDOWS, width // window)
        starts = [round((i + 0.5) * width / count - window / 2) for i in range(count)]
        return [crop[:, max(0, a) : max(0, a) + window] for a in starts]

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, 2) probabilities [upright, 180] in ``batch`` sized calls."""
        size = self.batch if self.fixed else 0
        rows = []
        for start in range(0, len(crops), self.batch):
            chunk = crops[start : start + self.batch]
            batch = padded_batch(chunk, self.table, self.height, self.width, size)
            rows.append(self.session.run({self.spec.input_name: batch})[0][: len(chunk)])
        return np.concatenate(rows) if rows else np.zeros((0, 2), np.float32)
