"""Pixel preparation shared by every model family, driven by the manifest's Preprocess recipe."""

from __future__ import annotations

import numpy as np

from models.manifest import Preprocess


def normalize_chw(image: np.ndarray, recipe: Preprocess) -> np.ndarray:
    """HxWxC uint8 (already in the model's channel order) -> CxHxW float32 ``(x*scale-mean)/std``.

    Stays in float32: a 2000 px canvas in float64 would cost twice the memory for no accuracy.
    """
    mean = np.asarray(recipe.mean, dtype=np.float32)
    std = np.asarray(recipe.std, dtype=np.float32)
    out = image.astype(np.float32) * np.float32(recipe.scale)
    out -= mean
    out /= std
    return np.ascontiguousarray(out.transpose(2, 0, 1))


def to_model_order(rgb: np.ndarray, recipe: Preprocess) -> np.ndarray:
    """Hand the network the channel order it was trained on (callers always hold RGB)."""
    if recipe.channel_order.upper() == "BGR":
        return np.ascontiguousarray(rgb[..., ::-1])
    if recipe.channel_order.upper() == "RGB":
        return np.ascontiguousarray(rgb)
    raise ValueError(f"unknown channel order {recipe.channel_order!r}")
