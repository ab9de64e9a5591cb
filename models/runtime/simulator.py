"""``rknn-sim``: the NPU backend's code path on x86, with rknn-toolkit2's simulator underneath.

The simulator cannot run a .rknn file; it only runs a model built from ONNX in the same process.
So this backend opens the converted model exactly as the device backend does (its manifest:
layout, dtype, static shapes, folded mean/std; its build record: metadata) and rebuilds the model
from the plan recorded at conversion. Pipelines fed through it therefore prepare tensors the way
they will on the board, and the converter's self-check runs the very build it exported (builds
are cached per process), except for a model converted in parts: each part's build is dropped
after export to bound memory, and the check rebuilds it from the same plan (the toolkit builds
equal plans alike). Never chosen by ``auto``: it is for tests and conversion checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.manifest import ModelIntegrityError, sha256_file
from models.runtime.artifacts import converted_model
from models.runtime.static import StaticSession


class SimulatorSession(StaticSession):
    """A converted model run by rknn-toolkit2's simulator, rebuilt from its recorded ONNX."""

    def __init__(self, path: Path) -> None:
        super().__init__(converted_model(Path(path)))
        from models.convert import toolkit  # lazy: the toolkit pulls in torch and friends

        self._toolkit = toolkit
        source, plan = self.model.source_onnx, self.model.entry.plan
        if not source.is_file():
            raise FileNotFoundError(f"{path}: its ONNX source {source} is gone; the simulator "
                                    "rebuilds from it (fetch the models again)")
        if sha256_file(source) != plan.onnx_sha256:
            raise ModelIntegrityError(f"{path} was converted from another {source.name} than the "
                                      "one installed now; convert again")
        self._rknn: object | None = toolkit.simulator(plan, source)

    def _infer(self, array: np.ndarray, data_format: list[str] | None) -> list[np.ndarray]:
        if self._rknn is None:
            raise self._toolkit.ToolkitError(f"{self.model.path.name}: session already closed")
        outputs = self._toolkit.infer(self._rknn, [array], data_format)
        return [np.asarray(out) for out in outputs]

    def close(self) -> None:
        """Let go of the rebuilt model: a part closed by its ShapeRouter gives its memory back
        once no other session of this process uses the same build."""
        if self._rknn is not None:
            self._rknn = None
            self._toolkit.let_go(self.model.entry.plan)
