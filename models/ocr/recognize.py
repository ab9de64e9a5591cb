"""Text recognition: the PP-OCR recognisers with greedy CTC decoding over their character list.

Dynamic mode pads each crop exactly as the reference does (groups of 6 in aspect order, as wide as
the widest of the group, the widest squeezed into it by its rounding), because the padded width
changes what the network reads; static mode resizes each line exactly so too and pads it on to
the narrowest profile bucket holding that width, and cuts lines wider than the widest bucket into
pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.manifest import ModelSpec
from models.ocr.batch import (
    bucket_for,
    padded_batch,
    reference_widths,
    resized_width,
    same_width_runs,
)
from models.ocr.split import join_texts, split_line
from models.preprocess import PixelTable
from models.runtime import Session

BASE_WIDTH = 320  # the recogniser's nominal 48x320 input: batches are never narrower


def load_charset(metadata: dict[str, str], dictionary: bytes | None = None) -> list[str]:
    """Class index -> character: CTC blank at 0, the list, then a space at the end.

    The list is the recogniser's embedded ``character`` metadata, or ``dictionary`` (a PaddleOCR
    dict file, one character a line) for a model shipped without it, split as RapidOCR reads
    such files: at ``\\n`` only, each line stripped of its line break (``\\r\\n`` too).
    """
    if dictionary is not None:
        lines = dictionary.decode("utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final line break ends the last entry
        return ["blank", *(line.strip("\n").strip("\r\n") for line in lines), " "]
    if "character" not in metadata:
        raise ValueError("recogniser model has no 'character' metadata: wrong model file?")
    return ["blank", *metadata["character"].splitlines(), " "]


def ctc_greedy_decode(
    probs: np.ndarray, charset: list[str], digits: int | None = None
) -> list[tuple[str, float]]:
    """(N, T, C) softmax -> (text, mean probability of the kept steps) per row.

    Best class per step; repeats collapse and blanks (class 0) drop. No kept step: ("", 0.0).
    ``digits``: each step's probability and the mean rounded so (RapidOCR 3.10 does).
    """
    best = probs.argmax(axis=2)
    best_prob = probs.max(axis=2)
    results = []
    for ids, conf in zip(best, best_prob):
        keep = ids != 0
        keep[1:] &= ids[1:] != ids[:-1]
        text = "".join(charset[i] for i in ids[keep])
        if not keep.any():
            score = 0.0
        elif digits is None:
            score = float(np.mean(conf[keep], dtype=np.float64))
        else:
            rounded = [round(value, digits) for value in conf[keep].tolist()]
            score = float(np.round(np.mean(rounded), digits))
        results.append((text, score))
    return results


class TextRecognizer:
    """Reads upright RGB text-line crops.

    ``group`` is the reference's batch (it decides padded widths in dynamic mode); ``batch`` is
    how many crops go into one call (any number in dynamic mode, results do not depend on it; the
    fixed batch in static mode, unused slots zero). ``widths`` switches to static mode.
    """

    def __init__(
        self,
        session: Session,
        spec: ModelSpec,
        charset: list[str],
        group: int = 6,
        height: int = 48,
        *,
        batch: int = 1,
        widths: Sequence[int] | None = None,
        score_digits: int | None = None,
    ) -> None:
        self.session = session
        self.spec = spec
        self.charset = charset
        self.group = group
        self.height = height
        self.batch = batch
        self.widths = None if widths is None else tuple(sorted(widths))
        self.score_digits = score_digits
        self.table = PixelTable(spec.preprocess)

    def __call__(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, score) for each crop, in input order."""
        widths = reference_widths(crops, self.height, BASE_WIDTH, self.group)
        if self.widths is None:
            return self.read(crops, widths)
        pieces, owners, gaps, buckets, fits = [], [], [], [], []
        for k, crop in enumerate(crops):
            parts, cut_gaps = split_line(crop, self.height, self.widths[-1])
            for part in parts:  # a whole line is squeezed to the reference's width, as there
                fit = widths[k] if len(parts) == 1 else resized_width(part, self.height)
                buckets.append(bucket_for(fit, self.widths))
                fits.append(fit)
            pieces += parts
            owners += [k] * len(parts)
            gaps.append(cut_gaps)
        return join_pieces(self.read(pieces, buckets, fits), owners, gaps)

    def read(
        self, crops: list[np.ndarray], widths: list[int], fits: list[int] | None = None
    ) -> list[tuple[str, float]]:
        """Each crop padded to its given width, ``batch`` crops of equal width per call; a crop
        is squeezed to its ``fits`` entry (default: the padded width) when wider."""
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        fixed = self.batch if self.widths is not None else 0
        for run in same_width_runs(widths, self.batch):
            chunk = [crops[i] for i in run]
            caps = None if fits is None else [fits[i] for i in run]
            batch = padded_batch(chunk, self.table, self.height, widths[run[0]], fixed, caps)
            probs = self.session.run({self.spec.input_name: batch})[0]
            lines = ctc_greedy_decode(probs[: len(run)], self.charset, self.score_digits)
            for i, line in zip(run, lines):
                results[i] = line
        return results


def join_pieces(
    read: list[tuple[str, float]], owners: list[int], gaps: list[list[bool]]
) -> list[tuple[str, float]]:
    """Per line, its pieces' texts joined (``join_texts``) and their scores averaged weighted by
    characters read; a line of one piece keeps its result as is."""
    results = []
    for line, line_gaps in enumerate(gaps):
        parts = [r for r, owner in zip(read, owners) if owner == line]
        if len(parts) == 1:
            results.append(parts[0])
            continue
        weights = [max(len(text), 1) for text, _ in parts]
        score = sum(w * s for w, (_, s) in zip(weights, parts)) / sum(weights)
        results.append((join_texts([text for text, _ in parts], line_gaps), score))
    return results
