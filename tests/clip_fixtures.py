"""The tiny Chinese-CLIP fixtures (made by models/tools/make_tiny_clip.py) and helpers for them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from models.clip.install import install_clip_files

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "clip"
IMAGE_ONNX = FIXTURES / "image.onnx"
TEXT_ONNX = FIXTURES / "text.onnx"
VOCAB = FIXTURES / "vocab.txt"
REFERENCE = FIXTURES / "reference.npz"
MIN_COSINE = 0.99999
MAX_INPUT_DIFF = 1e-5


@functools.cache
def reference() -> dict[str, np.ndarray]:
    """What the torch model computed (see the generator for every key)."""
    with np.load(REFERENCE, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def install_tiny(model_dir: Path) -> Path:
    """Install the tiny pair as the fetch command would install the real one."""
    return install_clip_files(model_dir, IMAGE_ONNX, TEXT_ONNX, VOCAB, progress=lambda _: None)


def front_pixels(path: Path) -> np.ndarray:
    """What the front hands a worker: decoded, EXIF applied, RGB, Pillow bicubic to 224x224."""
    with Image.open(path) as img:
        rgb = ImageOps.exif_transpose(img).convert("RGB")
        return np.asarray(rgb.resize((224, 224), Image.BICUBIC), dtype=np.uint8)


def torch_input(pixels: np.ndarray) -> np.ndarray:
    """cn_clip's ToTensor+Normalize output for these pixels, rebuilt exactly from its table."""
    lut = reference()["normalise_lut"]
    return lut[np.arange(3)[:, None, None], pixels.transpose(2, 0, 1)][None]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
