"""Turn uploaded bytes into the RGB uint8 array the workers expect.

Decoding happens here, in the many-threaded front, so the NPU workers never wait on a
JPEG decoder. Every failure becomes an `ImageRejected` with a message fit for the client:
MT-Photos records it and moves on.
"""

from __future__ import annotations

import contextlib
import io
import threading
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # HEIC from iPhones; Pillow itself reads AVIF, WebP, TIFF, BMP, GIF

MAX_SIDE = 10_000  # API.md: a side over 10000 px is refused, as the official service does
MAX_PIXELS = 100_000_000  # refuse decompression bombs before Pillow allocates them
BIG_PIXELS = 24_000_000  # decodes above this share a small per-process allowance
# One big decode at a time per front process: a 100 MP PNG needs about 0.8 GB while it is
# decoded and reduced, and 16 threads must not each hold one.
_BIG_DECODES = threading.BoundedSemaphore(1)

# Pillow's own bomb guard runs in Image.open on the header size, exactly where ours runs
# (before any pixel is decoded); ours gives the client the reason, so Pillow's stays off.
Image.MAX_IMAGE_PIXELS = None

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageRejected(ValueError):
    """The upload cannot be used as an image; the message is shown to the client."""


@dataclass(frozen=True)
class DecodedImage:
    """An oriented RGB image, possibly decoded at reduced scale.

    `width`/`height` describe the full-resolution oriented image; `scale` is
    array size / full size, so callers can map coordinates back to the original.
    """

    array: np.ndarray
    width: int
    height: int
    scale: float


def decode_image(data: bytes, *, max_side: int | None = None) -> DecodedImage:
    """Decode, orient and convert an upload; shrink via JPEG draft when `max_side` allows."""
    if not data:
        raise ImageRejected("empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # truncated-tag chatter; failures still raise
            return _decode(data, max_side)
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("not a recognised image format") from None
    except Exception as exc:  # decoders raise anything (libavif: RuntimeError); never a 500
        raise ImageRejected(f"cannot decode image: {type(exc).__name__}: {exc}"[:300]) from None


def _decode(data: bytes, max_side: int | None) -> DecodedImage:
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if max(width, height) > MAX_SIDE:
        raise ImageRejected(f"image is {width}x{height}; sides over {MAX_SIDE} px are refused")
    if width * height > MAX_PIXELS:
        raise ImageRejected(f"image is {width}x{height}; over {MAX_PIXELS} pixels")
    if max_side and image.format == "JPEG" and max(width, height) > 2 * max_side:
        # DCT scaling decodes straight at 1/2, 1/4 or 1/8 and never below the requested size.
        ratio = max_side / max(width, height)
        image.draft("RGB", (max(1, int(width * ratio)), max(1, int(height * ratio))))
    with _BIG_DECODES if width * height > BIG_PIXELS else contextlib.nullcontext():
        image.load()
        orientation = _orientation(image)
        image = _shrink(image, max_side)
        array = to_rgb_array(_exif_transpose(image, orientation))
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(array=array, width=width, height=height, scale=array.shape[1] / width)


def _shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """Integer box reduction to no less than `max_side`, before any mode conversion, so a
    100 MP PNG is never converted or composited at full size (formats without draft)."""
    factor = max(image.size) // max_side if max_side else 1
    if factor < 2:
        return image
    if image.mode in ("P", "PA", "1"):  # palette indices cannot be averaged
        size = (max(1, image.width // factor), max(1, image.height // factor))
        return image.resize(size, Image.Resampling.NEAREST)
    return image.reduce(factor)


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (ValueError, TypeError, SyntaxError, OSError):
        return 1


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90,
}


def _exif_transpose(image: Image.Image, orientation: int) -> Image.Image:
    """Upright per the EXIF orientation read before any shrinking (reduce drops EXIF)."""
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Any Pillow mode to HxWx3 uint8 RGB, alpha composited onto a contrasting background."""
    if image.mode in _HIGH_DEPTH_MODES:
        image = _to_8bit(image)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        return _composite(np.asarray(image.convert("RGBA")))
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit and 32-bit greyscale to 0..255 instead of clipping it to white."""
    values = np.asarray(image, dtype=np.float32)
    top = float(values.max(initial=0))
    if image.mode.startswith("I;16"):
        peak = 65535.0
    elif image.mode == "I":
        peak = 65535.0 if top > 255 else 255.0  # PNG 16-bit grey also opens as "I"
    else:
        peak = max(top, 1.0)
    scaled = np.clip(values * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(scaled, mode="L")


def _composite(rgba: np.ndarray) -> np.ndarray:
    """Put transparent pixels on white under dark content, black under light content."""
    alpha = rgba[..., 3]
    rgb = rgba[..., :3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    step = max(1, alpha.size // 1_000_000)  # a million samples tell the content's brightness
    sample_alpha, sample_rgb = alpha.reshape(-1)[::step], rgb.reshape(-1, 3)[::step]
    opaque = sample_alpha > 0
    background = 255
    if opaque.any():
        luminance = sample_rgb[opaque].astype(np.float32) @ np.array([0.299, 0.587, 0.114],
                                                                      dtype=np.float32)
        background = 255 if luminance.mean() < 128 else 0
    weight = alpha.astype(np.uint16)[..., None]
    blended = rgb.astype(np.uint16) * weight  # integer maths: 2 bytes a value, not 8
    blended += np.uint16(background) * (255 - weight)
    blended += 127
    blended //= 255
    return blended.astype(np.uint8)


def clip_pixels(rgb: np.ndarray, size: int = 224) -> np.ndarray:
    """Chinese-CLIP's resize: bicubic straight to size x size (no crop), as uint8 RGB."""
    resized = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized)
