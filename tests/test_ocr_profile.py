"""The static-shape (NPU) profile: it keeps the text and feeds the models only its own shapes.

The static pipeline runs here on onnxruntime with the same ONNX files the RKNN converter builds
from; a recording wrapper around each real session lists every input shape it was fed.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from frontend.decode import decode_image
from models.fetch import fetch_ocr, ocr_manifest
from models.manifest import MANIFEST_NAME, Manifest
from models.ocr.detect import choose_canvas
from models.ocr.pipeline import OcrPipeline, manifest_profile
from models.ocr.profile import DEFAULT_PROFILE, ProfileError, ShapeProfile
from models.ocr.split import join_texts, split_line
from tests.ocr_fixtures import (
    BOX_TOLERANCE_PX,
    as_reference,
    line_height,
    load_pipeline,
    match_lines,
    read_agreement,
    recorded_pipeline,
)

# Agreement with the dynamic pipeline, measured by benchmarks/ocr_npu_profile.py (BENCHMARKS.md):
# the shipped profile reads 76.9% of the 117 dynamic lines with identical text, finds 90.6% of
# the boxes and 94.3% of the characters. The 97% identical-line target is not reachable
# by any static scheme measured: the dynamic pipeline itself, with the detector's short side at
# 704 or 768 instead of 736, keeps only 72-73% of its own lines (a 32 px pad of the detector
# canvas alone costs 4%), because PP-OCRv4's outputs flip on borderline glyphs. The floors below
# sit a few points under the measurement (other CPUs round differently) and far above the
# published RKNN ports' scheme (29% / 38% / 27%).
MIN_EXACT = 0.72
MIN_FOUND = 0.87
MIN_CHARS = 0.90
MAX_EXTRA = 0.25


def profile_tolerance(ref: dict) -> float:
    """A different detector scale moves box edges a little: 2 px or 20% of the line height."""
    return max(BOX_TOLERANCE_PX, 0.2 * line_height(ref))


def shared_images(shared: Path) -> list[tuple[str, np.ndarray]]:
    testdata = shared / "testdata"
    return [
        (f"{folder}/{path.name}", decode_image(path.read_bytes()).array)
        for folder in ("ocr", "photos")
        for path in sorted((testdata / folder).iterdir())
    ]


def test_the_profile_keeps_the_text_and_feeds_only_its_shapes(model_dir: Path, shared: Path):
    dynamic = load_pipeline(model_dir)
    profile = manifest_profile(Manifest.load(model_dir / "ocr" / MANIFEST_NAME).models)
    assert profile == DEFAULT_PROFILE
    static, recorders = recorded_pipeline(model_dir, profile)
    total = exact = extra = chars = alike = found = 0
    report = []
    for name, image in shared_images(shared):
        reference = as_reference(dynamic(image))
        lines = static(image)
        hits, missed, left_over = match_lines(reference, lines, profile_tolerance)
        c, a, f = read_agreement(reference, lines, profile_tolerance)
        total, exact, extra = total + len(reference), exact + hits, extra + left_over
        chars, alike, found = chars + c, alike + a, found + f
        if missed or left_over:
            report.append(f"{name}: missed {[m['text'] for m in missed]}, {left_over} extra")
    assert total >= 100
    detail = f"exact {exact}, found {found} of {total} lines; {alike}/{chars} chars\n" + "\n".join(
        report
    )
    assert exact / total >= MIN_EXACT, detail
    assert found / total >= MIN_FOUND, detail
    assert alike / chars >= MIN_CHARS, detail
    assert extra / total <= MAX_EXTRA, detail
    allowed = profile.shapes()
    for role, recorder in recorders.items():
        assert recorder.shapes, f"{role} was never run"
        fed = {tuple(s) for s in recorder.shapes}
        assert fed <= {tuple(s) for s in allowed[role]}, f"{role} fed {fed - set(allowed[role])}"


def test_the_manifest_carries_the_profile_and_reads_it_back():
    specs = ocr_manifest().models
    for role, shapes in DEFAULT_PROFILE.shapes().items():
        assert specs[role].shapes == shapes
        assert all(d > 0 for shape in shapes for d in shape)  # static: what RKNN can build
    assert manifest_profile(specs) == DEFAULT_PROFILE
    assert ShapeProfile.from_shapes(DEFAULT_PROFILE.shapes()) == DEFAULT_PROFILE


def test_a_manifest_without_shapes_still_loads(model_dir: Path, tmp_path: Path):
    raw = json.loads((model_dir / "ocr" / MANIFEST_NAME).read_text())
    for spec in raw["models"].values():
        spec["shapes"] = None
    raw["models"]["cls"].pop("shapes")
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(raw))
    old = Manifest.load(tmp_path / MANIFEST_NAME)
    assert all(spec.shapes is None for spec in old.models.values())
    assert manifest_profile(old.models) == DEFAULT_PROFILE  # nothing built yet to disagree with


def test_fetching_again_updates_an_old_manifest_without_downloading(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = tmp_path / "models" / "ocr"
    target.mkdir(parents=True)
    for spec in ocr_manifest().models.values():
        (target / spec.file).write_bytes((model_dir / "ocr" / spec.file).read_bytes())
    raw = json.loads((model_dir / "ocr" / MANIFEST_NAME).read_text())
    for spec in raw["models"].values():
        spec["shapes"] = None
    (target / MANIFEST_NAME).write_text(json.dumps(raw))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # a download attempt would fail loudly
    messages: list[str] = []
    fetch_ocr(tmp_path / "models", messages.append)
    assert "manifest updated" in messages[-1]
    assert Manifest.load(target / MANIFEST_NAME) == ocr_manifest()


def test_mode_follows_the_backend_unless_asked(model_dir: Path):
    assert OcrPipeline.load(model_dir, threads=1).profile is None
    static = OcrPipeline.load(model_dir, threads=1, static_shapes=True)
    assert static.profile == DEFAULT_PROFILE
    assert static.recognizer.widths == DEFAULT_PROFILE.rec_widths


CLS = [[1, 3, 48, 192]]
REC = [[1, 3, 48, 320]]


@pytest.mark.parametrize(
    "shapes",
    [
        {"det": [[1, 3, 736, 736]], "cls": [], "rec": REC},  # no classifier shape
        {"det": [[1, 3, 736, 736], [2, 3, 736, 992]], "cls": CLS, "rec": REC},  # two det batches
        {"det": [[1, 3, 700, 736]], "cls": CLS, "rec": REC},  # not a multiple of 32
        {"det": [[1, 3, 736, 736]], "cls": CLS, "rec": [*REC, [1, 3, 32, 640]]},  # two heights
        {"det": [[1, 736, 736]], "cls": CLS, "rec": REC},  # not NCHW
    ],
)
def test_shapes_the_pipeline_cannot_feed_are_refused(shapes):
    with pytest.raises(ProfileError):
        ShapeProfile.from_shapes(shapes)


def test_long_lines_are_cut_in_gaps_into_pieces_that_fit():
    line = np.full((40, 1600, 3), 255, np.uint8)
    words = "SPLIT THIS VERY LONG LINE OF WORDS INTO PIECES THAT FIT THE WIDEST BUCKET"
    cv2.putText(line, words, (5, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2)
    pieces, gaps = split_line(line, 48, 320)
    assert len(pieces) >= 3 and len(gaps) == len(pieces) - 1
    assert sum(p.shape[1] for p in pieces) == line.shape[1]
    for piece in pieces:
        assert np.ceil(48 * piece.shape[1] / piece.shape[0]) <= 320
    for piece in pieces[:-1]:
        assert piece[:, -1].min() > 128  # cut in white space, not through a glyph
    short, no_cuts = split_line(line[:, :200], 48, 320)
    assert len(short) == 1 and no_cuts == []


def test_pieces_join_with_spaces_only_between_latin_words():
    assert join_texts(["LONG", "LINE"], [True]) == "LONG LINE"
    assert join_texts(["LONG", "LINE"], [False]) == "LONGLINE"
    comma = "\uff0c"  # full-width; CJK text has no spaces
    assert join_texts([f"取决于{comma}", "它可能"], [True]) == f"取决于{comma}它可能"
    assert join_texts(["A", "", "B"], [False, True]) == "A B"  # an empty piece keeps its gap


def test_canvases_keep_the_dynamic_size_when_they_can_else_the_aspect():
    canvases = DEFAULT_PROFILE.det_canvases
    # 368x476 enlarges to 736x960 (short side 736): the 736x992 canvas holds it as is
    assert choose_canvas(368, 476, canvases) == ((736, 992), (736, 960))
    # a 2000x1500 photo: no canvas holds 1984x1504, so it shrinks into the portrait canvas
    canvas, (height, width) = choose_canvas(2000, 1500, canvases)
    assert canvas == (992, 736) and height <= 992 and width <= 736
    assert abs(height / width - 2000 / 1500) < 0.01
