"""The runtime seam: backend selection and the onnxruntime session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.fetch import ocr_manifest
from models.runtime import open_session, resolve_backend


def test_unknown_backend_is_a_clear_error(model_dir: Path):
    with pytest.raises(ValueError, match=r"unknown inference backend 'tpu'.*onnx"):
        open_session(model_dir / "ocr" / "x.onnx", backend="tpu")


def test_backend_names_are_checked_and_auto_needs_a_model_dir():
    assert resolve_backend("ONNX") == "onnx"
    assert resolve_backend(" rknn-sim ") == "rknn-sim"
    with pytest.raises(ValueError, match="model directory"):
        resolve_backend("auto")


def test_onnx_session_runs_and_exposes_metadata(model_dir: Path):
    specs = ocr_manifest().models
    cls = open_session(model_dir / "ocr" / specs["cls"].file, "onnx", threads=1, core=2)
    assert cls.input_names == ["x"]
    (probs,) = cls.run({"x": np.zeros((2, 3, 48, 192), np.float32)})
    assert probs.shape == (2, 2)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    rec = open_session(model_dir / "ocr" / specs["rec"].file, "onnx", threads=1)
    assert len(rec.metadata()["character"].splitlines()) == 6623
