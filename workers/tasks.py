"""What a worker does with a job: look up the task, check the input, run the model.

Each handler turns a request into a reply message. Input the model cannot use is the
client's fault (BAD_INPUT); a task whose model is not installed is UNAVAILABLE with the
command that installs it. Nothing raised here may take the worker down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.clip import l2_normalise
from models.clip.install import EMBED_DIM
from models.face.pipeline import l2_normalised
from protocol.wire import BAD_INPUT, INTERNAL, MAX_TEXT_CHARS, UNAVAILABLE, Message

log = logging.getLogger(__name__)

Handler = Callable[[Message], Message]


class InputRejected(ValueError):
    """The job's input is unusable; the message goes back to the client."""


class TaskUnavailable(RuntimeError):
    """The task's model cannot be loaded (e.g. the lazily loaded CLIP text model)."""


@dataclass
class TaskRunner:
    """Dispatches jobs to handlers; `missing` explains tasks whose models are absent."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def run(self, request: Message) -> Message:
        handler = self.handlers.get(request.task)
        if handler is None:
            reason = self.missing.get(request.task, f"unknown task {request.task!r}")
            return request.fail(UNAVAILABLE, reason)
        try:
            return handler(request)
        except InputRejected as exc:
            return request.fail(BAD_INPUT, str(exc))
        except TaskUnavailable as exc:
            return request.fail(UNAVAILABLE, str(exc))
        except Exception as exc:  # a model bug must cost one request, not the worker
            log.exception("task %s failed", request.task)
            return request.fail(INTERNAL, f"{type(exc).__name__}: {exc}")


def rgb_image(request: Message) -> np.ndarray:
    """The single HxWx3 uint8 image a vision task expects."""
    if len(request.arrays) != 1:
        raise InputRejected(f"expected one image array, got {len(request.arrays)}")
    image = request.arrays[0]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputRejected(f"expected HxWx3 uint8 image, got {image.dtype}{list(image.shape)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InputRejected("image has no pixels")
    return image


def ocr_handler(pipeline: Any) -> Handler:
    """OCR: lines with 4-corner boxes in the sent image's pixels, in reading order."""

    def handle(request: Message) -> Message:
        given = {k: _fraction(request.options, k) for k in ("text_score", "box_thresh")}
        lines = pipeline(rgb_image(request), **{k: v for k, v in given.items() if v is not None})
        return request.reply(
            {
                "lines": [
                    {"box": [list(map(float, p)) for p in line.box], "text": line.text,
                     "score": float(line.score), "box_score": float(line.box_score)}
                    for line in lines
                ]
            }
        )

    return handle


def clip_image_handler(clip: Any) -> Handler:
    """CLIP image: an RGB array of the image model's input size (the front resizes) -> 512
    float32, unnormalised unless `options.normalise` (Immich stores unit vectors)."""

    def handle(request: Message) -> Message:
        image = rgb_image(request)
        height, width = clip.image.size
        if image.shape[:2] != (height, width):
            raise InputRejected(f"CLIP takes {width}x{height} pixels, "
                                f"got {image.shape[1]}x{image.shape[0]}")
        return request.reply(arrays=[embedding(clip.image(image), _normalise(request))])

    return handle


def clip_text_handler(clip: Any) -> Handler:
    """CLIP text: `options.text` -> 512 float32 (unit length if `options.normalise`); the
    text model may load on first use."""

    def handle(request: Message) -> Message:
        text = request.options.get("text")
        if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
            raise InputRejected(f"text must be a string of at most {MAX_TEXT_CHARS} characters")
        normalise = _normalise(request)
        try:
            encoder = clip.text()
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            raise TaskUnavailable(f"the CLIP text model cannot be loaded: {exc}") from exc
        return request.reply(arrays=[embedding(encoder(text), normalise)])

    return handle


def face_handler(faces: Any, min_score: float) -> Handler:
    """Faces: detection and recognition of one photo in one job. Options ``min_score`` (else
    the service's FACE_MIN_SCORE) and ``normalise`` (MT-Photos: unit-length embeddings; Immich
    takes them raw). Replies with the count and four arrays: boxes (n, 4), scores (n,),
    landmarks (n, 5, 2) in the photo's pixels, embeddings (n, 512), all float32."""

    def handle(request: Message) -> Message:
        threshold = _fraction(request.options, "min_score")
        normalise = _normalise(request)
        found = faces(rgb_image(request), min_score if threshold is None else threshold)
        vectors = found.embeddings
        if not np.isfinite(vectors).all() or not np.isfinite(found.boxes).all():
            raise ValueError("the face model gave non-finite values")
        if normalise:
            vectors = l2_normalised(vectors)
        arrays = [found.boxes, found.scores, found.landmarks, vectors]
        return request.reply({"faces": len(found)},
                             arrays=[np.ascontiguousarray(a) for a in arrays])

    return handle


EMBEDDING_SIZE = EMBED_DIM


def embedding(vector: np.ndarray, normalise: bool = False) -> np.ndarray:
    """A model output fit to send: 512 finite float32 values (an fp16 NPU model can overflow
    to inf/NaN, which would reach MT-Photos as "nan" strings), L2-normalised on request."""
    values = np.asarray(vector, dtype=np.float32).ravel()
    if values.size != EMBEDDING_SIZE or not np.isfinite(values).all():
        raise ValueError(f"model gave {values.size} values, finite: {np.isfinite(values).all()}")
    return l2_normalise(values) if normalise else values


def _normalise(request: Message) -> bool:
    value = request.options.get("normalise", False)
    if not isinstance(value, bool):
        raise InputRejected("normalise must be true or false")
    return value


def _fraction(options: dict[str, Any], key: str) -> float | None:
    """An optional threshold in [0, 1] (Immich's minScore options)."""
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InputRejected(f"{key} must be a number from 0 to 1")
    return float(value)


def sleep_handler(request: Message) -> Message:
    """Diagnostic: hold the worker for `seconds` without CPU, to measure the farm itself."""
    seconds = request.options.get("seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 60:
        raise InputRejected("seconds must be a number from 0 to 60")
    time.sleep(seconds)
    return request.reply({"slept": seconds})
