"""MT-Photos' exact string formats: clients parse these strings, not numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

Point = Sequence[float]


def ocr_result(lines: Iterable[dict[str, Any]], scale: float = 1.0) -> dict[str, list]:
    """Worker lines -> {"texts","scores","boxes"}; boxes mapped back to original pixels."""
    texts, scores, boxes = [], [], []
    for line in lines:
        corners = [(x / scale, y / scale) for x, y in line["box"]]
        texts.append(line["text"])
        scores.append(f"{line['score']:.2f}")
        boxes.append(box_fields(corners))
    return {"texts": texts, "scores": scores, "boxes": boxes}


def box_fields(corners: Sequence[Point]) -> dict[str, str]:
    """x, y of the first corner; width p1.x - p0.x and height p2.y - p0.y, as str(round(v, 2))."""
    (x0, y0), (x1, _), (_, y2) = corners[0], corners[1], corners[2]
    return {
        "x": str(round(x0, 2)),
        "y": str(round(y0, 2)),
        "width": str(round(x1 - x0, 2)),
        "height": str(round(y2 - y0, 2)),
    }


def vector_strings(values: Iterable[float]) -> list[str]:
    """Fixed point, exactly 16 decimals, never scientific notation."""
    return [f"{float(v):.16f}" for v in values]
