"""The NPU backend: rknn-toolkit-lite2's RKNNLite, one context per model, pinned to one core.

Each worker owns one NPU core (worker N -> core N), so its contexts get that core's mask and
three workers never contend for a core. RKNNLite reports failure by return codes and ``None``
rather than exceptions (load_rknn and init_runtime return -1, inference returns None); each is
checked here and turned into an error that says what to look at.

rknnlite is imported when the first session opens, so machines without it (x86, CPU backend)
never need it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from models.runtime.artifacts import converted_model
from models.runtime.soc import npu_cores, read_soc
from models.runtime.static import StaticSession

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "install rknn-toolkit-lite2 (aarch64 only: pip install 'mtai-rknn[rknn]') and librknnrt.so "
    "(/usr/lib), or run with BACKEND=onnx"
)


class RknnError(RuntimeError):
    """The NPU runtime refused a model or a run; the message says what to check."""


def import_rknnlite() -> Any:
    """The RKNNLite class, or RknnError with the fix."""
    try:
        from rknnlite.api import RKNNLite
    except Exception as exc:  # ImportError, or OSError when librknnrt.so cannot be loaded
        raise RknnError(f"the rknn backend needs rknnlite, which does not import ({exc}); "
                        f"{INSTALL_HINT}") from exc
    return RKNNLite


def core_mask(lite: Any, soc: str | None, core: int | None) -> int | None:
    """RKNNLite's mask for ``core`` on ``soc``; None where masks do not exist (one-core SoCs).

    A core number beyond the SoC's cores (e.g. worker 2 on a two-core RK3576) wraps around, so
    two workers share a core rather than one failing to start.
    """
    cores = npu_cores(soc)
    if cores == 1:
        return None
    if core is None:
        return int(lite.NPU_CORE_AUTO)
    if core >= cores:
        log.warning("%s has %d NPU cores; worker core %d runs on core %d", soc, cores, core,
                    core % cores)
    return int(getattr(lite, f"NPU_CORE_{core % cores}"))


class RknnSession(StaticSession):
    """A .rknn file in an RKNNLite context on one NPU core."""

    def __init__(self, path: Path, core: int | None = None, soc: str | None = None) -> None:
        super().__init__(converted_model(Path(path)))
        lite_class = import_rknnlite()
        self.soc = soc or read_soc() or self.model.record.target
        self.core_mask = core_mask(lite_class, self.soc, core)
        self._lite: Any = lite_class(verbose=False)
        try:
            self._init(Path(path))
        except BaseException:
            self.close()
            raise

    def _init(self, path: Path) -> None:
        built = self.model.record.target
        ret = self._lite.load_rknn(str(path))
        if ret != 0:
            raise RknnError(
                f"{path}: RKNNLite.load_rknn returned {ret}: the file is not a readable RKNN "
                f"model (built by rknn-toolkit2 {self.model.record.toolkit}); convert it again"
            )
        if self.core_mask is None:
            ret = self._lite.init_runtime()  # one-core SoCs: Rockchip says pass no mask at all
        else:
            ret = self._lite.init_runtime(core_mask=self.core_mask)
        if ret != 0:
            raise RknnError(
                f"{path}: RKNNLite.init_runtime(core_mask={self.core_mask}) returned {ret} on "
                f"{self.soc}: the model was built for {built}; check the NPU driver "
                "(/sys/kernel/debug/rknpu/version) and that librknnrt.so is at least rknn-toolkit2 "
                f"{self.model.record.toolkit}'s version (`mtai doctor` shows both)"
            )
        log.info("%s on %s, core mask %s", path.name, self.soc, self.core_mask)

    def _infer(self, array: np.ndarray, data_format: list[str] | None) -> list[np.ndarray]:
        if self._lite is None:
            raise RknnError(f"{self.model.path.name}: session already closed")
        outputs = self._lite.inference(inputs=[array], data_format=data_format)
        if outputs is None:
            raise RknnError(
                f"{self.model.path.name}: RKNNLite.inference returned None for input "
                f"{list(array.shape)} {array.dtype} ({data_format}); the runtime log above says why"
            )
        return [np.asarray(out) for out in outputs]

    def close(self) -> None:
        """Free the NPU context (also done when the worker process exits)."""
        lite, self._lite = getattr(self, "_lite", None), None
        if lite is not None:
            lite.release()

    def __del__(self) -> None:
        self.close()
