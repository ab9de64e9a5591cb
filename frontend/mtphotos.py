"""The MT-Photos AI API (shared/API.md section 1), byte for byte."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from frontend.auth import check_api_key
from frontend.decode import DecodedImage, ImageRejected, decode_image
from frontend.errors import busy, missing_fields, unusable
from frontend.farm import Farm
from frontend.formats import ocr_result, vector_strings
from frontend.status import farm_status
from protocol.client import FarmUnreachable
from protocol.wire import BUSY, ERROR, Message

TITLE = "mt-photos-ai-rknn"
OCR_MAX_SIDE = 2000  # PP-OCR works on at most 2000 px; bigger JPEGs are decoded reduced
CLIP_MAX_SIDE = 224

bp = Blueprint("mtphotos", __name__)
Answer = tuple[Response, int]


def _farm() -> Farm:
    return current_app.extensions["farm"]


def _auth(*fields: str) -> Answer | None:
    return check_api_key(current_app.config["API_KEY"], *fields)


@bp.post("/check")
def check() -> Answer:
    if (denied := _auth()) is not None:
        return denied
    try:
        status = farm_status(_farm())
    except FarmUnreachable as exc:
        return busy(str(exc), retry_after=5)
    models = sorted({m for w in status["workers"].values() for m in w.get("models", {})})
    return jsonify(
        result="pass",
        title=TITLE,
        help="https://mtmt.tech/docs/advanced/ocr_api",
        backend=status.get("backend"),
        device=_devices(status),
        models=models,
        workers=len(status["workers"]),
    ), 200


@bp.post("/restart")
def restart() -> Answer:
    """MT-Photos calls this in the middle of OCR runs: acknowledge, do nothing."""
    if (denied := _auth()) is not None:
        return denied
    return jsonify(result="pass"), 200


@bp.post("/restart_v2")
def restart_v2() -> Answer:
    """Release memory: the supervisor recycles the workers one at a time. The official
    service re-executes itself and never answers; any answer is fine for MT-Photos."""
    if (denied := _auth()) is not None:
        return denied
    _, failure = _call("recycle", {}, ())
    if failure is not None:
        return failure
    return jsonify(result="pass"), 200


@bp.post("/ocr")
def ocr() -> Answer:
    if (denied := _auth("file")) is not None:
        return denied
    image, failure = _uploaded_image(OCR_MAX_SIDE)
    if failure is not None:
        return failure
    reply, failure = _call("ocr", {}, (image.array,))
    if failure is not None:
        return failure
    return jsonify(result=ocr_result(reply.result["lines"], image.scale)), 200


@bp.post("/clip/img")
def clip_image() -> Answer:
    if (denied := _auth("file")) is not None:
        return denied
    image, failure = _uploaded_image(CLIP_MAX_SIDE)
    if failure is not None:
        return failure
    reply, failure = _call("clip_image", {}, (image.array,))
    if failure is not None:
        return failure
    return jsonify(result=vector_strings(reply.arrays[0].ravel())), 200


@bp.post("/clip/txt")
def clip_text() -> Answer:
    if (denied := _auth("text")) is not None:
        return denied
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or "text" not in payload:
        return missing_fields(("body", "text"))
    if not isinstance(payload["text"], str):
        return jsonify(detail=[{"type": "string_type", "loc": ["body", "text"],
                                "msg": "Input should be a valid string"}]), 422
    reply, failure = _call("clip_text", {"text": payload["text"]}, ())
    if failure is not None:
        return failure
    return jsonify(result=vector_strings(reply.arrays[0].ravel())), 200


def _uploaded_image(max_side: int) -> tuple[DecodedImage | None, Answer | None]:
    upload = request.files.get("file")
    if upload is None:
        return None, missing_fields(("body", "file"))
    try:
        return decode_image(upload.read(), max_side=max_side), None
    except ImageRejected as exc:
        return None, unusable(f"unusable image: {exc}")


def _call(
    task: str, options: dict[str, Any], arrays: tuple
) -> tuple[Message | None, Answer | None]:
    """One farm round trip; overload and an absent farm are 503, any job error is the
    documented 200 with an empty result and the reason."""
    try:
        reply = _farm().call(task, options, arrays)
    except FarmUnreachable as exc:
        return None, busy(str(exc), retry_after=5)
    if reply.kind != ERROR:
        return reply, None
    error = reply.error or {}
    if error.get("code") == BUSY:
        return None, busy(f"server busy: {error.get('message')}")
    return None, unusable(error.get("message", "the job failed"))


def _devices(status: dict[str, Any]) -> list[str]:
    return sorted({f"{w.get('backend')}:core{w.get('core')}" for w in status["workers"].values()})
