"""OCR building blocks on synthetic inputs: DB post-process, CTC decoding, box geometry."""

from __future__ import annotations

import numpy as np
import pytest

from models.fetch import ocr_manifest
from models.ocr.detect import DbParams, db_boxes, det_input_size, order_clockwise, round32
from models.ocr.geometry import (
    Placement,
    crop_quad,
    fit_sides,
    letterbox,
    reading_order,
    to_input_pixels,
)
from models.ocr.recognize import ctc_greedy_decode, load_charset
from models.preprocess import PixelTable, normalize_chw, to_model_order


def _map_with(*regions: tuple[slice, slice, float], shape=(100, 200)) -> np.ndarray:
    prob = np.zeros(shape, dtype=np.float32)
    for rows, cols, value in regions:
        prob[rows, cols] = value
    return prob


def test_db_finds_a_text_block_and_grows_it_back_by_the_unclip_offset():
    prob = _map_with((slice(40, 60), slice(50, 150), 0.9))
    quads, scores = db_boxes(prob, 100, 200)
    assert quads.shape == (1, 4, 2) and quads.dtype == np.int32
    assert 0.8 < scores[0] <= 0.9
    # A ~101x21 kernel grows by area * 1.6 / perimeter, about 14 px on every side.
    grow = 101 * 21 * 1.6 / (2 * (101 + 21))
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = quads[0]
    assert abs(x0 - (50 - grow)) <= 2.5 and abs(y0 - (40 - grow)) <= 2.5
    assert abs(x2 - (150 + grow)) <= 2.5 and abs(y2 - (60 + grow)) <= 2.5
    assert x1 == x2 and x0 == x3 and y0 == y1 and y2 == y3


def test_db_scales_boxes_to_the_destination_and_clips_them():
    prob = _map_with((slice(40, 60), slice(50, 150), 0.9))
    small, _ = db_boxes(prob, 100, 200)
    large, _ = db_boxes(prob, 200, 400)
    assert np.abs(large - 2 * small).max() <= 1
    edge, _ = db_boxes(_map_with((slice(0, 20), slice(0, 60), 0.9)), 100, 200)
    assert edge.min() >= 0


def test_db_drops_weak_tiny_and_surplus_regions():
    weak = _map_with((slice(40, 60), slice(50, 150), 0.45))  # text pixels, mean below 0.5
    assert len(db_boxes(weak, 100, 200)[0]) == 0
    assert len(db_boxes(weak, 100, 200, DbParams(box_thresh=0.4))[0]) == 1
    tiny = _map_with((slice(10, 11), slice(10, 12), 1.0))
    assert len(db_boxes(tiny, 100, 200)[0]) == 0
    two = _map_with((slice(10, 30), slice(10, 80), 0.9), (slice(60, 80), slice(100, 190), 0.9))
    assert len(db_boxes(two, 100, 200)[0]) == 2
    assert len(db_boxes(two, 100, 200, DbParams(max_candidates=1))[0]) == 1
    assert len(db_boxes(np.zeros((64, 64), np.float32), 64, 64)[0]) == 0


def test_dilation_joins_blocks_split_by_one_pixel():
    split = _map_with((slice(40, 60), slice(50, 100), 0.9), (slice(40, 60), slice(101, 150), 0.9))
    assert len(db_boxes(split, 100, 200)[0]) == 1
    assert len(db_boxes(split, 100, 200, DbParams(use_dilation=False))[0]) == 2


def test_ctc_collapses_repeats_drops_blanks_and_averages_kept_steps():
    charset = ["blank", "a", "b", " "]
    steps = [(0, 0.9), (1, 0.8), (1, 0.6), (0, 0.9), (1, 0.7), (2, 0.5), (2, 0.9)]
    probs = np.full((2, len(steps), 4), 0.01, dtype=np.float32)
    for t, (cls, p) in enumerate(steps):
        probs[0, t, cls] = p
    probs[1, :, 0] = 0.99  # all blank
    (text, score), empty = ctc_greedy_decode(probs, charset)
    assert text == "aab"
    assert score == pytest.approx((0.8 + 0.7 + 0.5) / 3, abs=1e-6)
    assert empty == ("", 0.0)


def test_charset_wraps_the_model_list_in_blank_and_space():
    assert load_charset({"character": "x\ny\n"}) == ["blank", "x", "y", " "]
    with pytest.raises(ValueError, match="character"):
        load_charset({})


def test_sizes_round_to_32_and_never_vanish():
    assert [round32(v) for v in (0, 10, 47, 48, 49, 736)] == [32, 32, 32, 64, 64, 736]
    assert det_input_size(132, 709) == (736, 3968)
    assert det_input_size(1000, 800) == (992, 800)


def test_fit_sides_caps_long_side_and_lifts_short_side():
    image, place = fit_sides(np.zeros((3000, 1000, 3), np.uint8), 2000, 30)
    assert image.shape[:2] == (1984, 672)  # 62.5 * 32 rounds half to even
    assert (place.scale_y, place.scale_x) == pytest.approx((3000 / 1984, 1000 / 672))
    image, place = fit_sides(np.zeros((1, 1, 3), np.uint8), 2000, 30)
    assert image.shape[:2] == (32, 32) and place.scale_x == pytest.approx(1 / 32)
    image, _ = fit_sides(np.zeros((10, 10000, 3), np.uint8), 2000, 30)
    assert image.shape[:2] == (32, 1984)
    image, _ = fit_sides(np.zeros((2, 1999, 3), np.uint8), 2000, 30)
    assert max(image.shape[:2]) <= 2016
    same = np.zeros((500, 400, 3), np.uint8)
    assert fit_sides(same, 2000, 30)[0] is same


def test_letterbox_bands_flat_and_tall_images_and_maps_back():
    wide, place = letterbox(np.zeros((32, 2016, 3), np.uint8), Placement())
    assert wide.shape[:2] == (32 + 2 * place.top, 2016) and wide.shape[0] >= 2016 // 4
    tall, place_t = letterbox(np.zeros((2016, 32, 3), np.uint8), Placement())
    assert tall.shape[:2] == (2016, 32 + 2 * place_t.left)
    quad = np.array([[[10, place.top + 5], [20, place.top + 5], [20, 600], [10, 600]]], np.float32)
    back = to_input_pixels(quad, Placement(scale_x=2, scale_y=2, top=place.top), 64, 4032)
    assert back[0, 0].tolist() == [20, 10] and back[0, 2, 1] == 64  # clamped to the image


def test_reading_order_is_top_down_then_left_right_within_a_line():
    def box(x, y):
        return [[x, y], [x + 30, y], [x + 30, y + 10], [x, y + 10]]

    quads = np.array([box(100, 10), box(10, 15), box(50, 40), box(5, 45), box(0, 80)], np.float32)
    assert reading_order(quads) == [1, 0, 3, 2, 4]


def test_corners_are_ordered_clockwise_from_top_left():
    shuffled = np.array([[30, 20], [0, 0], [0, 20], [30, 0]], np.float32)
    assert order_clockwise(shuffled).tolist() == [[0, 0], [30, 0], [30, 20], [0, 20]]


def test_crops_are_warped_upright_and_tall_ones_laid_down():
    image = np.zeros((100, 100, 3), np.uint8)
    image[20:30, 10:90] = 255
    flat = crop_quad(image, np.array([[10, 20], [90, 20], [90, 30], [10, 30]], np.float32))
    assert flat.shape == (10, 80, 3) and flat.mean() > 200
    tall = crop_quad(image, np.array([[10, 10], [20, 10], [20, 90], [10, 90]], np.float32))
    assert tall.shape == (10, 80, 3) and tall.flags.c_contiguous


def test_pixels_reach_the_network_in_its_order_and_range():
    recipe = ocr_manifest().models["det"].preprocess
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 255  # pure red
    bgr = to_model_order(rgb, recipe)
    assert bgr[0, 0].tolist() == [0, 0, 255] and bgr.flags.c_contiguous
    chw = normalize_chw(bgr, recipe)
    assert chw.shape == (3, 2, 3) and chw.dtype == np.float32
    assert chw[0].max() == -1.0 and chw[2].min() == 1.0


def test_pixel_tables_equal_the_separate_passes_and_fill_batch_slices():
    recipe = ocr_manifest().models["det"].preprocess
    table = PixelTable(recipe)
    rgb = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    expected = normalize_chw(to_model_order(rgb, recipe), recipe)
    assert np.array_equal(table(rgb), expected)
    batch = np.zeros((2, 3, 37, 80), np.float32)
    table(rgb, out=batch[1, :, :, :53])
    assert np.array_equal(batch[1, :, :, :53], expected) and not batch[1, :, :, 53:].any()
