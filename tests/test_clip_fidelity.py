"""Our CLIP path against torch running cn_clip's own model and recipe (tests/fixtures/clip).

The front's Pillow resize plus our normalisation must give cn_clip's input tensor, and our
encoders on the exported ONNX files must give torch's vectors, on real photos and varied texts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from models.clip import ClipModels
from tests.clip_fixtures import (
    MAX_INPUT_DIFF,
    MIN_COSINE,
    cosine,
    front_pixels,
    install_tiny,
    reference,
    torch_input,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipModels:
    return ClipModels.load(install_tiny(tmp_path_factory.mktemp("models")).parent, load_text=True)


@pytest.fixture(scope="module")
def photos(shared: Path) -> dict[str, np.ndarray]:
    """Front-resized pixels of every photo the reference holds."""
    names = [str(name) for name in reference()["image_names"]]
    return {name: front_pixels(shared / "testdata" / "photos" / name) for name in names}


def test_reference_covers_every_shared_photo(shared: Path):
    on_disk = sorted(p.name for p in (shared / "testdata" / "photos").glob("*.jp*g"))
    assert [str(n) for n in reference()["image_names"]] == on_disk
    assert len(on_disk) == 12


def test_front_resize_gives_cn_clip_pixels(photos: dict[str, np.ndarray]):
    digests = dict(zip(reference()["image_names"], reference()["image_pixels_sha256"]))
    for name, pixels in photos.items():
        assert hashlib.sha256(pixels.tobytes()).hexdigest() == digests[name], name


def test_model_input_matches_torch(clip: ClipModels, photos: dict[str, np.ndarray]):
    sums = dict(zip(reference()["image_names"], reference()["image_input_sums"]))
    worst = 0.0
    for name, pixels in photos.items():
        expected = torch_input(pixels)
        assert float(expected.astype(np.float64).sum()) == pytest.approx(sums[name], abs=1e-3)
        ours = clip.image.prepare(pixels)
        assert ours.shape == (1, 3, 224, 224) and ours.dtype == np.float32
        worst = max(worst, float(np.abs(ours - expected).max()))
    assert worst <= MAX_INPUT_DIFF, f"max abs diff {worst:.2e}"


def test_image_vectors_match_torch(clip: ClipModels, photos: dict[str, np.ndarray]):
    features = dict(zip(reference()["image_names"], reference()["image_features"]))
    for name, pixels in photos.items():
        ours = clip.image(pixels)
        assert ours.shape == (512,) and ours.dtype == np.float32
        assert cosine(ours, features[name]) >= MIN_COSINE, name
        np.testing.assert_allclose(ours, features[name], rtol=0, atol=1e-3)


def test_photos_are_told_apart(clip: ClipModels, photos: dict[str, np.ndarray]):
    """The tolerance above would mean nothing if the random model mapped everything alike.

    portrait-orientation-6.jpg is portrait.jpg stored sideways (EXIF 6), so those two agree.
    """
    vectors = {name: clip.image(pixels) for name, pixels in photos.items()}
    assert cosine(vectors["portrait.jpg"], vectors.pop("portrait-orientation-6.jpg")) > 0.9999
    others = list(vectors.values())
    assert max(cosine(a, b) for i, a in enumerate(others) for b in others[i + 1 :]) < 0.999


def test_text_ids_and_vectors_match_torch(clip: ClipModels):
    ref = reference()
    encoder = clip.text()
    for text, tokens, features in zip(ref["texts"], ref["text_tokens"], ref["text_features"]):
        np.testing.assert_array_equal(encoder.tokens(str(text)), tokens[None], err_msg=str(text))
        ours = encoder(str(text))
        assert ours.shape == (512,) and ours.dtype == np.float32
        assert cosine(ours, features) >= MIN_COSINE, str(text)


def test_texts_are_told_apart():
    vectors = reference()["text_features"]
    worst = max(cosine(a, b) for i, a in enumerate(vectors) for b in vectors[i + 1 :])
    assert worst < 0.999
