"""Inference backends behind one factory: model code asks for a Session, never for a library."""

from __future__ import annotations

from pathlib import Path

from models.runtime.base import Session

BACKENDS = ("onnx",)

__all__ = ["BACKENDS", "Session", "open_session", "resolve_backend"]


def resolve_backend(backend: str) -> str:
    """Map ``auto`` to a concrete backend: ``onnx`` until an NPU backend is registered here."""
    name = backend.strip().lower()
    if name == "auto":
        return "onnx"
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
    the backend that needs it.
    """
    name = resolve_backend(backend)
    if name == "onnx":
        from models.runtime.onnx import OnnxSession

        return OnnxSession(Path(path), threads=threads)
    raise ValueError(f"backend {name!r} has no loader")  # pragma: no cover - BACKENDS guards this
