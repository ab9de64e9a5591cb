"""The one interface every inference backend offers the model code.

Model code (OCR, CLIP) only feeds named arrays and reads outputs, so the same pipeline runs on
onnxruntime on a laptop, on the RK3588 NPU (``rknn``) and in rknn-toolkit2's simulator
(``rknn-sim``) behind this seam.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Session(Protocol):
    """A loaded model ready to run, one call at a time."""

    @property
    def input_names(self) -> list[str]:
        """Names of the graph inputs, in graph order."""
        ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the graph once; outputs in graph order."""
        ...

    def metadata(self) -> dict[str, str]:
        """The model's custom metadata map (e.g. the OCR character list under ``character``)."""
        ...
