"""Text recognition: PP-OCRv4 CRNN with greedy CTC decoding over the model's own character list.

Crops are batched by aspect ratio and padded to the widest in the batch, exactly as the reference
does, because the padded width changes what the network reads at the end of a line.
"""

from __future__ import annotations

import numpy as np

from models.manifest import ModelSpec
from models.ocr.batch import by_aspect, padded_batch
from models.runtime import Session

BASE_WIDTH = 320  # the recogniser's nominal 48x320 input: batches are never narrower


def load_charset(metadata: dict[str, str]) -> list[str]:
    """Class index -> character: CTC blank at 0, the embedded list, then a space at the end."""
    if "character" not in metadata:
        raise ValueError("recogniser model has no 'character' metadata: wrong model file?")
    return ["blank", *metadata["character"].splitlines(), " "]


def ctc_greedy_decode(probs: np.ndarray, charset: list[str]) -> list[tuple[str, float]]:
    """(N, T, C) softmax -> (text, mean probability of the kept steps) per row.

    Best class per step; repeats collapse and blanks (class 0) drop. No kept step: ("", 0.0).
    """
    best = probs.argmax(axis=2)
    best_prob = probs.max(axis=2)
    results = []
    for ids, conf in zip(best, best_prob):
        keep = ids != 0
        keep[1:] &= ids[1:] != ids[:-1]
        text = "".join(charset[i] for i in ids[keep])
        score = float(np.mean(conf[keep], dtype=np.float64)) if keep.any() else 0.0
        results.append((text, score))
    return results


class TextRecognizer:
    """Reads upright text-line crops (already in the model's channel order)."""

    def __init__(
        self,
        session: Session,
        spec: ModelSpec,
        charset: list[str],
        batch: int = 6,
        height: int = 48,
    ) -> None:
        self.session = session
        self.spec = spec
        self.charset = charset
        self.batch = batch
        self.height = height

    def __call__(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, score) for each crop, in input order."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        order = by_aspect(crops)
        for start in range(0, len(order), self.batch):
            chunk = [crops[i] for i in order[start : start + self.batch]]
            ratio = max([BASE_WIDTH / self.height] + [c.shape[1] / c.shape[0] for c in chunk])
            batch = padded_batch(chunk, self.spec, self.height, int(self.height * ratio))
            probs = self.session.run({self.spec.input_name: batch})[0]
            decoded = ctc_greedy_decode(probs, self.charset)
            for i, line in zip(order[start : start + self.batch], decoded):
                results[i] = line
        return results
