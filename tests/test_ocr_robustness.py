"""The OCR pipeline on hostile inputs: no exception, sane output, bounded time and work.

Time bounds are hang guards only (generous: CI machines are shared); work is bounded by caps
the pipeline documents: at most 1000 detector candidates (as RapidOCR) and ``MAX_LINES`` lines
recognised per image.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from models.ocr.pipeline import MAX_LINES, OcrLine, OcrPipeline
from models.ocr.profile import DEFAULT_PROFILE
from protocol.images import decode_image
from tests.ocr_fixtures import load_pipeline, recorded_pipeline

HANG_GUARD_S = 120.0


@pytest.fixture(scope="module")
def pipeline(model_dir: Path) -> OcrPipeline:
    return load_pipeline(model_dir)


@pytest.fixture(scope="module")
def static_pipeline(model_dir: Path) -> OcrPipeline:
    return recorded_pipeline(model_dir, DEFAULT_PROFILE)[0]


def read(pipeline: OcrPipeline, image: np.ndarray) -> list[OcrLine]:
    """Run once under the hang guard and check the output contract."""
    started = time.monotonic()
    lines = pipeline(image)
    assert time.monotonic() - started < HANG_GUARD_S
    height, width = image.shape[:2]
    assert len(lines) <= MAX_LINES
    for line in lines:
        assert len(line.box) == 4
        assert all(0 <= x <= width and 0 <= y <= height for x, y in line.box)
        assert 0.5 <= line.score <= 1.0 and line.text
    return lines


def text_image(lines: list[str], width: int, scale: float = 1.0, pitch: int = 40) -> np.ndarray:
    """Black text on white, one string per row (OpenCV's Hershey font: Latin only)."""
    image = np.full((pitch * len(lines) + pitch, width, 3), 255, np.uint8)
    for row, text in enumerate(lines, 1):
        cv2.putText(image, text, (20, row * pitch), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2)
    return image


@pytest.mark.parametrize("mode", ["dynamic", "static"])
@pytest.mark.parametrize(
    ("name", "shape", "fill"),
    [
        ("black", (480, 640, 3), 0),
        ("white", (480, 640, 3), 255),
        ("1x1", (1, 1, 3), 128),
        ("strip 10000x10", (10, 10000, 3), None),
        ("strip 10x10000", (10000, 10, 3), None),
    ],
)
def test_empty_and_degenerate_images(
    pipeline: OcrPipeline, static_pipeline: OcrPipeline, mode: str, name: str, shape, fill
):
    if fill is None:  # a gradient along the strip: edges everywhere, text nowhere
        height, width = shape[:2]
        ramp = (np.arange(max(height, width)) % 256).astype(np.uint8)
        ramp = ramp.reshape((1, width) if width > height else (height, 1))
        image = np.broadcast_to(ramp[..., None], shape).copy()
    else:
        image = np.full(shape, fill, np.uint8)
    lines = read(pipeline if mode == "dynamic" else static_pipeline, image)
    if not name.startswith("strip"):
        assert lines == []


@pytest.mark.parametrize("mode", ["dynamic", "static"])
def test_a_text_strip_is_read(pipeline: OcrPipeline, static_pipeline: OcrPipeline, mode: str):
    strip = text_image(["THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG " * 6], 3000, pitch=40)
    assert strip.shape[:2] == (80, 3000)  # flatter than 8:1: the detector sees it letterboxed
    lines = read(pipeline if mode == "dynamic" else static_pipeline, strip)
    assert "QUICKBROWNFOX" in "".join(line.text for line in lines).replace(" ", "").upper()


def test_a_page_of_hundreds_of_lines_is_read_within_the_cap(pipeline: OcrPipeline):
    rows = [f"Line {i:03d} of the generated page" for i in range(120)]
    column = text_image(rows, 700, scale=0.8, pitch=30)
    page = np.concatenate([column, column], axis=1)  # two columns of 120 lines
    lines = read(pipeline, page)
    assert len(lines) >= 200
    texts = {line.text for line in lines}
    assert sum(text in texts for text in rows) >= 0.8 * len(rows)


def test_the_line_cap_keeps_the_surest_boxes(model_dir: Path):
    rows = [f"row {i} text" for i in range(40)]
    capped = load_pipeline(model_dir)
    image = text_image(rows, 400)
    full = capped(image, text_score=0.0)
    assert len(full) > 10
    saved = capped.max_lines
    try:
        capped.max_lines = 10
        few = capped(image, text_score=0.0)
    finally:
        capped.max_lines = saved
    assert len(few) == 10
    surest = sorted((line.box_score for line in full), reverse=True)[:10]
    assert sorted((line.box_score for line in few), reverse=True) == pytest.approx(surest)


def test_vertical_text_is_laid_down_and_read(pipeline: OcrPipeline):
    word = text_image(["VERTICAL"], 260, scale=1.2, pitch=50)
    upright = read(pipeline, word)
    standing = read(pipeline, cv2.rotate(word, cv2.ROTATE_90_CLOCKWISE))
    assert [line.text for line in upright] == ["VERTICAL"]
    assert [line.text for line in standing] == ["VERTICAL"]


@pytest.mark.parametrize(
    "turn", [cv2.ROTATE_90_CLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_COUNTERCLOCKWISE]
)
def test_rotated_photos_give_sane_output(pipeline: OcrPipeline, shared: Path, turn: int):
    data = (shared / "testdata/ocr/rapidocr_ch_en_num.jpg").read_bytes()
    image = cv2.rotate(decode_image(data).array, turn)
    lines = read(pipeline, image)
    assert lines, "rotated text is still text"
