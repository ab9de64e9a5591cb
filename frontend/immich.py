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
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from frontend.imaging import Busy
from frontend.jobs import JobFailed, Overloaded, run_job
from protocol.images import CLIP_DRAFT_SIDE, OCR_MAX_SIDE, DecodedImage, ImageRejected
from protocol.wire import MAX_TEXT_CHARS

bp = Blueprint("immich", __name__)
Answer = tuple[Response, int]
IMMICH_MIN_FACE_SCORE = 0.7  # the default of Immich's own detector, when none is sent


@dataclass(frozen=True)
class Upload:
    """The decoded `image` part, and CLIP's pixels of it when a CLIP task asks for them."""

    image: DecodedImage
    clip: np.ndarray | None


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
        with current_app.extensions["imaging"].admitted():
            upload = _decode(image.read(), entries) if image is not None else None
            response: dict[str, Any] = {}
            for task, types in entries.items():
                response[task] = _run_task(task, types, upload, text)
        if upload is not None:
            response["imageHeight"] = upload.image.height
            response["imageWidth"] = upload.image.width
    except BadRequest as exc:
        return jsonify(detail=str(exc)), exc.status
    except (Overloaded, Busy) as exc:
        answer = jsonify(detail=str(exc))
        answer.headers["Retry-After"] = str(exc.retry_after)
        return answer, 503
    except JobFailed as exc:
        return jsonify(detail=str(exc)), 422 if exc.code in JobFailed.FINAL else 503
    return Response(orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY),
                    mimetype="application/json"), 200


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


def _decode(data: bytes, entries: dict[str, dict[str, Any]]) -> Upload:
    """Decoded in a decode thread: at CLIP's draft size for a CLIP-only request (the pixels
    /clip/img would get), else at OCR's size."""
    imaging = current_app.extensions["imaging"]
    clip = "visual" in entries.get("clip", {})
    try:
        if not clip:
            return Upload(imaging.decode(data, OCR_MAX_SIDE), None)
        side = CLIP_DRAFT_SIDE if set(entries) == {"clip"} else OCR_MAX_SIDE
        return Upload(*imaging.decode_for_clip(data, side))
    except ImageRejected as exc:
        raise BadRequest(422, f"unusable image: {exc}") from None


def _run_task(task: str, types: dict[str, Any], upload: Upload | None,
              text: str | None) -> Any:
    if task == "clip" and "visual" in types:
        pixels = _need(upload, task).clip
        return _embedding(run_job("clip_image", {"normalise": True}, (pixels,)))
    if task == "clip" and "textual" in types:
        if text is None:
            raise BadRequest(400, "clip textual needs `text`")
        if len(text) > MAX_TEXT_CHARS:
            raise BadRequest(422, f"text is longer than {MAX_TEXT_CHARS} characters")
        return _embedding(run_job("clip_text", {"text": text, "normalise": True}))
    if task == "ocr":
        return _ocr(_need(upload, task).image, types)
    if task == "facial-recognition":
        return _faces(_need(upload, task).image, types)
    raise BadRequest(422, f"task {task!r} is not served here (clip, ocr, facial-recognition)")


def _need(upload: Upload | None, task: str) -> Upload:
    if upload is None:
        raise BadRequest(400, f"{task} needs `image`")
    return upload


def _embedding(reply: Any) -> str:
    """Immich stores the L2-normalised vector (the worker normalises: `normalise` option),
    sent as a JSON string holding the array."""
    return json.dumps(reply.arrays[0].astype(np.float64).ravel().tolist())


def _ocr(image: DecodedImage, types: dict[str, Any]) -> dict[str, list]:
    detection = types.get("detection", {}).get("options", {})
    recognition = types.get("recognition", {}).get("options", {})
    min_box = _score(detection.get("minScore", 0.5))
    min_text = _score(recognition.get("minScore", 0.8))
    # The worker's own line filter (MT-Photos' score >= 0.5) is off; Immich's rule applies,
    # once, as its recogniser applies it: a line is kept when its score is above minScore.
    options = {"box_thresh": min_box, "text_score": 0.0}
    lines = run_job("ocr", options, (image.array,)).result["lines"]
    lines = [line for line in lines if line["score"] > min_text]
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

def _faces(image: DecodedImage, types: dict[str, Any]) -> list[dict[str, Any]]:
    """Immich's facial recognition: boxes in pixels of the sent image, rounded (half to even,
    float32) and not clipped; the raw, unnormalised embedding as a JSON string of float32
    values; the detection score. Immich's server compares faces by cosine distance."""
    if "detection" not in types or "recognition" not in types:
        raise BadRequest(400, "facial-recognition needs both detection and recognition")
    options = types["detection"].get("options", {})
    min_score = _score(options.get("minScore", IMMICH_MIN_FACE_SCORE))
    reply = run_job("face", {"min_score": min_score}, (image.array,))
    boxes, scores, _, embeddings = reply.arrays[:4]
    boxes = np.round(boxes / np.float32(image.scale))  # to the sent image's pixels
    return [
        {"boundingBox": {"x1": x1, "y1": y1, "x2": x2, "y2": y2},
         "embedding": orjson.dumps(embedding, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
         "score": score}
        for (x1, y1, x2, y2), embedding, score in zip(boxes, embeddings, scores)
    ]
