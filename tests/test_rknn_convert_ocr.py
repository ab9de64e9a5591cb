"""`mtai convert` on the real PP-OCRv4 models, checked on the shared images in the simulator.

The converter builds the manifest's static shape profile; its self-check runs the whole OCR
pipeline on rknn-sim (static shapes, fp16, the very models it exported) against onnxruntime on
the same profile, over every image of ../shared/testdata/ocr. The shipped profile's shapes take
far longer to build than the suite can wait (BENCHMARKS.md, "Converting the profile"), so these
tests convert a small profile
of both kinds of shapes (canvases held whole and tiled, several recogniser widths) written into
the test's own manifest: the converter and runtime read whatever the manifest lists.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

from models.convert import plan, toolkit
from models.convert.check import check_ocr
from models.convert.convert import ConversionError, Samples, convert_family
from models.convert.samples import ocr_samples
from models.manifest import MANIFEST_NAME, Manifest
from models.ocr.pipeline import OcrPipeline
from models.ocr.profile import ShapeProfile
from models.runtime.static import StaticSession
from protocol.images import load_rgb
from tests.rknn_fixtures import ocr_with_profile

pytestmark = pytest.mark.simulator

if platform.machine() != "x86_64":  # Rockchip's x86 simulator; on the board these cannot run
    pytest.importorskip("rknn.api")


def quiet(_: str) -> None:
    pass


TEST_PROFILE = ShapeProfile(
    det_canvases=((736, 736), (736, 992), (992, 736), (736, 1312), (1312, 736)),
    rec_widths=(320, 480, 640, 960, 1280),
)
TEST_PART_PIXELS = 2_100_000  # detector parts: the first three canvases, the last two
DET_SHAPES = TEST_PROFILE.shapes()["det"]
TEST_DET_PARTS = {"det": DET_SHAPES[:3], "det@1": DET_SHAPES[3:]}


@pytest.fixture(scope="module")
def converted(model_dir: Path, shared: Path, tmp_path_factory: pytest.TempPathFactory):
    """The fetched OCR models under a manifest listing ``TEST_PROFILE``, converted for rk3588;
    builds stay cached for the module."""
    directory = ocr_with_profile(model_dir, tmp_path_factory.mktemp("ocr-rknn"), TEST_PROFILE)
    samples = Samples(ocr=shared / "testdata/ocr")
    with pytest.MonkeyPatch.context() as patch:  # the detector in two parts, as big profiles are
        patch.setattr(plan, "PART_PIXELS", TEST_PART_PIXELS)
        report = convert_family(
            directory, "ocr", sample_dirs=samples, progress=quiet, release=False
        )
    yield directory, report
    toolkit.forget()


def test_converted_ocr_agrees_with_onnx_on_the_shared_images(converted, shared: Path):
    _, report = converted
    (check,) = report.checks
    assert check.role == "det+cls+rec" and check.metric == "line agreement"
    assert check.passed and check.value >= 0.97, check.summary()
    images = len(list((shared / "testdata/ocr").iterdir()))
    assert f"on {images} images" in check.detail
    assert int(check.detail.split()[0]) >= 100  # lines compared: the check saw real text


def test_converted_manifest_holds_exactly_the_built_shapes(converted):
    directory, _ = converted
    source = Manifest.load(directory / "ocr" / MANIFEST_NAME).models
    target = directory / "rknn-rk3588" / "ocr"
    converted_specs = Manifest.load(target / MANIFEST_NAME).models
    build = json.loads((target / "build.json").read_text())["models"]
    assert {role: spec.shapes for role, spec in source.items()} == TEST_PROFILE.shapes()
    expected = {"cls": source["cls"].shapes, "rec": source["rec"].shapes, **TEST_DET_PARTS}
    assert {role: spec.shapes for role, spec in converted_specs.items()} == expected
    assert converted_specs["det@1"].file == "ch_PP-OCRv4_det_infer@1.rknn"
    for role, spec in converted_specs.items():
        assert build[role]["plan"]["shapes"] == spec.shapes
        assert (spec.layout, spec.dtype) == ("NCHW", "float32")
        assert (target / spec.file).read_bytes()[:4] == b"RKNN"
        assert build[role]["check"]["passed"]  # the family's check, on every part
    # the shared images need shapes of both detector parts: each was run, none only built
    assert all(build[role]["check"]["run"] for role in converted_specs)
    assert len(build["rec"]["metadata"]["character"].splitlines()) == 6623  # charset carried over


def test_simulated_pipeline_feeds_only_built_shapes(converted, shared: Path, monkeypatch):
    directory, _ = converted
    fed: list[tuple[str, tuple[int, ...]]] = []
    real = StaticSession.check_feed

    def spy(self, feeds):
        array = real(self, feeds)
        fed.append((self.model.path.name, array.shape))
        return array

    monkeypatch.setattr(StaticSession, "check_feed", spy)
    sim = OcrPipeline.load(directory / "rknn-rk3588", backend="rknn-sim")  # static: the default
    cpu = OcrPipeline.load(directory, backend="onnx", static_shapes=True)
    image = load_rgb(shared / "testdata/ocr/rapidocr_ch_en_num.jpg")
    ours, reference = sim(image), cpu(image)
    assert [line.text for line in ours] == [line.text for line in reference]
    assert max(np.abs(np.subtract(a.box, b.box)).max() for a, b in zip(ours, reference)) <= 3
    assert {name.split("_")[2] for name, _ in fed} >= {"det", "rec"}
    parts = {name: {shape for n, shape in fed if n == name} for name, _ in fed}
    assert parts["ch_PP-OCRv4_det_infer.rknn"] == {(1, 3, 992, 736)}  # 430x323 px: its part 0
    tiled = sim(load_rgb(shared / "testdata/ocr/rapidocr_en.jpg"))  # 736 x 3968: tiles, part 1
    assert tiled and any(n == "ch_PP-OCRv4_det_infer@1.rknn" for n, _ in fed)


def test_manifest_without_static_shapes_is_refused(tmp_path: Path, model_dir: Path):
    (tmp_path / "ocr").mkdir()
    for file in (model_dir / "ocr").iterdir():
        (tmp_path / "ocr" / file.name).symlink_to(file)
    manifest = tmp_path / "ocr" / MANIFEST_NAME
    manifest.unlink()
    raw = json.loads((model_dir / "ocr" / MANIFEST_NAME).read_text())
    for spec in raw["models"].values():
        spec["shapes"] = None
    manifest.write_text(json.dumps(raw))
    with pytest.raises(ConversionError, match=r"lists no static shapes.*mtai models fetch ocr"):
        convert_family(tmp_path, "ocr", progress=quiet)
    assert not (tmp_path / "rknn-rk3588").exists()


def test_generated_samples_hold_text_the_pipeline_reads(model_dir: Path):
    """Without --ocr-samples (a board has no test images) the check runs on generated pages:
    they must hold enough readable text to prove something."""
    pipeline = OcrPipeline.load(model_dir, backend="onnx", static_shapes=True)
    items, origin = ocr_samples(None)
    assert origin == "generated text pages"
    assert sum(len(pipeline(image)) for _, image in items) >= 30


class NormalisedTwice:
    """A session whose input is normalised once more: a conversion bug the check is for."""

    def __init__(self, session) -> None:
        self.session = session

    @property
    def input_names(self) -> list[str]:
        return self.session.input_names

    def metadata(self) -> dict[str, str]:
        return self.session.metadata()

    def run(self, feeds):
        return self.session.run({k: ((v - 0.5) / 0.5).astype(v.dtype) for k, v in feeds.items()})


def test_check_refuses_a_pipeline_normalised_twice(model_dir: Path):
    """The OCR floor (93%) sits under fp16 rounding's flips and far above a real bug: inputs
    normalised twice agree on about half the lines of the generated pages."""
    reference = OcrPipeline.load(model_dir, backend="onnx", static_shapes=True)
    broken = OcrPipeline.load(model_dir, backend="onnx", static_shapes=True)
    for model in (broken.detector, broken.classifier, broken.recognizer):
        model.session = NormalisedTwice(model.session)
    items, _ = ocr_samples(None)
    result = check_ocr(reference, broken, items, quiet)
    assert not result.passed and result.value < 0.8, result.summary()
    assert check_ocr(reference, reference, items, quiet).value == 1.0
