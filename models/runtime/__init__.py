"""Inference backends behind one factory: model code asks for a Session, never for a library."""

from __future__ import annotations

import logging
from pathlib import Path

from models.manifest import ModelIntegrityError
from models.runtime.base import Session

# rknn: the NPU (rknn-toolkit-lite2); rknn-sim: the same path on rknn-toolkit2's x86 simulator,
# for tests and conversion checks (never picked by auto).
BACKENDS = ("onnx", "rknn", "rknn-sim")
NPU_BACKENDS = ("rknn", "rknn-sim")  # take converted models with static input shapes

__all__ = ["BACKENDS", "NPU_BACKENDS", "Session", "open_candidate", "open_session",
           "resolve_backend"]

log = logging.getLogger(__name__)


def resolve_backend(backend: str, model_dir: Path | None = None) -> str:
    """Map ``auto`` to a concrete backend and check the name.

    ``auto`` is rknn when the device tree names a supported Rockchip SoC, rknnlite imports and
    models were converted for it (in ``model_dir``, which ``auto`` needs); otherwise onnx, and
    the log says why (``models.runtime.soc.choose_backend`` gives the reason to callers).
    """
    name = backend.strip().lower()
    if name == "auto":
        from models.runtime.soc import choose_backend

        if model_dir is None:
            raise ValueError("BACKEND=auto is resolved against a model directory; none given")
        choice = choose_backend(model_dir)
        log.info("BACKEND=auto -> %s: %s", choice.backend, choice.reason)
        return choice.backend
    if name not in BACKENDS:
        known = ", ".join(("auto", *BACKENDS))
        raise ValueError(f"unknown inference backend {backend!r}; known: {known}")
    return name


def open_session(
    path: Path, backend: str = "onnx", threads: int | None = None, core: int | None = None
) -> Session:
    """Load ``path`` on ``backend``.

    ``threads`` bounds CPU threads (None: backend default); ``core`` pins an NPU core and is
    ignored by CPU backends. Backends import lazily so a missing optional runtime only fails
    the backend that needs it. On the NPU backends an ``.onnx`` file is a model the converter
    could not convert (its manifest says why): it runs on onnxruntime.
    """
    path = Path(path)
    name = resolve_backend(backend)
    if name == "onnx" or (name in NPU_BACKENDS and path.suffix == ".onnx"):
        from models.runtime.onnx import OnnxSession

        if name != "onnx":
            log.info("%s stayed in ONNX at conversion: it runs on the CPU", path.name)
        return OnnxSession(path, threads=threads)
    if name == "rknn":
        from models.runtime.rknn import RknnSession

        return RknnSession(path, core=core)
    if name == "rknn-sim":
        from models.runtime.simulator import SimulatorSession

        return SimulatorSession(path)
    raise ValueError(f"backend {name!r} has no loader")  # pragma: no cover - BACKENDS guards this


def open_candidate(path: Path) -> Session:
    """``path`` on onnxruntime (one thread) for an installer to check it against its family's
    contract; ModelIntegrityError when it is not a loadable ONNX model at all."""
    try:
        return open_session(path, "onnx", threads=1)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt or foreign file
        raise ModelIntegrityError(f"{path} is not a loadable ONNX model: {exc}") from exc
