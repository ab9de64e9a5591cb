"""The device backend (RKNNLite) against a fake of the RKNNLite API, and BACKEND=auto.

No NPU here: tests/fake_rknnlite.py reproduces RKNNLite's documented return codes and
behaviour. What these tests prove is that our side checks every return code, pins the right
core, and feeds exactly the tensors the manifest states; not that the NPU computes correctly
(README: RKNN (NPU) status).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from models.clip import ClipModels
from models.ocr.pipeline import OcrPipeline
from models.runtime import open_session, resolve_backend
from models.runtime import soc as soc_module
from models.runtime.rknn import RknnError, RknnSession
from models.runtime.soc import choose_backend, place_family
from models.runtime.static import FeedError
from protocol.images import load_rgb
from protocol.settings import Settings
from tests import fake_rknnlite
from tests.clip_fixtures import cosine, front_pixels, install_tiny
from tests.rknn_fixtures import device_tree, fake_convert
from workers.loading import load_runner


@pytest.fixture()
def clip_dir(tmp_path: Path) -> Path:
    """Tiny CLIP installed and 'converted' for rk3588; returns MODEL_DIR."""
    install_tiny(tmp_path)
    fake_convert(tmp_path, "clip")
    return tmp_path


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> type[fake_rknnlite.FakeRKNNLite]:
    return fake_rknnlite.install(monkeypatch)


def image_model(model_dir: Path) -> Path:
    return model_dir / "rknn-rk3588" / "clip" / "vit-b-16.img.rknn"


@pytest.mark.parametrize(("soc", "core", "mask"), [
    ("rk3588", 0, 1), ("rk3588", 1, 2), ("rk3588", 2, 4),
    ("rk3576", 1, 2), ("rk3576", 2, 1),  # two cores: worker 2 wraps to core 0
    ("rk3566", 1, None), ("rk3562", 0, None),  # one core: no mask passed at all
])
def test_each_worker_core_gets_its_mask(clip_dir, fake, monkeypatch, soc, core, mask):
    monkeypatch.setattr(fake, "soc", soc)
    session = RknnSession(image_model(clip_dir), core=core, soc=soc)
    context = fake.contexts[-1]
    assert session.core_mask == mask
    assert context.mask_passed is (mask is not None)
    assert context.core_mask == (mask or fake.NPU_CORE_AUTO)


def test_one_context_per_model_released_on_close(clip_dir, fake):
    sessions = [RknnSession(image_model(clip_dir), core=1, soc="rk3588") for _ in range(2)]
    assert len(fake.contexts) == 2 and fake.contexts[0] is not fake.contexts[1]
    sessions[0].close()
    assert fake.contexts[0].released and not fake.contexts[1].released
    with pytest.raises(RknnError, match="closed"):
        sessions[0].run({"image": np.zeros((1, 224, 224, 3), np.uint8)})


def test_load_rknn_failure_is_a_clear_error(clip_dir, fake):
    image_model(clip_dir).write_bytes(b"not a model")
    with pytest.raises(RknnError, match=r"load_rknn returned -1.*convert it again"):
        RknnSession(image_model(clip_dir), core=0, soc="rk3588")
    assert fake.contexts[-1].released


def test_init_runtime_failure_names_driver_and_versions(clip_dir, fake, monkeypatch):
    monkeypatch.setattr(fake, "init_result", -1)
    with pytest.raises(RknnError, match=r"init_runtime\(core_mask=2\) returned -1 on rk3588.*"
                                        r"rknpu/version.*mtai doctor"):
        RknnSession(image_model(clip_dir), core=1, soc="rk3588")
    assert fake.contexts[-1].released


def test_inference_none_is_a_clear_error(clip_dir, fake, monkeypatch):
    session = RknnSession(image_model(clip_dir), core=0, soc="rk3588")
    monkeypatch.setattr(fake, "inference_fails", True)
    with pytest.raises(RknnError, match=r"inference returned None for input \[1, 224, 224, 3\]"):
        session.run({"image": np.zeros((1, 224, 224, 3), np.uint8)})


def test_missing_rknnlite_says_how_to_install(clip_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "rknnlite", None)
    with pytest.raises(RknnError, match=r"rknn-toolkit-lite2.*BACKEND=onnx"):
        RknnSession(image_model(clip_dir), core=0)


@pytest.mark.parametrize(("feed", "message"), [
    ({"image": np.zeros((1, 3, 224, 224), np.uint8)}, r"NHWC shapes \[\[1, 224, 224, 3\]\]"),
    ({"image": np.zeros((1, 224, 224, 3), np.float32)}, r"built for uint8 input \(mean/std folded"),
    ({"pixels": np.zeros((1, 224, 224, 3), np.uint8)}, r"takes input \['image'\]"),
    ({"image": np.zeros((2, 224, 224, 3), np.uint8)}, "static shapes only"),
])
def test_feeds_that_do_not_match_the_build_are_refused(clip_dir, fake, feed, message):
    """NCHW data for an NHWC model, normalised floats for a folded model: refused, not run."""
    session = RknnSession(image_model(clip_dir), core=0, soc="rk3588")
    with pytest.raises(FeedError, match=message):
        session.run(feed)


def test_clip_on_the_device_path_matches_onnx(clip_dir, fake, shared: Path):
    """Folded mean/std and NHWC uint8, as the fake runtime applies them, give the ONNX vectors;
    the text model runs through its own context."""
    device = ClipModels.load(clip_dir / "rknn-rk3588", backend="rknn", core=2)
    cpu = ClipModels.load(clip_dir, backend="onnx")
    assert device.image.spec.layout == "NHWC" and device.image.spec.mean_std_folded
    for photo in sorted((shared / "testdata/photos").iterdir())[:4]:
        pixels = front_pixels(photo)
        assert cosine(device.image(pixels), cpu.image(pixels)) > 0.99999
    assert cosine(device.text()("一只猫"), cpu.text()("一只猫")) > 0.99999
    assert [c.core_mask for c in fake.contexts] == [4, 4]


def test_a_model_left_in_onnx_runs_on_the_cpu(clip_dir, fake, caplog):
    kept = clip_dir / "clip" / "vit-b-16.txt.fp32.onnx"
    with caplog.at_level(logging.INFO):
        session = open_session(kept, "rknn", core=0)
    assert type(session).__name__ == "OnnxSession" and not fake.contexts
    assert "runs on the CPU" in caplog.text


def test_auto_picks_rknn_only_when_everything_is_there(tmp_path, clip_dir, fake, monkeypatch):
    compatible = device_tree(tmp_path / "root")
    choice = choose_backend(clip_dir, compatible)
    assert (choice.backend, choice.soc, choice.root) == ("rknn", "rk3588", clip_dir / "rknn-rk3588")
    monkeypatch.setattr(soc_module, "COMPATIBLE", compatible)
    assert resolve_backend("auto", clip_dir) == "rknn"
    assert place_family(clip_dir, "clip", "rknn") == (clip_dir / "rknn-rk3588", "rknn")
    assert place_family(clip_dir, "ocr", "rknn") == (clip_dir, "onnx")  # not converted: CPU

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "run `mtai convert`" in choose_backend(empty, compatible).reason
    x86 = device_tree(tmp_path / "x86", compatible=b"")
    assert "names no supported Rockchip SoC" in choose_backend(clip_dir, x86).reason
    for name in ("rknnlite", "rknnlite.api"):
        monkeypatch.setitem(sys.modules, name, None)
    choice = choose_backend(clip_dir, compatible)
    assert choice.backend == "onnx" and "does not import" in choice.reason


def test_rk3566_uses_models_converted_for_rk3568(tmp_path, fake):
    install_tiny(tmp_path)
    fake_convert(tmp_path, "clip", target="rk3568")
    compatible = device_tree(tmp_path / "root", compatible=b"rockchip,rk3566-box\0")
    assert choose_backend(tmp_path, compatible).root == tmp_path / "rknn-rk3568"


def test_ocr_on_the_device_path_matches_onnx_static(tmp_path, model_dir, fake, shared: Path):
    """The OCR pipeline on RKNNLite contexts (core 1) reads what onnxruntime reads on the same
    static profile: every feed passed the shape check and reached the runtime as NCHW."""
    (tmp_path / "ocr").symlink_to(model_dir / "ocr", target_is_directory=True)
    root = fake_convert(tmp_path, "ocr")
    device = OcrPipeline.load(root, backend="rknn", core=1)
    cpu = OcrPipeline.load(tmp_path, backend="onnx", static_shapes=True)
    for name in ("rapidocr_ch_en_num.jpg", "easyocr_french.jpg"):
        image = load_rgb(shared / "testdata/ocr" / name)
        assert device(image) == cpu(image)
    assert [c.core_mask for c in fake.contexts] == [2, 2, 2]


def test_worker_loads_converted_families_on_its_core(tmp_path, model_dir, fake, monkeypatch):
    """A worker on the rknn backend: CLIP from its converted copy on NPU core 2, OCR (not
    converted here) from the ONNX directory on the CPU."""
    (tmp_path / "ocr").symlink_to(model_dir / "ocr", target_is_directory=True)
    install_tiny(tmp_path)
    fake_convert(tmp_path, "clip")
    monkeypatch.setattr(soc_module, "COMPATIBLE", device_tree(tmp_path / "root"))
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path), "CPU_THREADS": "1",
                                  "OCR_MODEL": "ppocrv4"})
    runner, info = load_runner(settings, "rknn", 2)
    assert info["device"] == "npu core 2" and set(info["models"]) == {"ocr", "clip"}
    assert [(Path(c.path).name, c.core_mask) for c in fake.contexts] == [("vit-b-16.img.rknn", 4)]
    assert {"ocr", "clip_image", "clip_text"} <= set(runner.handlers)
