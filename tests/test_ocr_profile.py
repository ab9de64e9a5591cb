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

from models.fetch import fetch_ocr, ocr_manifest
from models.manifest import MANIFEST_NAME, Manifest
from models.ocr.compare import match_lines
from models.ocr.detect import det_input_size
from models.ocr.layout import SEAM_MARGIN, plan_layout, spans
from models.ocr.pipeline import OcrPipeline, manifest_profile
from models.ocr.profile import DEFAULT_PROFILE, ProfileError, ShapeProfile
from models.ocr.split import join_texts, split_line
from protocol.images import decode_image
from tests.ocr_fixtures import (
    load_pipeline,
    profile_tolerance,
    read_agreement,
    recorded_pipeline,
)

# Agreement with the dynamic pipeline, measured by benchmarks/ocr_npu_profile.py (BENCHMARKS.md):
# the shipped profile reads 97.4% of the 117 dynamic lines with identical text, finds every box
# and reads 99.4% of the characters alike, with 3 lines more than the dynamic pipeline. The
# floors sit a few points under the measurement (PP-OCRv4's readings flip on borderline glyphs,
# and other CPUs round differently: RapidOCR's own recogniser batch of 8 instead of 6 keeps
# only 95.7% of its lines) and far above the published RKNN ports' scheme (29% / 38% / 27%).
MIN_EXACT = 0.94
MIN_FOUND = 0.97
MIN_CHARS = 0.96
MAX_EXTRA = 0.06


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
        reference = dynamic(image)
        lines = static(image)
        matching = match_lines(reference, lines, profile_tolerance)
        hits, missed, left_over = matching.matched, matching.missed, matching.extra
        c, a, f = read_agreement(reference, lines, profile_tolerance)
        total, exact, extra = total + len(reference), exact + hits, extra + left_over
        chars, alike, found = chars + c, alike + a, found + f
        if missed or left_over:
            report.append(f"{name}: missed {[m.text for m in missed]}, {left_over} extra")
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


@pytest.mark.parametrize("length,tile", [(736, 736), (737, 736), (5728, 1984), (3000, 992)])
def test_tiles_cover_every_pixel_once_away_from_their_borders(length: int, tile: int):
    tiles = spans(length, tile)
    assert tiles[0][1] == 0 and tiles[-1][2] == length
    for (start, keep_from, keep_to), following in zip(tiles, [*tiles[1:], None]):
        assert start <= keep_from < keep_to <= start + tile  # the kept band lies in the tile
        if following is not None:
            assert following[1] == keep_to  # contiguous, no pixel twice
            assert keep_to - following[0] >= SEAM_MARGIN <= start + tile - keep_to


def test_layout_keeps_the_dynamic_size_when_it_can():
    canvases = DEFAULT_PROFILE.det_canvases
    # 368x476 enlarges to 736x960 (short side 736): fed exactly so, no padding
    assert plan_layout(det_input_size(368, 476), (368, 476), canvases).canvas == (736, 960)
    # a 4:3 photo of 2000 px: its own 1504x1984
    layout = plan_layout(det_input_size(1500, 2000), (1500, 2000), canvases)
    assert (layout.canvas, layout.size, len(layout.tiles)) == ((1504, 1984), (1504, 1984), 1)
    # an 11x65 px word enlarged to 736x4416: whole, on the strip canvas padded least
    layout = plan_layout((736, 4416), (11, 65), canvases)
    assert (layout.canvas, layout.size, len(layout.tiles)) == ((736, 4992), (736, 4416), 1)
    # longer than the longest strip canvas: two tiles (of the fewest pixels), dynamic size
    layout = plan_layout((736, 8000), (92, 1000), canvases)
    assert (layout.canvas, layout.size, len(layout.tiles)) == ((736, 4160), (736, 8000), 2)
    # beyond MAX_TILES the image is scaled down into one canvas, aspect kept
    layout = plan_layout((736, 98112), (15, 2000), canvases)
    assert len(layout.tiles) == 1 and layout.canvas == (736, 6016)
    assert layout.size[1] == 6016 and abs(layout.size[1] / layout.size[0] - 2000 / 15) < 3


def test_stitched_tiles_give_the_dynamic_probability_map(model_dir: Path):
    """Tiles are placed and stitched right: over a strip no canvas holds, the static map is the
    dynamic one up to the detector's small response to what lies beyond each tile."""
    dynamic = load_pipeline(model_dir)
    static = OcrPipeline.load(model_dir, threads=1, static_shapes=True)
    strip = np.full((60, 600, 3), 255, np.uint8)
    for x in range(10, 560, 110):
        cv2.putText(strip, "TEXT", (x, 42), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    size = det_input_size(*strip.shape[:2])
    assert len(plan_layout(size, strip.shape[:2], static.detector.canvases).tiles) > 1
    ours = static.detector.probabilities(strip)
    theirs = dynamic.detector.probabilities(strip)
    assert ours.shape == theirs.shape == size
    assert float(np.abs(ours - theirs).mean()) < 0.01
    boxes, _ = static.detector(strip)
    expected, _ = dynamic.detector(strip)
    assert len(boxes) == len(expected) == 5  # one per word, none cut at a seam
    for box in expected:
        assert min(np.abs(b - box).max() for b in boxes) <= 2
