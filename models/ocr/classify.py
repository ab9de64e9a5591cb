"""Text direction: the PP-OCR mobile angle classifier turns upside-down crops the right way up.

Photos and scans often hold text rotated by 180 degrees; the recogniser only reads upright text.
Every crop is padded to the classifier's fixed 48x192, so its verdict does not depend on which
crops share a call: the batch size is a speed setting only (fixed on static-shape backends).

Long lines are squeezed into 48x192 whole, as the reference does, in both modes: the static
profile's job is to read what the dynamic pipeline reads, so CPU and NPU users get the same text
(judging long lines by windows instead changed lines that the reference reads well).
"""

from __future__ import annotations

import cv2
import numpy as np

from models.manifest import ModelSpec
from models.ocr.batch import padded_batch
from models.preprocess import PixelTable
from models.runtime import Session


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
    ) -> None:
        self.session = session
        self.spec = spec
        self.batch = batch
        self.thresh = thresh
        self.height, self.width = size
        self.fixed = fixed
        self.table = PixelTable(spec.preprocess)

    def __call__(self, crops: list[np.ndarray]) -> list[np.ndarray]:
        """Same crops, the upside-down ones turned by 180 degrees."""
        probs = self.classify(crops)
        out = list(crops)
        for k, (crop, row) in enumerate(zip(crops, probs)):
            label = int(row.argmax())
            if label == 1 and row[label] > self.thresh:  # labels: 0 = upright, 1 = 180
                out[k] = cv2.rotate(crop, cv2.ROTATE_180)
        return out

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, 2) probabilities [upright, 180] in ``batch`` sized calls."""
        size = self.batch if self.fixed else 0
        rows = []
        for start in range(0, len(crops), self.batch):
            chunk = crops[start : start + self.batch]
            batch = padded_batch(chunk, self.table, self.height, self.width, size)
            rows.append(self.session.run({self.spec.input_name: batch})[0][: len(chunk)])
        return np.concatenate(rows) if rows else np.zeros((0, 2), np.float32)
