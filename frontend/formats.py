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


DETECTOR_BACKEND = "insightface"  # what the InsightFace sidecars call theirs


def face_models(pack: str) -> dict[str, str]:
    """The model keys of the MT-Photos face API: the detector family and the pack's name."""
    return {"detector_backend": DETECTOR_BACKEND, "recognition_model": pack}


def represent_result(arrays: Sequence[Any]) -> list[dict[str, Any]]:
    """A face job's arrays as the InsightFace sidecars' ``/represent`` result: the normalised
    embedding as JSON numbers (float32 values widened, as ``astype(float)``), the box as
    ``int()`` of x1, y1 and of the float32 width and height (truncated, not clipped), the
    detection score."""
    boxes, scores, _, embeddings = arrays[:4]
    result = []
    for box, score, embedding in zip(boxes, scores, embeddings):
        x1, y1, x2, y2 = box
        result.append({
            "embedding": embedding.astype(float).tolist(),
            "facial_area": {"x": int(x1), "y": int(y1), "w": int(x2 - x1), "h": int(y2 - y1)},
            "face_confidence": float(score),
        })
    return result
