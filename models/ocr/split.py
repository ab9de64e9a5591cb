"""Cutting text lines that are wider than the widest static recogniser input.

With static shapes a line longer than the widest bucket would have to be squeezed, and a
recogniser fed characters two or three times narrower than it was trained on misreads them.
So such a line is cut into pieces that fit, each cut placed in the emptiest columns of its
window (the gap between two characters or words), recognised piece by piece and joined.
"""

from __future__ import annotations

import unicodedata

import cv2
import numpy as np

from models.ocr.batch import resized_width

SPACE_GAP = 0.25  # a blank run at a cut this wide (x crop height) may have been a word space


def column_ink(crop: np.ndarray) -> np.ndarray:
    """Per-column contrast (max - min of the grey level), smoothed over about 1/8 line height:
    low in gaps between characters whatever the text and background colours."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
    ink = grey.max(axis=0) - grey.min(axis=0)
    window = max(1, crop.shape[0] // 8)
    return np.convolve(ink, np.ones(window, np.float32) / window, mode="same")


def cut_points(crop: np.ndarray, height: int, max_width: int) -> list[int]:
    """Columns where to cut ``crop`` so no piece is wider than ``max_width`` at ``height``.

    Each cut is the emptiest column in the last half of the longest piece that fits.
    """
    if resized_width(crop, height) <= max_width:
        return []
    limit = max(2, int(max_width * crop.shape[0] / height))  # max piece width in crop pixels
    ink = column_ink(crop)
    cuts, start, total = [], 0, crop.shape[1]
    while total - start > limit:
        low = start + limit // 2
        cut = low + int(np.argmin(ink[low : start + limit]))
        cuts.append(cut)
        start = cut
    return cuts


def blank_run(crop: np.ndarray, cut: int) -> int:
    """Width of the run of near-empty columns around ``cut``."""
    ink = column_ink(crop)
    quiet = ink <= ink[cut] + 0.1 * max(float(ink.max() - ink[cut]), 1.0)
    left = cut
    while left > 0 and quiet[left - 1]:
        left -= 1
    right = cut
    while right < len(quiet) - 1 and quiet[right + 1]:
        right += 1
    return right - left + 1


def split_line(
    crop: np.ndarray, height: int, max_width: int
) -> tuple[list[np.ndarray], list[bool]]:
    """Pieces of ``crop`` that fit ``max_width``, and for each cut whether it fell in a gap wide
    enough to have been a word space (see ``join_texts``)."""
    cuts = cut_points(crop, height, max_width)
    bounds = [0, *cuts, crop.shape[1]]
    pieces = [np.ascontiguousarray(crop[:, a:b]) for a, b in zip(bounds, bounds[1:])]
    return pieces, [blank_run(crop, cut) >= SPACE_GAP * crop.shape[0] for cut in cuts]


def join_texts(texts: list[str], gaps: list[bool]) -> str:
    """Texts of consecutive pieces as one line. A space goes where a cut fell in a wide gap
    between two narrow (e.g. Latin) characters; CJK text has no spaces, and its full-width
    punctuation leaves blanks as wide as a Latin word space."""
    line = ""
    gap = False
    for k, text in enumerate(texts):
        if text:
            wide = bool(line) and (_is_wide(line[-1]) or _is_wide(text[0]))
            line += (" " if line and gap and not wide and not line.endswith(" ") else "") + text
            gap = False
        if k < len(gaps):
            gap = gap or gaps[k]
    return line


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
