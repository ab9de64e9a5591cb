"""`mtai convert` on the generated face models, with rknn-toolkit2's simulator underneath.

Both face models take raw uint8 NHWC pixels with the normalisation folded in; the recogniser
is built at a fixed batch. The self-check compares the detector's raw heads and the
recogniser's embeddings with onnxruntime, and refuses a conversion whose inputs would be
normalised twice.
"""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.convert import plan as plan_module
from models.convert import toolkit
from models.convert.convert import ConversionError, Samples, convert_family
from models.convert.plan import FACE_REC_BATCH
from models.face.pipeline import FacePipeline
from tests.face_fixtures import collage, cosine_rows, install_tiny

if platform.machine() != "x86_64":
    pytest.importorskip("rknn.api")

pytestmark = pytest.mark.simulator


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory, shared: Path):
    model_dir = tmp_path_factory.mktemp("face-rknn")
    install_tiny(model_dir, tmp_path_factory.mktemp("face-src"))
    samples = Samples(face=shared / "testdata/photos")
    report = convert_family(model_dir, "face", sample_dirs=samples, progress=quiet, release=False)
    yield model_dir, report
    toolkit.forget()


def test_conversion_passes_its_check_with_static_shapes(converted):
    model_dir, report = converted
    assert [c.role for c in report.checks] == ["det", "rec"]
    assert all(c.passed and c.value >= 0.999 for c in report.checks), report.checks
    directory = model_dir / "rknn-rk3588" / "face"
    models = json.loads((directory / "manifest.json").read_text())["models"]
    assert (models["det"]["file"], models["det"]["shape"], models["det"]["dtype"]) == (
        "det_10g.rknn", [1, 640, 640, 3], "uint8")
    assert models["rec"]["shapes"] == [[FACE_REC_BATCH, 112, 112, 3]]
    assert all(models[r]["mean_std_folded"] for r in ("det", "rec"))
    build = json.loads((directory / "build.json").read_text())["models"]
    assert build["rec"]["plan"]["std_values"] == [127.5] * 3
    assert build["det"]["plan"]["std_values"] == [128.0] * 3


def test_simulated_pipeline_matches_onnx(converted):
    model_dir, _ = converted
    sim = FacePipeline.load(model_dir / "rknn-rk3588", backend="rknn-sim")
    cpu = FacePipeline.load(model_dir)
    rgb = collage(2, 3)
    ours, ref = sim(rgb, 0.65), cpu(rgb, 0.65)
    assert len(ref) > 0 and abs(len(ours) - len(ref)) <= max(1, len(ref) // 10)
    crops = np.random.default_rng(0).integers(0, 256, (6, 112, 112, 3), dtype=np.uint8)
    assert cosine_rows(sim.recognizer(crops), cpu.recognizer(crops)).min() >= 0.999


def test_double_normalisation_is_refused(tmp_path, converted):
    real = plan_module._face_role

    def forgetful(*args):
        return [replace(item, spec=replace(item.spec, dtype="float32", mean_std_folded=False))
                for item in real(*args)]

    install_tiny(tmp_path, tmp_path / "src")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plan_module, "_face_role", forgetful)
        with pytest.raises(ConversionError, match=r"det: min cosine 0\.\d+ \(needs >= 0.999\)"):
            convert_family(tmp_path, "face", progress=quiet, release=False)
    assert not (tmp_path / "rknn-rk3588").exists()
