"""The MT-Photos AI API (shared/API.md section 1), byte for byte."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from frontend.auth import check_api_key
from frontend.decode import DecodedImage, ImageRejected, clip_pixels, decode_image
from frontend.errors import busy, missing_fields, unusable
from frontend.formats import ocr_result, vector_strings
from frontend.jobs import JobFailed, Overloaded, run_job
from frontend.status import farm_status
from protocol.client import FarmUnreachable
from protocol.wire import MAX_TEXT_CHARS

TITLE = "mt-photos-ai-rknn"
OCR_MAX_SIDE = 2000  # PP-OCR works on at most 2000 px; bigger JPEGs are decoded reduced
CLIP_DECODE_SIDE = 448  # JPEG draft stops at twice CLIP's 224 px, then a bicubic resize

bp = Blueprint("mtphotos", __name__)
Answer = tuple[Response, int]


def _auth(*fields: str) -> Answer | None:
    return check_api_key(current_app.config["API_KEY"], *fields)


@bp.post("/check")
def check() -> Answer:
    if (denied := _auth()) is not None:
        return denied
    try:
        status = farm_status(current_app.extensions["farm"])
    except FarmUnreachable as exc:
        return busy(str(exc), retry_after=5)
    workers = status["workers"].values()
    models = sorted({m for w in workers for m in w.get("models", {})})
    devices = sorted({f"{w.get('backend')}: {w.get('device')}" for w in workers})
    return jsonify(
        result="pass",
        title=TITLE,
        help="https://mtmt.tech/docs/advanced/ocr_api",
        backend=status.get("backend"),
        device=devices,
        models=models,
        ocr_model=sorted({w["ocr_model"] for w in workers if "ocr_model" in w}),
        workers=len(status["workers"]),
        front={k: status["front"][k] for k in ("serving", "restarts", "crash_loop")},
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
    return _run("recycle", {}, (), lambda reply: "pass")


@bp.post("/ocr")
def ocr() -> Answer:
    if (denied := _auth("file")) is not None:
        return denied
    image, failure = uploaded_image("file", OCR_MAX_SIDE)
    if image is None:
        return failure
    return _run("ocr", {}, (image.array,),
                lambda reply: ocr_result(reply.result["lines"], image.scale))


@bp.post("/clip/img")
def clip_image() -> Answer:
    if (denied := _auth("file")) is not None:
        return denied
    image, failure = uploaded_image("file", CLIP_DECODE_SIDE)
    if image is None:
        return failure
    return _run("clip_image", {}, (clip_pixels(image.array),),
                lambda reply: vector_strings(reply.arrays[0].ravel()))


@bp.post("/clip/txt")
def clip_text() -> Answer:
    if (denied := _auth("text")) is not None:
        return denied
    text, failure = query_text()
    if text is None:
        return failure
    return _run("clip_text", {"text": text}, (),
                lambda reply: vector_strings(reply.arrays[0].ravel()))


def uploaded_image(field: str, max_side: int) -> tuple[DecodedImage | None, Answer | None]:
    """The decoded upload, or the answer to give instead (422 missing, 200 unusable)."""
    upload = request.files.get(field)
    if upload is None:
        return None, missing_fields(("body", field))
    try:
        return decode_image(upload.read(), max_side=max_side), None
    except ImageRejected as exc:
        return None, unusable(f"unusable image: {exc}")


def query_text() -> tuple[str | None, Answer | None]:
    """`text` from a JSON body, FastAPI-style 422s for everything else."""
    payload = request.get_json(silent=True)
    if payload is None and request.get_data(cache=True):
        return None, _invalid(["body"], "json_invalid", "JSON decode error")
    if not isinstance(payload, dict) or "text" not in payload:
        return None, missing_fields(("body", "text"))
    text = payload["text"]
    if not isinstance(text, str):
        return None, _invalid(["body", "text"], "string_type", "Input should be a valid string")
    if len(text) > MAX_TEXT_CHARS:
        return None, _invalid(["body", "text"], "string_too_long",
                              f"String should have at most {MAX_TEXT_CHARS} characters")
    return text, None


def _invalid(loc: list[str], kind: str, message: str) -> Answer:
    return jsonify(detail=[{"type": kind, "loc": loc, "msg": message}]), 422


def _run(task: str, options: dict[str, Any], arrays: tuple, shape: Any) -> Answer:
    """One job; overload and server-side failures are 503 (MT-Photos retries), an unusable
    input or a missing model the documented 200 with an empty result and the reason."""
    try:
        reply = run_job(task, options, arrays)
    except Overloaded as exc:
        return busy(str(exc), retry_after=5 if "no answer" in str(exc) else 1)
    except JobFailed as exc:
        if exc.code in JobFailed.FINAL:
            return unusable(str(exc))
        # timeout, worker_lost, internal: the server's trouble, so MT-Photos should retry
        # the photo later instead of recording it as done with nothing in it.
        return busy(f"{exc.code}: {exc}", retry_after=5)
    return jsonify(result=shape(reply)), 200
