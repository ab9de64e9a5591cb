"""Shared helpers for the OCR tests: one loaded pipeline per session, and reference matching."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.ocr.pipeline import OcrLine, OcrPipeline

BOX_TOLERANCE_PX = 2.0


@functools.cache
def load_pipeline(model_dir: Path) -> OcrPipeline:
    """Loading costs seconds; every OCR test module shares one pipeline."""
    return OcrPipeline.load(model_dir)


def corner_distance(box: Sequence[Sequence[float]], other: Sequence[Sequence[float]]) -> float:
    """Largest per-coordinate difference between two 4-corner boxes."""
    return float(np.abs(np.asarray(box, dtype=float) - np.asarray(other, dtype=float)).max())


def match_lines(reference: list[dict], ours: list[OcrLine]) -> tuple[int, list[dict], int]:
    """Pair each reference line with our unused line of identical text and nearest box.

    Returns (matched count, unmatched reference lines, our lines left over).
    """
    used: set[int] = set()
    missed = []
    for ref in reference:
        candidates = [
            (corner_distance(line.box, ref["box"]), k)
            for k, line in enumerate(ours)
            if k not in used and line.text == ref["text"]
        ]
        best = min(candidates, default=None)
        if best is not None and best[0] <= BOX_TOLERANCE_PX:
            used.add(best[1])
        else:
            missed.append(ref)
    return len(reference) - len(missed), missed, len(ours) - len(used)
