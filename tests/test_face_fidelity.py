"""Our face pipeline against insightface 2.1 on the same (generated) model files.

The same photo must give the same faces: boxes and landmarks within 0.01 px, the same scores,
embeddings at cosine >= 0.99999 (raw, and L2-normalised as MT-Photos' sidecars send them).
Hard inputs too: no face, a crowd of 200, faces cut by the border, 1x1 and very large or flat
images, grayscale.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from models.face.pipeline import FacePipeline, l2_normalised
from tests.face_fixtures import (
    MAX_PIXELS_OFF,
    MIN_COSINE,
    THRESHOLD,
    Reference,
    collage,
    cosine_rows,
    install_tiny,
)

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "testdata" / "photos"


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[FacePipeline, Reference]:
    source = tmp_path_factory.mktemp("face-src")
    model_dir = tmp_path_factory.mktemp("face-models")
    install_tiny(model_dir, source)
    reference = Reference(source / "det_10g.onnx", source / "w600k_r50.onnx")
    return FacePipeline.load(model_dir, threads=1), reference


def photo(name: str) -> np.ndarray:
    with Image.open(PHOTOS / name) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))


def grey(name: str) -> np.ndarray:
    with Image.open(PHOTOS / name) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("L").convert("RGB"))


CASES = {
    "crowd of 200": lambda: collage(10, 20),
    "cut by the border": lambda: np.ascontiguousarray(collage(3, 4)[40:, 50:]),
    "flat grey (no face)": lambda: np.full((400, 600, 3), 127, np.uint8),
    "1x1": lambda: np.full((1, 1, 3), 200, np.uint8),
    "huge 6000x4000": lambda: np.tile(collage(4, 6), (11, 11, 1))[:4000, :6000].copy(),
    "wide strip": lambda: collage(1, 40),
    "grayscale photo": lambda: grey("silver_fir.jpg"),
    **{name: (lambda n=name: photo(n)) for name in sorted(p.name for p in PHOTOS.iterdir())},
}


def compare(pair, rgb: np.ndarray, threshold: float = THRESHOLD):
    ours, reference = pair
    faces = ours(rgb, threshold)
    dets, points, raw, normed = reference(rgb, threshold)
    assert len(faces) == dets.shape[0]
    if len(faces):
        assert np.abs(faces.boxes - dets[:, :4]).max() <= MAX_PIXELS_OFF
        assert np.abs(faces.landmarks - points).max() <= MAX_PIXELS_OFF
        assert np.abs(faces.scores - dets[:, 4]).max() <= 1e-6
        assert cosine_rows(faces.embeddings, raw).min() >= MIN_COSINE
        assert cosine_rows(l2_normalised(faces.embeddings), normed).min() >= MIN_COSINE
        assert np.abs(np.linalg.norm(l2_normalised(faces.embeddings), axis=1) - 1).max() < 1e-5
    return faces


@pytest.mark.parametrize("case", list(CASES))
def test_same_faces_as_insightface(pair, case):
    compare(pair, CASES[case]())


def test_the_photos_hold_faces_for_the_random_model(pair):
    """Otherwise the comparison above would prove nothing about decode, NMS or alignment."""
    counts = [len(pair[0](photo(p.name), THRESHOLD)) for p in sorted(PHOTOS.iterdir())]
    assert sum(c > 0 for c in counts) >= 6 and sum(counts) >= 30, counts


def test_no_cap_on_faces(pair):
    faces = compare(pair, collage(10, 20))
    assert len(faces) >= 100  # the RK sidecars stop at 10


def test_border_faces_keep_coordinates_beyond_the_image(pair):
    faces = compare(pair, CASES["cut by the border"]())
    assert (faces.boxes[:, :2] < 0).any()  # not clipped, as in InsightFace


def test_a_flat_image_has_no_face(pair):
    assert len(compare(pair, CASES["flat grey (no face)"]())) == 0


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.9])
def test_threshold_is_honoured_like_the_reference(pair, threshold):
    faces = compare(pair, photo("el_torcal_rocks.jpg"), threshold)
    assert (faces.scores >= np.float32(threshold)).all()


def test_an_image_too_flat_for_insightface_still_answers(pair):
    """2x5000 px: InsightFace's resize to 0 px rows fails; here the strip is 1 px high."""
    faces = pair[0](np.full((2, 5000, 3), 90, np.uint8), THRESHOLD)
    assert len(faces) == 0
