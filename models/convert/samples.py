"""Sample inputs for the converter's self-check: real images when given, generated ones otherwise.

Real photos and scans are the better check (``--ocr-samples``/``--clip-samples``; `make convert`
passes the shared test images when the checkout has them). A board has none, so the fallback
draws text lines and shapes with OpenCV: enough to catch a model that computes something else.

Files become pixels through `protocol.images`, the module the HTTP front decodes uploads with:
the check feeds the converted models what the service will feed them (orientation, alpha,
16-bit, and for CLIP the same reduction and bicubic resize). This is the one import from
models/ into protocol/ (models/ otherwise knows nothing of the service).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from protocol.images import (
    CLIP_DRAFT_SIDE,
    CLIP_SIZE,
    OCR_MAX_SIDE,
    clip_pixels,
    load_rgb,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
CLIP_TEXTS = ("一只猫", "海边的日落", "红色的汽车", "a dog on the grass", "山上的雪", "生日蛋糕")
_LINES = ("Invoice 2024-05-17", "TOTAL 128.50 EUR", "Hello World", "RK3588 NPU", "mtai 0.1",
          "Quick brown fox 42", "SALE -30%", "Station 7 Platform B")


def image_files(directory: Path) -> list[Path]:
    """Image files under ``directory`` (recursive, sorted); ValueError when there are none."""
    files = sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {directory}")
    return files


def synthetic_text_images(count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """Light pages with dark text lines of several sizes and widths (some rotated by 180)."""
    rng = np.random.default_rng(seed)
    images = []
    for index in range(count):
        height, width = int(rng.integers(300, 900)), int(rng.integers(400, 1200))
        page = np.full((height, width, 3), int(rng.integers(200, 256)), np.uint8)
        y = 40
        while y < height - 20:
            text = _LINES[int(rng.integers(len(_LINES)))]
            scale = float(rng.uniform(0.7, 1.6))
            colour = tuple(int(v) for v in rng.integers(0, 90, 3))
            cv2.putText(page, text, (int(rng.integers(10, 60)), y), cv2.FONT_HERSHEY_SIMPLEX,
                        scale, colour, 2, cv2.LINE_AA)
            y += int(45 * scale) + int(rng.integers(10, 40))
        images.append(page[::-1, ::-1].copy() if index % 3 == 2 else page)
    return images


def synthetic_photos(count: int = 6, seed: int = 0) -> list[np.ndarray]:
    """CLIP-sized scenes: gradients, circles and boxes in varied colours."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, CLIP_SIZE, dtype=np.float32)
    photos = []
    for _ in range(count):
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        weight = ramp[:, None, None]
        image = top[None, None] * (1 - weight) + bottom[None, None] * weight
        image = np.ascontiguousarray(np.broadcast_to(image, (CLIP_SIZE, CLIP_SIZE, 3))
                                     .astype(np.uint8))
        for _ in range(int(rng.integers(2, 6))):
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            centre = tuple(int(v) for v in rng.integers(20, CLIP_SIZE - 20, 2))
            cv2.circle(image, centre, int(rng.integers(10, 60)), colour, -1)
        photos.append(image)
    return photos


def ocr_samples(directory: Path | None) -> tuple[list[tuple[str, np.ndarray]], str]:
    """(name, RGB image) pairs and a description of where they came from."""
    if directory is None:
        images = synthetic_text_images()
        return [(f"synthetic-{i}", img) for i, img in enumerate(images)], "generated text pages"
    files = image_files(directory)
    images = [(p.name, load_rgb(p, OCR_MAX_SIDE)) for p in files]
    return images, f"{len(files)} images from {directory}"


def clip_samples(directory: Path | None) -> tuple[list[tuple[str, np.ndarray]], str]:
    """(name, CLIP-sized RGB) pairs and a description of where they came from: each file
    decoded and resized exactly as /clip/img does it."""
    if directory is None:
        photos = synthetic_photos()
        return [(f"synthetic-{i}", img) for i, img in enumerate(photos)], "generated pictures"
    files = image_files(directory)
    pictures = [(p.name, clip_pixels(load_rgb(p, CLIP_DRAFT_SIDE))) for p in files]
    return pictures, f"{len(files)} images from {directory}"


def synthetic_faces(count: int = 4, seed: int = 0) -> list[np.ndarray]:
    """Scenes of coarse colour-noise ovals of face sizes on flat backgrounds: they drive a
    detector's heads everywhere (the check compares the heads' raw outputs, faces or not)."""
    rng = np.random.default_rng(seed)
    scenes = []
    for _ in range(count):
        height, width = int(rng.integers(300, 900)), int(rng.integers(300, 900))
        scene = np.full((height, width, 3), int(rng.integers(120, 240)), np.uint8)
        for _ in range(int(rng.integers(2, 9))):
            side = int(rng.integers(40, min(height, width) // 2))
            cells = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            tile = cv2.resize(cells, (side, side), interpolation=cv2.INTER_NEAREST)
            mask = np.zeros((side, side), np.uint8)
            cv2.ellipse(mask, (side // 2, side // 2), (side // 3, side * 4 // 9), 0, 0, 360, 1, -1)
            y, x = int(rng.integers(0, height - side)), int(rng.integers(0, width - side))
            region = scene[y:y + side, x:x + side]
            region[mask > 0] = tile[mask > 0]
        scenes.append(scene)
    return scenes


def face_samples(directory: Path | None) -> tuple[list[tuple[str, np.ndarray]], str]:
    """(name, RGB photo) pairs for the face check and where they came from; full size, as
    /represent decodes them."""
    if directory is None:
        scenes = synthetic_faces()
        return [(f"synthetic-{i}", img) for i, img in enumerate(scenes)], "generated scenes"
    files = image_files(directory)
    return [(p.name, load_rgb(p)) for p in files], f"{len(files)} images from {directory}"
