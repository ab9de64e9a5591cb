"""CLIP encoders: the colour switch, the manifest-driven input layout, input checks, l2."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from models.clip import ClipModels, l2_normalise
from models.clip.image import ClipImageEncoder
from models.manifest import ModelSpec
from models.preprocess import normalize_chw
from tests.clip_fixtures import MIN_COSINE, cosine, front_pixels, install_tiny


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> ClipModels:
    return ClipModels.load(install_tiny(tmp_path_factory.mktemp("models")).parent)


@pytest.fixture(scope="module")
def pokemon(shared: Path) -> np.ndarray:
    """A photo with strong reds and blues, so a channel swap shows."""
    return front_pixels(shared / "testdata" / "photos" / "pokemon.jpeg")


def folded(spec: ModelSpec) -> ModelSpec:
    """The spec an RKNN conversion writes: mean/std inside the model, raw uint8 NHWC in."""
    return dataclasses.replace(
        spec, layout="NHWC", dtype="uint8", shape=(1, 224, 224, 3), mean_std_folded=True
    )


class Recorder:
    """A Session that keeps what it was fed and answers a fixed vector."""

    def __init__(self) -> None:
        self.feeds: list[dict[str, np.ndarray]] = []

    @property
    def input_names(self) -> list[str]:
        return ["image"]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.feeds.append(feeds)
        return [np.ones((1, 512), dtype=np.float32)]

    def metadata(self) -> dict[str, str]:
        return {}


class FoldedOnnx:
    """Stands for a model with mean/std folded in: takes uint8 NHWC, runs the ONNX export."""

    def __init__(self, encoder: ClipImageEncoder) -> None:
        self.inner, self.recipe = encoder.session, encoder.spec.preprocess

    @property
    def input_names(self) -> list[str]:
        return ["image"]

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        (batch,) = feeds.values()
        assert batch.dtype == np.uint8 and batch.shape == (1, 224, 224, 3)
        return self.inner.run({"image": normalize_chw(batch[0], self.recipe)[None]})

    def metadata(self) -> dict[str, str]:
        return {}


def test_bgr_compat_hands_the_model_blue_for_red(clip: ClipModels, pokemon: np.ndarray):
    spec, session = clip.image.spec, clip.image.session
    compat = ClipImageEncoder(session, spec, bgr_compat=True)
    swapped = np.ascontiguousarray(pokemon[..., ::-1])
    np.testing.assert_array_equal(compat.prepare(pokemon), clip.image.prepare(swapped))
    assert cosine(compat(pokemon), clip.image(swapped)) >= MIN_COSINE
    assert cosine(compat(pokemon), clip.image(pokemon)) < 0.99  # the two indexes do not mix


def test_folded_model_gets_raw_uint8_nhwc(clip: ClipModels, pokemon: np.ndarray):
    for bgr in (False, True):
        recorder = Recorder()
        encoder = ClipImageEncoder(recorder, folded(clip.image.spec), bgr_compat=bgr)
        vector = encoder(pokemon)
        (feed,) = recorder.feeds[0].values()
        expected = pokemon[..., ::-1] if bgr else pokemon
        assert feed.dtype == np.uint8 and feed.flags.c_contiguous
        np.testing.assert_array_equal(feed, expected[None])
        assert vector.shape == (512,) and vector.dtype == np.float32


def test_folded_and_unfolded_paths_agree_on_onnx(clip: ClipModels, pokemon: np.ndarray):
    for bgr in (False, True):
        plain = ClipImageEncoder(clip.image.session, clip.image.spec, bgr_compat=bgr)
        inside = ClipImageEncoder(FoldedOnnx(plain), folded(plain.spec), bgr_compat=bgr)
        np.testing.assert_array_equal(inside(pokemon), plain(pokemon))


def test_nhwc_float_layout_is_honoured(clip: ClipModels, pokemon: np.ndarray):
    spec = dataclasses.replace(clip.image.spec, layout="NHWC", shape=(1, 224, 224, 3))
    recorder = Recorder()
    ClipImageEncoder(recorder, spec)(pokemon)
    (feed,) = recorder.feeds[0].values()
    np.testing.assert_array_equal(feed, clip.image.prepare(pokemon).transpose(0, 2, 3, 1))


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((224, 224, 3), dtype=np.float32),
        np.zeros((224, 224), dtype=np.uint8),
        np.zeros((224, 224, 4), dtype=np.uint8),
        np.zeros((225, 224, 3), dtype=np.uint8),
        np.zeros((448, 448, 3), dtype=np.uint8),
    ],
)
def test_images_the_front_should_have_resized_are_refused(clip: ClipModels, image: np.ndarray):
    with pytest.raises(ValueError, match="expected"):
        clip.image(image)


def test_unknown_layout_is_refused(clip: ClipModels):
    with pytest.raises(ValueError, match="layout"):
        ClipImageEncoder(Recorder(), dataclasses.replace(clip.image.spec, layout="CHW"))


def test_text_encoder_outputs_512_floats(clip: ClipModels):
    vector = clip.text()("一只猫")
    assert vector.shape == (512,) and vector.dtype == np.float32
    assert clip.text() is clip.text()


def test_l2_normalise():
    v = np.array([3.0, 4.0] + [0.0] * 510, dtype=np.float32)
    unit = l2_normalise(v)
    assert unit.dtype == np.float32 and unit.shape == (512,)
    assert float(np.linalg.norm(unit)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(unit[:2], [0.6, 0.8], rtol=1e-6)
    assert v[0] == 3.0  # the input is left alone
    zero = l2_normalise(np.zeros(512, dtype=np.float32))
    assert not zero.any() and np.isfinite(zero).all()
