"""The image contract between the front and the workers: how an upload becomes the uint8 RGB
array a task receives, and the input sizes the front produces for each model.

One module for every place that turns an image file into model pixels: the HTTP front decodes
uploads with it, and the converter's self-check (models/convert/samples.py) loads its sample
images with it, so the NPU check feeds the pixels the service feeds. That is the one arrow from
models/ into protocol/: nothing else in models/ imports protocol, and nothing here imports
frontend/, workers/ or models/.

Every failure becomes an `ImageRejected` whose message is fit for the client: MT-Photos records
it and moves on. Decoding is bounded: sides over `MAX_SIDE` and images over `MAX_PIXELS` are
refused from the header, before a pixel is decoded; JPEGs decode at reduced scale (DCT draft)
and other formats are reduced by integer factors before any mode conversion, so a 100 MP PNG is
never converted or composited at full size.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pillow_heif import register_heif_opener

register_heif_opener()  # HEIC from iPhones; Pillow itself reads AVIF, WebP, TIFF, BMP, GIF

# Input sizes the front produces. The workers check what they receive against their models'
# manifests (a CLIP image against the image model's own input size).
OCR_MAX_SIDE = 2000  # PP-OCR reads at most 2000 px on the long side; larger uploads are reduced
CLIP_SIZE = 224  # Chinese-CLIP ViT-B-16: bicubic straight to 224x224, no crop
CLIP_DRAFT_SIDE = 2 * CLIP_SIZE  # JPEG draft / integer reduction stops here, then the bicubic

MAX_SIDE = 10_000  # API.md: a side over 10000 px is refused, as the official service does
MAX_PIXELS = 100_000_000  # refuse decompression bombs before Pillow allocates them
BIG_PIXELS = 24_000_000  # above this a decode needs hundreds of MB (see `pixels`)
_STRIP_VALUES = 4_000_000  # values per strip when scaling deep greyscale to 8 bits

# Pillow's own bomb guard runs in Image.open on the header size, exactly where ours runs
# (before any pixel is decoded); ours gives the client the reason, so Pillow's stays off.
Image.MAX_IMAGE_PIXELS = None
# Pillow's chatter about damaged files (truncated tags, corrupt EXIF); failures still raise.
# A process-wide filter, not catch_warnings per decode: decodes run in several threads at
# once, and catch_warnings is not thread-safe.
warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")

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


def pixels(data: bytes) -> int:
    """Width x height from the header alone (no pixel decoded): lets a caller that bounds
    decode memory tell a big decode from a small one first. ImageRejected as `decode_image`."""
    with _client_errors(data):
        width, height = _open(data).size
        return width * height


def decode_image(data: bytes, *, max_side: int | None = None) -> DecodedImage:
    """Decode, orient and convert an upload; reduced to no less than `max_side` on the long
    side when it is larger (JPEG draft, else integer reduction)."""
    with _client_errors(data):
        return _decode(data, max_side)


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """A file as the HxWx3 uint8 RGB array a worker would receive for it: full size, or reduced
    as an upload to an endpoint that reads at most ``max_side`` px is."""
    return decode_image(Path(path).read_bytes(), max_side=max_side).array


def clip_pixels(rgb: np.ndarray, size: int = CLIP_SIZE) -> np.ndarray:
    """Chinese-CLIP's resize: bicubic straight to size x size (no crop), as uint8 RGB."""
    resized = Image.fromarray(rgb).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized)


@contextlib.contextmanager
def _client_errors(data: bytes) -> Iterator[None]:
    """Any decoder failure as an ImageRejected with a reason for the client, never a 500."""
    if not data:
        raise ImageRejected("empty file")
    try:
        yield
    except ImageRejected:
        raise
    except UnidentifiedImageError:
        raise ImageRejected("not a recognised image format") from None
    except Exception as exc:  # decoders raise anything (libavif: RuntimeError)
        raise ImageRejected(f"cannot decode image: {type(exc).__name__}: {exc}"[:300]) from None


def _open(data: bytes) -> Image.Image:
    """The image with its header read and its size checked; no pixel decoded yet."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageRejected("image has no pixels")
    if max(width, height) > MAX_SIDE:
        raise ImageRejected(f"image is {width}x{height}; sides over {MAX_SIDE} px are refused")
    if width * height > MAX_PIXELS:
        raise ImageRejected(f"image is {width}x{height}; over {MAX_PIXELS} pixels")
    return image


def _decode(data: bytes, max_side: int | None) -> DecodedImage:
    image = _open(data)
    width, height = image.size
    if max_side and image.format == "JPEG" and max(width, height) > 2 * max_side:
        # DCT scaling decodes straight at 1/2, 1/4 or 1/8 and never below the requested size.
        ratio = max_side / max(width, height)
        image.draft("RGB", (max(1, int(width * ratio)), max(1, int(height * ratio))))
    image.load()
    orientation = _orientation(image)
    if image.mode in _HIGH_DEPTH_MODES:
        image = _replace(image, _to_8bit(image))  # first: Pillow cannot reduce 16-bit grey
    image = _replace(image, _shrink(image, max_side))
    array = _to_rgb_array(_exif_transpose(image, orientation))
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return DecodedImage(array=array, width=width, height=height, scale=array.shape[1] / width)


def _replace(old: Image.Image, new: Image.Image) -> Image.Image:
    """``new``, with ``old``'s pixels freed now rather than whenever the garbage collector
    breaks a reference cycle (a 100 MP buffer must not outlive its use)."""
    if new is not old:
        old.close()
    return new


def _shrink(image: Image.Image, max_side: int | None) -> Image.Image:
    """Integer box reduction to no less than `max_side`, before any mode conversion, so a
    100 MP PNG is never converted or composited at full size (formats without draft)."""
    factor = max(image.size) // max_side if max_side else 1
    if factor < 2:
        return image
    if image.mode in ("P", "PA", "1"):  # palette indices cannot be averaged
        size = (max(1, image.width // factor), max(1, image.height // factor))
        return image.resize(size, Image.Resampling.NEAREST)
    return _reduce(image, factor)


def _reduce(image: Image.Image, factor: int) -> Image.Image:
    """``image.reduce(factor)`` a strip of rows at a time: the same pixels (strips start on
    multiples of ``factor``, so every box is the same box), but Pillow's premultiplied copy
    of an RGBA image is made per strip, not of the whole 100 MP image at once."""
    width, height = image.size
    rows = factor * max(1, _STRIP_VALUES // (width * factor))
    if rows >= height:
        return image.reduce(factor)
    out = Image.new(image.mode, (-(-width // factor), -(-height // factor)))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        out.paste(strip.reduce(factor), (0, top // factor))
    return out


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


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """An 8-bit Pillow image (`_decode` scales deep greyscale first) to HxWx3 uint8 RGB, alpha
    composited onto a contrasting background."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in _ALPHA_MODES:
        return _composite(np.asarray(image.convert("RGBA")))
    return np.ascontiguousarray(np.asarray(image.convert("RGB")))


def _to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16-bit and 32-bit greyscale to 0..255 instead of clipping it to white, a strip of
    rows at a time: a 100 MP scan never gets a float copy of itself."""
    top = image.getextrema()[1]
    if image.mode.startswith("I;16"):
        peak = 65535.0
    elif image.mode == "I":
        peak = 65535.0 if top > 255 else 255.0  # PNG 16-bit grey may open as "I"
    else:
        peak = max(float(top), 1.0)
    width, height = image.size
    out = np.empty((height, width), np.uint8)
    rows = max(1, _STRIP_VALUES // width)
    for top_row in range(0, height, rows):
        bottom = min(height, top_row + rows)
        strip = np.asarray(image.crop((0, top_row, width, bottom)), dtype=np.float32)
        strip = np.nan_to_num(strip * np.float32(255.0 / peak) + np.float32(0.5))
        out[top_row:bottom] = np.clip(strip, 0, 255)
    return Image.fromarray(out, mode="L")


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
