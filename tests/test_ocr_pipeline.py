"""The OCR pipeline on degenerate inputs and its output contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.ocr.pipeline import OcrLine, OcrPipeline
from protocol.images import decode_image
from tests.ocr_fixtures import load_pipeline


@pytest.fixture(scope="module")
def pipeline(model_dir: Path) -> OcrPipeline:
    return load_pipeline(model_dir)


def _check_bounded(lines: list[OcrLine], height: int, width: int) -> None:
    assert isinstance(lines, list)
    assert len(lines) <= 50
    for line in lines:
        assert isinstance(line, OcrLine)
        assert len(line.box) == 4
        for x, y in line.box:
            assert 0 <= x <= width and 0 <= y <= height
        assert 0.5 <= line.score <= 1.0


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("black", np.zeros((480, 640, 3), np.uint8)),
        ("white", np.full((480, 640, 3), 255, np.uint8)),
        ("1x1", np.full((1, 1, 3), 128, np.uint8)),
        ("3x3", np.array([[[0, 255, 0]] * 3, [[255, 255, 255]] * 3, [[9, 9, 9]] * 3], np.uint8)),
        ("strip 10000x10", np.tile(np.arange(10000, dtype=np.uint8)[None, :, None], (10, 1, 3))),
        ("tall strip 10x10000", np.zeros((10000, 10, 3), np.uint8)),
        ("thin line 1999x2", np.full((2, 1999, 3), 200, np.uint8)),
    ],
)
def test_degenerate_images_give_bounded_output(pipeline: OcrPipeline, name: str, image):
    lines = pipeline(image)
    _check_bounded(lines, *image.shape[:2])
    if name in ("black", "white", "1x1", "3x3"):
        assert lines == []


def test_noise_gives_bounded_output(pipeline: OcrPipeline):
    image = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    _check_bounded(pipeline(image), 300, 400)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_rejects_what_is_not_an_rgb_image(pipeline: OcrPipeline, image):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        pipeline(image)


def test_lines_come_in_reading_order_with_clockwise_boxes(pipeline: OcrPipeline, shared: Path):
    data = (shared / "testdata/ocr/rapidocr_ch_en_num.jpg").read_bytes()
    lines = pipeline(decode_image(data).array)
    assert len(lines) > 10
    for line in lines:
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = line.box
        assert x1 > x0 and y3 > y0 and x2 > x3 and y2 > y1
        assert 0.5 <= line.box_score <= 1.0
    tops = [line.box[0][1] for line in lines]
    assert all(b >= a - 10 for a, b in zip(tops, tops[1:]))


def test_text_score_threshold_is_configurable(pipeline: OcrPipeline, shared: Path):
    image = decode_image((shared / "testdata/ocr/easyocr_example3.png").read_bytes()).array
    everything = pipeline(image, text_score=0.0)
    assert any(line.score < 0.5 for line in everything)
    assert pipeline(image) == [line for line in everything if line.score >= 0.5]
