"""Immich's machine-learning API (shared/API.md section 2) on the same farm.

Immich sends no API key (its ML client has none), so /ping and /predict are open, like
Immich's own ML service: expose the port on the LAN only. The model names Immich sends
select nothing here; the farm answers with the models it has. For OCR too
(``PP-OCRv5_mobile``, ``LATIN__PP-OCRv5_mobile``...): Immich sends one name for the whole
library, keeps only the text, and marks the URL unhealthy on any non-2xx answer, so a name
the workers do not hold is still answered, with the generation OCR_MODEL loaded; loading
another per request would stall the workers (README: "Immich settings").
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from flask import Blueprint, Response, jsonify, request

from frontend.decode import DecodedImage, ImageRejected, clip_pixels, decode_image
from frontend.jobs import JobFailed, Overloaded, run_job
from protocol.wire import MAX_TEXT_CHARS

bp = Blueprint("immich", __name__)
Answer = tuple[Response, int]
IMMICH_MAX_SIDE = 2000
CLIP_DECODE_SIDE = 448


class BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


@bp.get("/ping")
def ping() -> Response:
    return Response("pong", mimetype="text/plain")


@bp.post("/predict")
def predict() -> Answer:
    try:
        entries = _entries()
        image = request.files.get("image")
        text = request.form.get("text")
        if image is None and text is None:
            raise BadRequest(400, "Either image or text must be provided")
        decoded = _decode(image.read()) if image is not None else None
        response: dict[str, Any] = {}
        for task, types in entries.items():
            response[task] = _run_task(task, types, decoded, text)
        if decoded is not None:
            response["imageHeight"], response["imageWidth"] = decoded.height, decoded.width
    except BadRequest as exc:
        return jsonify(detail=str(exc)), exc.status
    except Overloaded as exc:
        answer = jsonify(detail=str(exc))
        answer.headers["Retry-After"] = "1"
        return answer, 503
    except JobFailed as exc:
        return jsonify(detail=str(exc)), 422 if exc.code in JobFailed.FINAL else 503
    return jsonify(response), 200


def _entries() -> dict[str, dict[str, Any]]:
    """`entries` as Immich sends it: {task: {type: {"modelName": ..., "options": {...}}}}."""
    try:
        entries = json.loads(request.form.get("entries", ""))
        if not isinstance(entries, dict) or not entries:
            raise ValueError("entries must be a non-empty object")
        for types in entries.values():
            for entry in types.values():
                if not isinstance(entry["modelName"], str):
                    raise ValueError("modelName must be a string")
                if not isinstance(entry.get("options", {}), dict):
                    raise ValueError("options must be an object")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise BadRequest(422, "Invalid request format.") from None
    return entries


def _decode(data: bytes) -> DecodedImage:
    try:
        return decode_image(data, max_side=IMMICH_MAX_SIDE)
    except ImageRejected as exc:
        raise BadRequest(422, f"unusable image: {exc}") from None


def _run_task(task: str, types: dict[str, Any], image: DecodedImage | None,
              text: str | None) -> Any:
    if task == "clip" and "visual" in types:
        vector = run_job("clip_image", {}, (clip_pixels(_need(image, task).array),)).arrays[0]
        return _embedding(vector)
    if task == "clip" and "textual" in types:
        if text is None:
            raise BadRequest(400, "clip textual needs `text`")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(422, f"text is longer than {MAX_TEXT_CHARS} characters")
        return _embedding(run_job("clip_text", {"text": text}).arrays[0])
    if task == "ocr":
        return _ocr(_need(image, task), types)
    raise BadRequest(422, f"task {task!r} is not served here (only clip and ocr)")


def _need(image: DecodedImage | None, task: str) -> DecodedImage:
    if image is None:
        raise BadRequest(400, f"{task} needs `image`")
    return image


def _embedding(vector: np.ndarray) -> str:
    """Immich stores the L2-normalised vector, sent as a JSON string holding the array."""
    values = vector.astype(np.float64).ravel()
    norm = np.linalg.norm(values)
    return json.dumps((values / norm if norm > 0 else values).tolist())


def _ocr(image: DecodedImage, types: dict[str, Any]) -> dict[str, list]:
    detection = types.get("detection", {}).get("options", {})
    recognition = types.get("recognition", {}).get("options", {})
    min_box = _score(detection.get("minScore", 0.5))
    min_text = _score(recognition.get("minScore", 0.8))
    options = {"box_thresh": min_box, "text_score": min_text}
    lines = run_job("ocr", options, (image.array,)).result["lines"]
    lines = [line for line in lines if line["score"] > min_text]  # Immich keeps scores above
    width, height = image.array.shape[1], image.array.shape[0]
    return {
        "text": [line["text"] for line in lines],
        "box": [v for line in lines for x, y in line["box"] for v in (x / width, y / height)],
        "boxScore": [line.get("box_score", 1.0) for line in lines],
        "textScore": [line["score"] for line in lines],
    }


def _score(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BadRequest(422, "Invalid request format.")
    return float(value)
