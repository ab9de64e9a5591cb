"""The farm's wire format: one JSON header frame, then one raw frame per array.

No pickle anywhere: a frame from a socket is untrusted data, so decoding validates every
field and size and raises `ProtocolError` instead of crashing the process that reads it.
The same frames travel over ipc:// today and tcp:// when remote workers join.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

VERSION = 1
MAX_HEADER_BYTES = 256 * 1024
MAX_ARRAYS = 8
MAX_DIMS = 4
MAX_ARRAY_BYTES = 512 * 1024 * 1024
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 10_000  # a CLIP text query; the model reads 50 tokens, longer is a client bug
MAX_DIM = 2**31 - 1
DTYPES = frozenset({"uint8", "int32", "int64", "float16", "float32"})

# Message kinds. Requests flow front -> broker -> worker, replies the other way;
# READY/HEARTBEAT come from workers; ERROR carries one of the error codes below.
REQUEST, REPLY, ERROR, READY, HEARTBEAT = "request", "reply", "error", "ready", "heartbeat"
KINDS = frozenset({REQUEST, REPLY, ERROR, READY, HEARTBEAT})

# Error codes a client can act on.
BUSY = "busy"  # queue full or deadline passed while queued: retry later (HTTP 503)
TIMEOUT = "timeout"  # the job ran past its deadline
WORKER_LOST = "worker_lost"  # the job's worker died twice
BAD_INPUT = "bad_input"  # the worker refused the input (the client's fault)
UNAVAILABLE = "unavailable"  # the task's model is not installed
INTERNAL = "internal"

# Control task the front sends when the client of a queued job has gone (options: {"id": the
# job's request id}): the broker drops the job unless a worker already runs it, and answers
# nothing. Only the connection that sent a job can cancel it.
CANCEL = "cancel"

Frame = Union[bytes, bytearray, memoryview]


class ProtocolError(ValueError):
    """A frame set that is not a valid message; carries a reason safe to log."""


@dataclass
class Message:
    """One message; `result`/`error` are JSON values, `arrays` travel as raw frames."""

    kind: str
    id: str
    task: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    deadline: float | None = None
    result: Any = None
    error: dict[str, str] | None = None
    arrays: list[np.ndarray] = field(default_factory=list)

    def reply(self, result: Any = None, arrays: list[np.ndarray] | None = None) -> Message:
        return Message(REPLY, self.id, task=self.task, result=result, arrays=arrays or [])

    def fail(self, code: str, message: str) -> Message:
        return Message(ERROR, self.id, task=self.task, error={"code": code, "message": message})


def encode(message: Message) -> list[Frame]:
    """Header frame plus one zero-copy frame per (C-contiguous) array."""
    if message.kind not in KINDS:
        raise ProtocolError(f"unknown message kind {message.kind!r}")
    if len(message.arrays) > MAX_ARRAYS:
        raise ProtocolError(f"too many arrays ({len(message.arrays)} > {MAX_ARRAYS})")
    arrays = [np.ascontiguousarray(a) for a in message.arrays]
    for array in arrays:
        _check_array_spec(array.dtype.name, list(array.shape))
    header = {
        "v": VERSION,
        "kind": message.kind,
        "id": message.id,
        "task": message.task,
        "options": message.options,
        "deadline": message.deadline,
        "result": message.result,
        "error": message.error,
        "arrays": [{"dtype": a.dtype.name, "shape": list(a.shape)} for a in arrays],
    }
    try:
        raw = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    except (ValueError, TypeError) as exc:  # NaN/inf or an object JSON cannot hold
        raise ProtocolError(f"header cannot be encoded: {exc}") from None
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header too large ({len(raw)} bytes)")
    return [raw, *(memoryview(a).cast("B") if a.size else b"" for a in arrays)]


def decode(frames: list[Frame]) -> Message:
    """Validate and parse frames; arrays are read-only views on the frames (no copy)."""
    if not frames:
        raise ProtocolError("no frames")
    header = decode_header(frames[0])
    specs = header.get("arrays") or []
    if not isinstance(specs, list) or len(specs) != len(frames) - 1:
        raise ProtocolError(f"header names {_count(specs)} arrays, got {len(frames) - 1} frames")
    if len(specs) > MAX_ARRAYS:
        raise ProtocolError(f"too many arrays ({len(specs)} > {MAX_ARRAYS})")
    arrays = [_decode_array(spec, frame) for spec, frame in zip(specs, frames[1:])]
    return Message(
        kind=header["kind"],
        id=header["id"],
        task=_typed(header, "task", str, ""),
        options=_typed(header, "options", dict, {}),
        deadline=_deadline(header.get("deadline")),
        result=header.get("result"),
        error=_error(header.get("error")),
        arrays=arrays,
    )


def decode_header(frame: Frame) -> dict[str, Any]:
    """Parse and validate just the header: the broker routes on it without touching arrays."""
    if len(frame) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header too large ({len(frame)} bytes)")
    try:
        header = json.loads(bytes(frame), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, or a 5000-digit integer
        raise ProtocolError(f"header is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    if header.get("v") != VERSION or isinstance(header.get("v"), bool):
        raise ProtocolError(f"unsupported protocol version {header.get('v')!r} (want {VERSION})")
    if not isinstance(header.get("kind"), str) or header["kind"] not in KINDS:
        raise ProtocolError(f"unknown message kind {header.get('kind')!r}")
    request_id = header.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise ProtocolError("message id must be a non-empty string of at most 128 chars")
    return header


def _decode_array(spec: Any, frame: Frame) -> np.ndarray:
    if not isinstance(spec, dict):
        raise ProtocolError("array spec is not an object")
    dtype, shape = spec.get("dtype"), spec.get("shape")
    _check_array_spec(dtype, shape)
    expected = math.prod(shape) * np.dtype(dtype).itemsize
    if len(frame) != expected:
        raise ProtocolError(f"array frame has {len(frame)} bytes, {dtype}{shape} needs {expected}")
    return np.frombuffer(frame, dtype=dtype).reshape(shape)


def _check_array_spec(dtype: Any, shape: Any) -> None:
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ProtocolError(f"unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise ProtocolError(f"shape must be a list of at most {MAX_DIMS} dims")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DIM for d in shape):
        raise ProtocolError(f"bad shape {str(shape)[:100]}")
    if math.prod(shape) * np.dtype(dtype).itemsize > MAX_ARRAY_BYTES:
        raise ProtocolError(f"array {dtype}{shape} exceeds {MAX_ARRAY_BYTES} bytes")


def _typed(header: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = header.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ProtocolError(f"{key} must be {kind.__name__}")
    return value


def _deadline(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError("deadline must be a number")
    try:
        deadline = float(value)
    except OverflowError:
        deadline = math.inf
    if not math.isfinite(deadline):
        raise ProtocolError("deadline must be finite")
    return deadline


def _error(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not (
        isinstance(value, dict)
        and isinstance(value.get("code"), str)
        and isinstance(value.get("message"), str)
    ):
        raise ProtocolError("error must be an object with string code and message")
    return {"code": value["code"], "message": value["message"]}


def _reject_constant(name: str) -> None:
    raise ProtocolError(f"header holds non-finite number {name}")


def _count(specs: Any) -> int | str:
    return len(specs) if isinstance(specs, list) else "?"
