"""The MT-Photos AI API (shared/API.md section 1), byte for byte."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from frontend.auth import check_api_key
from frontend.bodies import INVALID, json_payload
from frontend.errors import busy, missing_fields, unusable
from frontend.farm_state import farm_status
from frontend.formats import face_models, ocr_result, represent_result, vector_strings
from frontend.imaging import Busy
from frontend.jobs import JobFailed, Overloaded, run_job
from frontend.limits import MAX_JSON_BYTES
from frontend.nodes import nodes_summary
from protocol.client import FarmUnreachable
from protocol.images import CLIP_DRAFT_SIDE, OCR_MAX_SIDE, ImageRejected
from protocol.wire import MAX_TEXT_CHARS

TITLE = "mt-photos-ai-rknn"
FACE_MAX_DISTANCE = 0.5  # what the InsightFace sidecars tell MT-Photos to group faces by

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
        return busy(str(exc), retry_after=exc.retry_after)
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
        **face_models(current_app.config["FACE_MODEL"]),
        facial_min_score=current_app.config["FACE_MIN_SCORE"],
        facial_max_distance=FACE_MAX_DISTANCE,
        nodes=nodes_summary(status),
    ), 200


@bp.post("/represent")
def represent() -> Answer:
    """MT-Photos' face API: every face with its unit-length embedding, on the photo as sent
    (full resolution: the crops are taken from it, as the InsightFace sidecars take them)."""
    if (denied := _auth("file")) is not None:
        return denied
    keys = face_models(current_app.config["FACE_MODEL"])
    options = {"min_score": current_app.config["FACE_MIN_SCORE"], "normalise": True}
    return _image_job("face", None, clip=False, options=options, keys=keys,
                      shape=lambda reply, image: represent_result(reply.arrays))


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
    return _image_job("ocr", OCR_MAX_SIDE, clip=False,
                      shape=lambda reply, image: ocr_result(reply.result["lines"], image.scale))


@bp.post("/clip/img")
def clip_image() -> Answer:
    if (denied := _auth("file")) is not None:
        return denied
    return _image_job("clip_image", CLIP_DRAFT_SIDE, clip=True,
                      shape=lambda reply, image: vector_strings(reply.arrays[0].ravel()))


@bp.post("/clip/txt")
def clip_text() -> Answer:
    request.max_content_length = MAX_JSON_BYTES  # a query is short; more is not read
    if (denied := _auth("text")) is not None:
        return denied
    text, failure = query_text()
    if text is None:
        return failure
    return _run("clip_text", {"text": text}, (),
                lambda reply: vector_strings(reply.arrays[0].ravel()))


def _image_job(task: str, max_side: int | None, *, clip: bool, shape: Any,
               options: dict[str, Any] | None = None,
               keys: dict[str, Any] | None = None) -> Answer:
    """The `file` upload decoded (in a decode thread; full size when ``max_side`` is None) and
    sent as ``task``. The upload is received before the request takes one of the process's
    image places, so a slow client holds none; a process at capacity answers 503 at once."""
    upload = request.files.get("file")
    if upload is None:
        return missing_fields(("body", "file"))
    imaging = current_app.extensions["imaging"]
    try:
        with imaging.admitted():
            data = upload.read()
            try:
                if clip:
                    image, pixels = imaging.decode_for_clip(data, max_side)
                else:
                    image = imaging.decode(data, max_side)
                    pixels = image.array
            except ImageRejected as exc:
                return unusable(f"unusable image: {exc}")
            del data
            return _run(task, options or {}, (pixels,), lambda reply: shape(reply, image), keys)
    except Busy as exc:
        return busy(str(exc), retry_after=exc.retry_after)


def query_text() -> tuple[str | None, Answer | None]:
    """`text` from a JSON body, FastAPI-style 422s for everything else."""
    payload = json_payload()
    if payload is INVALID:
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


def _run(task: str, options: dict[str, Any], arrays: tuple, shape: Any,
         keys: dict[str, Any] | None = None) -> Answer:
    """One job; overload and server-side failures are 503 (MT-Photos retries), an unusable
    input or a missing model the documented 200 with an empty result and the reason.
    ``keys`` go before ``result`` in a successful answer."""
    try:
        reply = run_job(task, options, arrays)
    except Overloaded as exc:
        return busy(str(exc), retry_after=exc.retry_after)
    except JobFailed as exc:
        if exc.code in JobFailed.FINAL:
            return unusable(str(exc))
        # timeout, worker_lost, internal: the server's trouble, so MT-Photos should retry
        # the photo later instead of recording it as done with nothing in it.
        return busy(f"{exc.code}: {exc}", retry_after=5)
    return jsonify(**(keys or {}), result=shape(reply)), 200
