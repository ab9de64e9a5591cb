"""The input contract shared by the NPU backend and its simulator: one code path for both.

An RKNN model takes exactly the tensors it was built for. The first RKNN port fed NCHW data to
an NHWC model and normalised pixels the model already normalised, and nothing complained. So
every feed is checked against the manifest of the converted model before it reaches the
runtime: the input name, the dtype, and a shape among those built, in the manifest's layout.
A mismatch is a bug in the caller and fails loudly instead of computing something else.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from models.runtime.artifacts import ConvertedModel

IMAGE_LAYOUTS = ("NCHW", "NHWC")  # the 4-D layouts the runtime transposes itself


class FeedError(ValueError):
    """A feed that is not what the converted model was built to take."""


class StaticSession(ABC):
    """Checks feeds against the converted model's manifest, then hands them to ``_infer``."""

    def __init__(self, model: ConvertedModel) -> None:
        self.model = model
        self.spec = model.spec
        self.shapes = model.static_shapes()
        self.dtype = np.dtype(self.spec.dtype)
        layout = self.spec.layout.upper()
        # data_format tells the runtime how a 4-D input is laid out; others carry no layout
        self.data_format = layout.lower() if layout in IMAGE_LAYOUTS else None

    @property
    def input_names(self) -> list[str]:
        return [self.spec.input_name]

    def metadata(self) -> dict[str, str]:
        """The source ONNX's metadata map, recorded at conversion (a .rknn file has none)."""
        return dict(self.model.entry.metadata)

    def check_feed(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """The one input array, contiguous, after checking it against the manifest."""
        if list(feeds) != self.input_names:
            raise FeedError(f"{self.model.path.name}: takes input {self.input_names}, "
                            f"fed {list(feeds)}")
        array = feeds[self.spec.input_name]
        if not isinstance(array, np.ndarray) or array.dtype != self.dtype:
            got = getattr(array, "dtype", type(array).__name__)
            raise FeedError(
                f"{self.model.path.name}: built for {self.dtype} input "
                f"({'mean/std folded in, raw pixels' if self.spec.mean_std_folded else 'prepared'}"
                f"), fed {got}"
            )
        if tuple(array.shape) not in self.shapes:
            raise FeedError(
                f"{self.model.path.name}: built for {self.spec.layout} shapes "
                f"{[list(s) for s in self.shapes]}, fed {list(array.shape)}; RKNN models take "
                "static shapes only"
            )
        return np.ascontiguousarray(array)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        array = self.check_feed(feeds)
        formats = [self.data_format] if self.data_format else None
        return self._infer(array, formats)

    @abstractmethod
    def _infer(self, array: np.ndarray, data_format: list[str] | None) -> list[np.ndarray]:
        """Run the model on a checked input; raise a clear error when the runtime fails."""
