"""Two readings of one image, line by line: the one matcher behind the converter's self-check,
the OCR fidelity and profile tests and the OCR benchmarks.

A line of the reference is matched by an unused candidate line of identical text whose box is
nearest, within a tolerance (pixels per corner coordinate; a number, or a function of the
reference line for tolerances that grow with the line's height).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, Union

import numpy as np


class Line(Protocol):
    """What the matcher reads of a line (models.ocr.pipeline.OcrLine has both)."""

    @property
    def text(self) -> str: ...

    @property
    def box(self) -> Sequence[Sequence[float]]: ...


Tolerance = Union[float, Callable[[Line], float]]
Distance = Callable[[Line, Line], float]


def corner_distance(line: Line, other: Line) -> float:
    """Largest per-coordinate difference between the two lines' 4-corner boxes."""
    return float(np.abs(np.asarray(line.box, float) - np.asarray(other.box, float)).max())


def line_height(line: Line) -> float:
    """Height of a 4-corner box (clockwise from top-left): mean of its left and right edges."""
    tl, tr, br, bl = np.asarray(line.box, dtype=float)
    return float((np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2)


@dataclass(frozen=True)
class Matching:
    """How two readings pair up."""

    matched: int
    missed: list[Line] = field(default_factory=list)  # reference lines without a partner
    extra: int = 0  # candidate lines left over


def match_lines(reference: Sequence[Line], candidate: Sequence[Line],
                tolerance: Tolerance = 2.0, distance: Distance = corner_distance) -> Matching:
    """Pair reference lines one to one with candidate lines of equal text and nearest box."""
    used: set[int] = set()
    missed = []
    for ref in reference:
        limit = tolerance(ref) if callable(tolerance) else tolerance
        near = [(distance(line, ref), k) for k, line in enumerate(candidate)
                if k not in used and line.text == ref.text]
        best = min(near, default=None)
        if best is not None and best[0] <= limit:
            used.add(best[1])
        else:
            missed.append(ref)
    return Matching(len(reference) - len(missed), missed, len(candidate) - len(used))
