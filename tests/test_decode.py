"""Every image a photo library can send, and every bad one, through protocol.images: the
decoder of the front's uploads and of the converter's check samples."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.clip.install import IMAGE_SIZE as CLIP_INSTALL_SIZE
from models.convert import samples
from models.ocr.pipeline import MAX_SIDE as OCR_PIPELINE_MAX_SIDE
from protocol.images import (
    CLIP_DRAFT_SIDE,
    CLIP_SIZE,
    OCR_MAX_SIDE,
    ImageRejected,
    clip_pixels,
    decode_image,
    pixels,
)

# An upright test card: four coloured quadrants, so any flip or rotation shows.
RED, GREEN, BLUE, WHITE = (220, 20, 20), (20, 200, 20), (20, 20, 220), (250, 250, 250)


def card(height: int = 64, width: int = 96) -> np.ndarray:
    image = np.zeros((height, width, 3), np.uint8)
    image[: height // 2, : width // 2] = RED
    image[: height // 2, width // 2 :] = GREEN
    image[height // 2 :, : width // 2] = BLUE
    image[height // 2 :, width // 2 :] = WHITE
    return image


def quadrants(image: np.ndarray) -> list[tuple[int, ...]]:
    h, w = image.shape[:2]
    points = [(h // 4, w // 4), (h // 4, 3 * w // 4), (3 * h // 4, w // 4),
              (3 * h // 4, 3 * w // 4)]
    return [tuple(int(v) for v in image[y, x]) for y, x in points]


def close(a: list[tuple[int, ...]], b: list[tuple[int, ...]], tolerance: int = 24) -> bool:
    return all(abs(x - y) <= tolerance for pa, pb in zip(a, b) for x, y in zip(pa, pb))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


# EXIF 2.3 orientation n: how the stored pixels relate to the upright picture U.
STORED = {
    1: lambda u: u,
    2: np.fliplr,
    3: lambda u: np.rot90(u, 2),
    4: np.flipud,
    5: lambda u: u.transpose(1, 0, 2),
    6: lambda u: np.rot90(u, 1),
    7: lambda u: np.fliplr(np.rot90(u, 1)),
    8: lambda u: np.rot90(u, -1),
}


@pytest.mark.parametrize("orientation", sorted(STORED))
def test_jpeg_exif_orientations_come_out_upright(orientation: int):
    upright = card()
    stored = Image.fromarray(np.ascontiguousarray(STORED[orientation](upright)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    decoded = decode_image(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert decoded.array.shape == upright.shape
    assert (decoded.width, decoded.height) == (96, 64)
    assert close(quadrants(decoded.array), quadrants(upright))


def test_real_exif_rotated_photo_matches_its_upright_twin(shared: Path):
    rotated = decode_image((shared / "testdata/photos/portrait-orientation-6.jpg").read_bytes())
    upright = decode_image((shared / "testdata/photos/portrait.jpg").read_bytes())
    assert rotated.array.shape == upright.array.shape
    difference = np.abs(rotated.array.astype(int) - upright.array.astype(int)).mean()
    assert difference < 8


@pytest.mark.parametrize("name", ["IMG_2682.heic", "8bit-sRGB.avif", "10bit-HDR-P3-nclx.avif",
                                  "denali.webp", "density_plot.png"])
def test_real_files_of_every_supported_format(shared: Path, name: str):
    decoded = decode_image((shared / "testdata/formats" / name).read_bytes())
    assert decoded.array.dtype == np.uint8 and decoded.array.ndim == 3
    assert decoded.array.shape[2] == 3 and decoded.array.std() > 5


def test_jpeg_xl_is_refused_with_a_clear_reason(shared: Path):
    with pytest.raises(ImageRejected, match="not a recognised image format"):
        decode_image((shared / "testdata/formats/8bit-sRGB.jxl").read_bytes())


def test_cmyk_jpeg_converts_to_rgb():
    cmyk = Image.fromarray(card()).convert("CMYK")
    decoded = decode_image(encode(cmyk, "JPEG", quality=95))
    assert close(quadrants(decoded.array), quadrants(card()), tolerance=40)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF"])
def test_common_containers(fmt: str):
    options = {"lossless": True} if fmt == "WEBP" else {}
    decoded = decode_image(encode(Image.fromarray(card()), fmt, **options))
    assert close(quadrants(decoded.array), quadrants(card()), tolerance=30)


def test_png_palette_grayscale_and_16_bit():
    palette = Image.fromarray(card()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    assert close(quadrants(decode_image(encode(palette, "PNG")).array), quadrants(card()))
    gray = decode_image(encode(Image.fromarray(card()).convert("L"), "PNG")).array
    assert gray.shape == (64, 96, 3) and np.all(gray[..., 0] == gray[..., 2])
    ramp = np.tile(np.linspace(0, 65535, 96).astype(np.uint16), (64, 1))
    deep = decode_image(encode(Image.fromarray(ramp), "PNG")).array
    assert deep[0, 0, 0] == 0 and deep[0, -1, 0] == 255 and 100 < deep[0, 48, 0] < 155


def test_alpha_is_composited_on_a_contrasting_background():
    dark_text = np.zeros((32, 32, 4), np.uint8)
    dark_text[8:24, 8:24] = (0, 0, 0, 255)
    light_text = dark_text.copy()
    light_text[8:24, 8:24] = (255, 255, 255, 255)
    on_white = decode_image(encode(Image.fromarray(dark_text, "RGBA"), "PNG")).array
    on_black = decode_image(encode(Image.fromarray(light_text, "RGBA"), "PNG")).array
    assert tuple(on_white[0, 0]) == (255, 255, 255) and tuple(on_white[16, 16]) == (0, 0, 0)
    assert tuple(on_black[0, 0]) == (0, 0, 0) and tuple(on_black[16, 16]) == (255, 255, 255)


def test_animated_gif_and_webp_give_their_first_frame():
    frames = [Image.fromarray(card()), Image.fromarray(np.full((64, 96, 3), 128, np.uint8))]
    for fmt, options in (("GIF", {}), ("WEBP", {"lossless": True})):
        data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100,
                      **options)
        assert close(quadrants(decode_image(data).array), quadrants(card()), tolerance=30), fmt


def test_big_jpeg_is_decoded_at_reduced_scale():
    big = Image.fromarray(np.kron(card(), np.ones((60, 60, 1), np.uint8)))  # 3840 x 5760
    decoded = decode_image(encode(big, "JPEG", quality=90), max_side=1000)
    assert (decoded.width, decoded.height) == (5760, 3840)
    assert 1000 <= max(decoded.array.shape[:2]) < 2000
    assert decoded.scale == decoded.array.shape[1] / 5760
    assert close(quadrants(decoded.array), quadrants(card()))


def test_clip_pixels_are_a_plain_bicubic_resize():
    photo = card(300, 500)
    expected = np.asarray(Image.fromarray(photo).resize((224, 224), Image.Resampling.BICUBIC))
    assert np.array_equal(clip_pixels(photo), expected)


def png_header_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size: a decompression bomb's opening."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some text, not an image\n", "not a recognised image format"),
        (png_header_claiming(50_000, 50_000), "sides over 10000 px"),
        (png_header_claiming(10_000, 10_001), "sides over 10000 px"),
        (png_header_claiming(10_000, 10_000 + 0) + b"", "cannot decode"),
        (bytes(range(256)) * 8, "not a recognised image format"),
    ],
)
def test_unusable_input_gets_a_clear_reason(data: bytes, reason: str):
    with pytest.raises(ImageRejected, match=reason):
        decode_image(data)


def test_truncated_jpeg_is_refused():
    whole = encode(Image.fromarray(card(200, 300)), "JPEG")
    with pytest.raises(ImageRejected):
        decode_image(whole[: len(whole) // 2])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF"]), st.data())
def test_mutated_images_decode_or_are_refused_never_anything_else(fmt: str, data):
    original = bytearray(encode(Image.fromarray(card(24, 32)), fmt))
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(original) - 1))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip":
            original[position] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del original[position:]
            if not original:
                break
        else:
            original[position:position] = data.draw(st.binary(min_size=1, max_size=16))
    try:
        decoded = decode_image(bytes(original), max_side=32)
    except ImageRejected:
        return
    assert decoded.array.dtype == np.uint8 and decoded.array.shape[2] == 3


def test_16_bit_greyscale_is_reduced_after_it_is_made_8_bit():
    """Reported: a 16-bit PNG over twice the decode side was refused ("image has wrong
    mode"): Pillow cannot reduce I;16."""
    ramp = np.tile(np.linspace(0, 65535, 4200).astype(np.uint16), (3000, 1))
    decoded = decode_image(encode(Image.fromarray(ramp), "PNG"), max_side=2000)
    assert decoded.array.shape == (1500, 2100, 3) and decoded.scale == 0.5
    row = decoded.array[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255 and np.all(np.diff(row) >= 0)
    small = decode_image(encode(Image.fromarray(ramp[:, :1000]), "PNG"), max_side=448)
    assert max(small.array.shape[:2]) >= 448


def test_the_header_tells_the_size_before_any_decode():
    assert pixels(png_header_claiming(6000, 5000)) == 30_000_000
    with pytest.raises(ImageRejected, match="sides over 10000 px"):
        pixels(png_header_claiming(50_000, 50_000))
    with pytest.raises(ImageRejected, match="not a recognised image format"):
        pixels(b"not an image")


def test_the_converters_samples_are_the_pixels_the_service_sends(tmp_path: Path):
    """The NPU self-check must feed what the service feeds: same decoder, same alpha
    background, same JPEG draft and bicubic for CLIP, same reduction for OCR."""
    big = Image.fromarray(np.kron(card(), np.ones((30, 30, 1), np.uint8)))  # 2880 x 1920
    (tmp_path / "big.jpg").write_bytes(encode(big, "JPEG", quality=90))
    text = np.zeros((600, 900, 4), np.uint8)
    text[200:400, 100:800] = (10, 10, 10, 255)
    (tmp_path / "alpha.png").write_bytes(encode(Image.fromarray(text, "RGBA"), "PNG"))
    clip, _ = samples.clip_samples(tmp_path)
    ocr, _ = samples.ocr_samples(tmp_path)
    for name, pixels_ in clip:
        front = clip_pixels(decode_image((tmp_path / name).read_bytes(),
                                         max_side=CLIP_DRAFT_SIDE).array)
        assert pixels_.shape == (CLIP_SIZE, CLIP_SIZE, 3) and np.array_equal(pixels_, front)
    for name, image in ocr:
        front = decode_image((tmp_path / name).read_bytes(), max_side=OCR_MAX_SIDE).array
        assert np.array_equal(image, front), name


def test_the_fronts_sizes_are_the_models_sizes():
    assert CLIP_SIZE == CLIP_INSTALL_SIZE  # what the CLIP manifest's image input takes
    assert OCR_MAX_SIDE == OCR_PIPELINE_MAX_SIDE  # what the OCR pipeline reads at most
    assert CLIP_DRAFT_SIDE == 2 * CLIP_SIZE


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA"])
def test_reduction_by_strips_gives_pillows_pixels(monkeypatch, mode: str):
    """The strip-wise reduction (no full-size premultiplied copy of a 100 MP RGBA image)
    must give exactly what Image.reduce gives, edges included."""
    from protocol import images

    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (301, 517, 4), np.uint8), "RGBA").convert(mode)
    monkeypatch.setattr(images, "_STRIP_VALUES", 5_000)
    for factor in (2, 3, 7):
        assert np.array_equal(np.asarray(images._reduce(image, factor)),
                              np.asarray(image.reduce(factor))), factor
