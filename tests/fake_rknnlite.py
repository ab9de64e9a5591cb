"""A FAKE of rknn-toolkit-lite2's ``rknnlite.api.RKNNLite``, for tests on machines without an NPU.

This is not Rockchip's code and runs nothing on an NPU. It reproduces the documented surface
the device backend relies on, so that backend can be tested here:

- constants ``NPU_CORE_AUTO/0/1/2/0_1/0_1_2/ALL`` (0, 1, 2, 4, 3, 7, 0xffff as in RKNNLite);
- ``load_rknn(path)`` -> 0, or -1 when the file is missing or lacks the ``RKNN`` magic;
- ``init_runtime(core_mask=...)`` -> 0, or -1 before a successful load, for a mask naming a core
  the faked SoC lacks, or for any explicit mask on a one-core SoC (Rockchip: do not pass one);
- ``inference(inputs, data_format)`` -> list of arrays, or None (never an exception) when not
  initialised, released, or fed a shape the model was not built for;
- ``release()``.

To compute something checkable, a fake context runs the ONNX source recorded by the converter
(``build.json`` beside the .rknn) on onnxruntime, applying what the real runtime applies: the
NHWC->NCHW transpose named by ``data_format`` and the folded mean/std. Class attributes set by a
test choose the faked SoC and force failures.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnxruntime as ort

from models.runtime.artifacts import BUILD_NAME, BuildRecord


class FakeRKNNLite:
    """Stands in for ``rknnlite.api.RKNNLite``."""

    NPU_CORE_AUTO = 0
    NPU_CORE_0 = 1
    NPU_CORE_1 = 2
    NPU_CORE_2 = 4
    NPU_CORE_0_1 = 3
    NPU_CORE_0_1_2 = 7
    NPU_CORE_ALL = 0xFFFF

    soc = "rk3588"  # the board being faked
    init_result = 0  # force init_runtime's return code (e.g. -1: driver missing)
    inference_fails = False  # force inference to return None
    contexts: ClassVar[list[FakeRKNNLite]] = []  # every context made, for assertions

    def __init__(self, verbose: bool = False, verbose_file: str | None = None) -> None:
        self.path: Path | None = None
        self.core_mask: int | None = None
        self.mask_passed = False
        self.released = False
        self._session: ort.InferenceSession | None = None
        self._plan: Any = None
        FakeRKNNLite.contexts.append(self)

    def load_rknn(self, path: str) -> int:
        file = Path(path)
        try:
            if file.read_bytes()[:4] != b"RKNN":
                return -1
        except OSError:
            return -1
        self.path = file
        return 0

    def init_runtime(self, core_mask: int | None = None, **kwargs: Any) -> int:
        self.mask_passed = core_mask is not None  # the real default is NPU_CORE_AUTO
        mask = self.NPU_CORE_AUTO if core_mask is None else core_mask
        if self.path is None:
            return -1
        if self.init_result != 0:
            return self.init_result
        cores = {"rk3588": 3, "rk3576": 2}.get(self.soc, 1)
        allowed = {self.NPU_CORE_AUTO, *(1 << i for i in range(cores))}
        if cores >= 2:
            allowed |= {self.NPU_CORE_0_1, self.NPU_CORE_ALL}
        if cores == 3:
            allowed.add(self.NPU_CORE_0_1_2)
        if (cores == 1 and self.mask_passed) or mask not in allowed:
            return -1
        self.core_mask = mask
        record = BuildRecord.load(self.path.parent / BUILD_NAME)
        entry = record.models[record.role_of(self.path.name)]
        self._plan = entry.plan
        self._session = ort.InferenceSession(str(self.path.parent / entry.plan.onnx),
                                             providers=["CPUExecutionProvider"])
        return 0

    def inference(self, inputs: list[np.ndarray], data_format: Any = None,
                  inputs_pass_through: Any = None) -> list[np.ndarray] | None:
        if self._session is None or self.released or self.inference_fails or len(inputs) != 1:
            return None
        array = np.asarray(inputs[0])
        fmt = data_format[0] if isinstance(data_format, list) else data_format
        if array.ndim == 4 and (fmt or "nhwc") == "nhwc":
            array = array.transpose(0, 3, 1, 2)  # the runtime's default for 4-D input is NHWC
        if tuple(array.shape) not in self._plan.shapes:
            return None
        if self._plan.mean_values is not None:
            mean = np.asarray(self._plan.mean_values, np.float32)[None, :, None, None]
            std = np.asarray(self._plan.std_values, np.float32)[None, :, None, None]
            array = (array.astype(np.float32) - mean) / std
        feed = array.astype(np.float32) if array.dtype.kind in "fu" else array
        return list(self._session.run(None, {self._plan.input_name: feed}))

    def release(self) -> None:
        self.released = True
        self._session = None


def install(monkeypatch: Any, soc: str = "rk3588") -> type[FakeRKNNLite]:
    """Make ``from rknnlite.api import RKNNLite`` give the fake (undone by ``monkeypatch``)."""
    package = types.ModuleType("rknnlite")
    api = types.ModuleType("rknnlite.api")
    api.RKNNLite = FakeRKNNLite  # type: ignore[attr-defined]
    package.api = api  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rknnlite", package)
    monkeypatch.setitem(sys.modules, "rknnlite.api", api)
    monkeypatch.setattr(FakeRKNNLite, "soc", soc)
    monkeypatch.setattr(FakeRKNNLite, "init_result", 0)
    monkeypatch.setattr(FakeRKNNLite, "inference_fails", False)
    monkeypatch.setattr(FakeRKNNLite, "contexts", [])
    return FakeRKNNLite
