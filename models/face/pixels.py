"""The face models' pixel recipe, computed the way InsightFace computes it.

InsightFace prepares both networks with OpenCV's ``blobFromImage``: ``(x - mean) * (1 / std)``
in float32, a multiplication by the reciprocal rather than a division. For the detector's
std of 128 the two agree; for the recogniser's 127.5 they differ in the last bit of some
values, so the table is built with OpenCV's arithmetic and the ArcFace input is the reference's
bit for bit.
"""

from __future__ import annotations

import numpy as np

from models.manifest import ModelSpec, Preprocess
from models.preprocess import PixelTable


class BlobPixels(PixelTable):
    """HxWx3 uint8 RGB -> 3xHxW float32 ``(x * scale - mean) * float32(1 / std)`` by lookup."""

    def __init__(self, recipe: Preprocess) -> None:
        super().__init__(recipe)
        levels = np.arange(256, dtype=np.float32) * np.float32(recipe.scale)
        for plane in range(3):
            mean, std = np.float32(recipe.mean[plane]), np.float32(1.0 / recipe.std[plane])
            self.tables[plane] = ((levels - mean) * std).reshape(256, 1)

    def batch(self, images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """NxHxWx3 uint8 -> Nx3xHxW float32."""
        count, height, width = images.shape[:3]
        if out is None:
            out = np.empty((count, 3, height, width), dtype=np.float32)
        for index in range(count):
            self(images[index], out[index])
        return out


def network_input(images: np.ndarray, spec: ModelSpec, table: BlobPixels) -> np.ndarray:
    """N x H x W x 3 uint8 RGB images as the network of ``spec`` takes them: a converted model
    (normalisation folded in) gets the pixels themselves in its channel order, an ONNX one the
    ``table``'s float32 values; either in the model's layout, NCHW or NHWC."""
    if spec.mean_std_folded:
        pixels = images if spec.preprocess.channel_order == "RGB" else images[..., ::-1]
        tensor = pixels if spec.layout == "NHWC" else pixels.transpose(0, 3, 1, 2)
        return np.ascontiguousarray(tensor.astype(spec.dtype, copy=False))
    nchw = table.batch(images)
    return nchw if spec.layout == "NCHW" else np.ascontiguousarray(nchw.transpose(0, 2, 3, 1))
