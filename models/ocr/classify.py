"""Text direction: the PP-OCR mobile angle classifier turns upside-down crops the right way up.

Photos and scans often hold text rotated by 180 degrees; the recogniser only reads upright text.
"""

from __future__ import annotations

import cv2
import numpy as np

from models.manifest import ModelSpec
from models.ocr.batch import by_aspect, padded_batch
from models.runtime import Session


class AngleClassifier:
    """Rotates crops read as '180' with confidence above ``thresh``."""

    def __init__(
        self,
        session: Session,
        spec: ModelSpec,
        batch: int = 6,
        thresh: float = 0.9,
        size: tuple[int, int] = (48, 192),
    ) -> None:
        self.session = session
        self.spec = spec
        self.batch = batch
        self.thresh = thresh
        self.height, self.width = size

    def __call__(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Same crops, the upside-down ones turned by 180 degrees."""
        out = list(crops)
        order = by_aspect(crops)
        for start in range(0, len(order), self.batch):
            chunk = order[start : start + self.batch]
            batch = padded_batch([crops[i] for i in chunk], self.spec, self.height, self.width)
            probs = self.session.run({self.spec.input_name: batch})[0]
            for i, row in zip(chunk, probs):
                label = int(row.argmax())
                if label == 1 and row[label] > self.thresh:  # labels: 0 = upright, 1 = 180
                    out[i] = cv2.rotate(crops[i], cv2.ROTATE_180)
        return out
