"""The steps where RapidOCR 3.10.0 differs from 1.4.4, checked against RapidOCR 3.10.0's own
functions where it is installed (the ``bench`` extra) and against worked examples always; the
ground-truth generator's determinism and the scorer's arithmetic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.ocr.generations import (
    GENERATIONS,
    OCR_MODELS,
    family_name,
    generation,
    generation_of_family,
)
from models.ocr.geometry import line_order, reading_order
from models.ocr.recipe import RAPIDOCR_144, RAPIDOCR_310
from models.ocr.recognize import ctc_greedy_decode, load_charset
from models.tools.ocr_score import score_image, words_of
from models.tools.ocr_truth import TruthLine, large_specs, render, standard_specs


def quad(x: float, y: float, w: float = 40, h: float = 12) -> list[list[float]]:
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def test_line_order_chains_a_slanted_line_where_insertion_does_not():
    # tops 0, 8, 16 (each within 10 px of the previous): one line for 3.10, read by x
    quads = np.array([quad(200, 0), quad(100, 8), quad(0, 16), quad(50, 40)], np.float32)
    assert line_order(quads) == [2, 1, 0, 3]
    assert reading_order(quads) == [1, 0, 2, 3]  # 1.4.4: 2 is 16 px below 0, a line of its own


def test_line_order_equals_rapidocr_310():
    ch_det = pytest.importorskip("rapidocr.ch_ppocr_det.main")
    rng = np.random.default_rng(3)
    for _ in range(50):
        boxes = np.array([quad(*rng.integers(0, 300, 2)) for _ in range(12)], np.float32)
        expected = ch_det.TextDetector.sorted_boxes(boxes.copy())
        np.testing.assert_array_equal(boxes[line_order(boxes)], expected)


def test_scores_round_to_five_decimals_as_rapidocr_310():
    probs = np.zeros((1, 4, 3), np.float32)
    probs[0, :, 1] = [0.123456789, 0.0, 0.987654321, 0.0]
    probs[0, 1, 0] = probs[0, 3, 0] = 1.0
    probs[0, 2, 1] = 0.0
    probs[0, 2, 2] = 0.987654321
    (text, score), = ctc_greedy_decode(probs, ["blank", "a", "b"], digits=5)
    assert text == "ab" and score == round((0.12346 + 0.98765) / 2, 5)
    (_, full), = ctc_greedy_decode(probs, ["blank", "a", "b"])
    assert full != score and abs(full - score) < 1e-5


def test_dictionary_files_read_as_rapidocr_reads_them():
    data = "!\r\n\"\r\n \r\n中\r\n".encode()
    assert load_charset({}, data) == ["blank", "!", '"', " ", "中", " "]
    assert load_charset({}, b"a\nb") == ["blank", "a", "b", " "]


def test_generations_name_their_family_recipe_and_one_wheel():
    assert OCR_MODELS == ("ppocrv4", "ppocrv5-mobile", "ppocrv6-tiny", "ppocrv6-small")
    assert generation("ppocrv4").recipe == RAPIDOCR_144 and generation("ppocrv4").family == "ocr"
    for name in OCR_MODELS[1:]:
        assert generation(name).recipe == RAPIDOCR_310
    for gen in GENERATIONS.values():
        assert len({(f.package, f.version) for f in gen.files.values()}) == 1
        assert generation_of_family(gen.family) == (gen, None)
    assert family_name("ppocrv6-small", "korean") == "ocr-ppocrv6-small-korean"
    assert generation_of_family("ocr-korean") == (GENERATIONS["ppocrv4"], "korean")
    with pytest.raises(ValueError, match="choose from"):
        generation("ppocrv9")
    with pytest.raises(ValueError, match="not an OCR model family"):
        generation_of_family("clip")


def test_ground_truth_is_deterministic_and_spans_the_sizes(shared: Path):
    specs = standard_specs(shared / "testdata")
    sizes = {max(s.long_side, 0) for s in specs}
    assert {1000, 4032, 6000, 8000} <= sizes
    groups = {g for s in specs for g in s.groups}
    assert groups == {"en", "latin", "num", "zh-hans", "zh-hant", "ja", "ko", "mixed", "vertical"}
    first, again = render(specs[0]), render(specs[0])
    assert first.jpeg == again.jpeg and first.lines == again.lines and len(first.lines) >= 3
    big = render(large_specs(shared / "testdata", count=1)[0])
    assert (big.width, big.height) == (4032, 3024)
    for line in big.lines:  # corners inside the image
        xs, ys = zip(*line.box)
        assert min(xs) >= 0 and max(xs) <= big.width and min(ys) >= 0 and max(ys) <= big.height


def test_scorer_counts_glued_words_split_boxes_and_misses():
    truth = [TruthLine("Wash your hands", "en", tuple(map(tuple, quad(0, 0, 300, 30)))),
             TruthLine("欢迎光临本店", "zh-hans", tuple(map(tuple, quad(0, 100, 300, 30)))),
             TruthLine("Gate B42", "num", tuple(map(tuple, quad(0, 200, 200, 30))))]
    glued = [(quad(0, 0, 300, 30), "Washyourhands"), (quad(0, 100, 300, 30), "欢迎光临本店")]
    score = score_image(truth, glued)
    en, zh, num = (score.groups[g] for g in ("en", "zh-hans", "num"))
    assert (en.errors, en.words_ok, en.words, en.lines_ok) == (0, 0, 3, 1)  # CER ignores spaces
    assert zh.errors == 0 and zh.words_ok == zh.words == len(words_of("欢迎光临本店", "zh-hans"))
    assert (num.found, num.errors, num.chars) == (0, 7, 7)
    split = [(quad(150, 0, 140, 30), "hands"), (quad(0, 0, 60, 30), "Wash"),
             (quad(70, 0, 60, 30), "your")]
    en = score_image(truth[:1], split).groups["en"]
    assert (en.errors, en.words_ok) == (0, 3)
