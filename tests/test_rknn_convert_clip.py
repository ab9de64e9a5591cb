"""`mtai convert` on the tiny Chinese-CLIP, with rknn-toolkit2's simulator underneath.

The converted image tower takes raw uint8 NHWC pixels with mean/std folded in; the simulator
backend runs it through the same ClipImageEncoder code as the board. The fault-injection tests
reproduce the first RKNN port's bugs (pixels normalised twice, NCHW data fed to an NHWC model)
and show the converter's self-check refuses to write such a model.
"""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from models.clip import ClipModels
from models.clip.image import ClipImageEncoder
from models.clip.install import install_clip_files
from models.convert import plan as plan_module
from models.convert import toolkit
from models.convert.convert import ConversionError, Samples, convert_family
from tests.clip_fixtures import IMAGE_ONNX, VOCAB, cosine, front_pixels, install_tiny

pytestmark = pytest.mark.simulator

if platform.machine() != "x86_64":  # Rockchip's x86 simulator; on the board these cannot run
    pytest.importorskip("rknn.api")


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, shared: Path):
    """Tiny CLIP in a fresh MODEL_DIR, converted for rk3588; builds stay cached for the module."""
    model_dir = tmp_path_factory.mktemp("clip-rknn")
    install_tiny(model_dir)
    samples = Samples(clip=shared / "testdata/photos")
    report = convert_family(model_dir, "clip", sample_dirs=samples, progress=quiet, release=False)
    yield model_dir, report
    toolkit.forget()


def test_conversion_passes_its_own_check_and_records_it(converted):
    model_dir, report = converted
    assert [c.role for c in report.checks] == ["image", "text"]
    assert all(c.passed and c.value >= 0.999 for c in report.checks), report.checks
    directory = model_dir / "rknn-rk3588" / "clip"
    manifest = json.loads((directory / "manifest.json").read_text())["models"]
    image = manifest["image"]
    assert (image["layout"], image["dtype"], image["shape"], image["mean_std_folded"]) == (
        "NHWC", "uint8", [1, 224, 224, 3], True)
    assert manifest["vocab"]["file"] == "vocab.txt" and (directory / "vocab.txt").is_file()
    build = json.loads((directory / "build.json").read_text())["models"]["image"]
    assert build["plan"]["mean_values"] == pytest.approx([0.48145466 * 255, 0.4578275 * 255,
                                                          0.40821073 * 255])
    assert build["check"]["passed"]
    assert (directory / "vit-b-16.img.rknn").read_bytes()[:4] == b"RKNN"


def test_simulator_backend_matches_onnx_on_photos(converted, shared: Path):
    model_dir, _ = converted
    sim = ClipModels.load(model_dir / "rknn-rk3588", backend="rknn-sim")
    cpu = ClipModels.load(model_dir, backend="onnx")
    tensor = sim.image.prepare(np.zeros((224, 224, 3), np.uint8))
    assert (tensor.shape, tensor.dtype) == ((1, 224, 224, 3), np.uint8)
    scores = [cosine(sim.image(front_pixels(p)), cpu.image(front_pixels(p)))
              for p in sorted((shared / "testdata/photos").iterdir())]
    assert min(scores) >= 0.999, scores
    for text in ("一只猫", "red car at night"):
        assert cosine(sim.text()(text), cpu.text()(text)) >= 0.999


def _fresh(tmp_path: Path) -> Path:
    install_tiny(tmp_path)
    return tmp_path


def test_double_normalisation_is_refused(tmp_path, converted, monkeypatch):
    """Model with mean/std folded in, but a manifest telling the runtime to normalise too."""
    real = plan_module._clip_image

    def forgetful(*args):
        item = real(*args)
        return replace(item, spec=replace(item.spec, dtype="float32", mean_std_folded=False))

    monkeypatch.setattr(plan_module, "_clip_image", forgetful)
    with pytest.raises(ConversionError, match=r"image: min cosine 0\.\d+ \(needs >= 0.999\) FAIL"):
        convert_family(_fresh(tmp_path), "clip", progress=quiet, release=False)
    assert not (tmp_path / "rknn-rk3588").exists()


def test_nchw_data_fed_to_the_nhwc_model_is_refused(tmp_path, converted, monkeypatch):
    """The other half of the old bug: NCHW bytes handed over as if they were NHWC."""
    real = ClipImageEncoder.prepare

    def scrambled(self, rgb):
        tensor = real(self, rgb)
        if self.spec.layout == "NHWC":
            return np.ascontiguousarray(tensor[0].transpose(2, 0, 1)).reshape(tensor.shape)
        return tensor

    monkeypatch.setattr(ClipImageEncoder, "prepare", scrambled)
    with pytest.raises(ConversionError, match="self-check failed, nothing written"):
        convert_family(_fresh(tmp_path), "clip", progress=quiet, release=False)
    assert not (tmp_path / "rknn-rk3588").exists()


def test_a_failed_conversion_keeps_the_previous_one(tmp_path, converted, monkeypatch):
    model_dir = _fresh(tmp_path)
    convert_family(model_dir, "clip", progress=quiet, release=False)
    before = (model_dir / "rknn-rk3588/clip/manifest.json").read_text()
    monkeypatch.setattr("models.convert.check.CLIP_MIN_COSINE", 1.01)  # nothing can pass
    with pytest.raises(ConversionError):
        convert_family(model_dir, "clip", progress=quiet, release=False)
    assert (model_dir / "rknn-rk3588/clip/manifest.json").read_text() == before
    assert not list(model_dir.glob(".rknn-staging-*"))


def random_text_model(path: Path) -> Path:
    """The text contract (int64 ids [1, 52] -> float32 [1, 512]) through a RandomNormalLike
    node (times zero), an operator rknn-toolkit2 2.5.0 refuses to build."""
    ids = helper.make_tensor_value_info("text", TensorProto.INT64, [1, 52])
    out = helper.make_tensor_value_info("unnorm_text_features", TensorProto.FLOAT, [1, 512])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [52, 512],
                                 np.random.default_rng(0).normal(size=52 * 512).tolist())
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [
        helper.make_node("Cast", ["text"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["f", "w"], ["m"]),
        helper.make_node("RandomNormalLike", ["m"], ["noise"], seed=1.0),
        helper.make_node("Mul", ["noise", "zero"], ["nothing"]),
        helper.make_node("Add", ["m", "nothing"], ["unnorm_text_features"]),
    ]
    graph = helper.make_graph(nodes, "text", [ids], [out], initializer=[weights, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def test_unsupported_operator_leaves_that_model_on_the_cpu(tmp_path, converted):
    model_dir = tmp_path / "models"
    text = random_text_model(tmp_path / "text.onnx")
    install_clip_files(model_dir, IMAGE_ONNX, text, VOCAB, progress=quiet)
    report = convert_family(model_dir, "clip", progress=quiet, release=False)
    assert "unsupported operator Random ('noise')" in report.kept_onnx["text"]
    assert [c.role for c in report.checks] == ["image"]
    manifest = json.loads((model_dir / "rknn-rk3588/clip/manifest.json").read_text())["models"]
    assert manifest["text"]["file"] == "../../clip/vit-b-16.txt.fp32.onnx"
    models = ClipModels.load(model_dir / "rknn-rk3588", backend="rknn-sim")
    assert type(models.text().session).__name__ == "OnnxSession"


def test_toolkit_missing_or_wrong_version_is_a_clear_error(tmp_path, monkeypatch):
    model_dir = _fresh(tmp_path)
    monkeypatch.setattr(toolkit.metadata, "version", lambda dist: "1.6.0")
    with pytest.raises(ConversionError, match=r"rknn-toolkit2 1\.6\.0 .* tested with 2\.5\.0"):
        convert_family(model_dir, "clip", progress=quiet)

    def missing(dist: str) -> str:
        raise toolkit.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(toolkit.metadata, "version", missing)
    with pytest.raises(ConversionError, match=r"rknn-toolkit2 is not installed.*make toolkit"):
        convert_family(model_dir, "clip", progress=quiet)
    assert not (model_dir / "rknn-rk3588").exists()
