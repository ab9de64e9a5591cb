"""What a worker loads and announces, driven by the environment as the service runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from protocol.wire import ERROR, REQUEST, UNAVAILABLE, Message
from tests.clip_fixtures import cosine, front_pixels, reference
from workers.loading import load_runner


def run(runner, task: str, options: dict | None = None, arrays: list | None = None) -> Message:
    return runner.run(Message(REQUEST, "t", task=task, options=options or {},
                              arrays=arrays or []))


@pytest.fixture()
def models_env(full_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("MODEL_DIR", str(full_model_dir))
    return monkeypatch


def test_worker_loads_ocr_and_clip_and_defers_the_text_model(models_env, shared: Path):
    runner, info = load_runner("onnx", 1, 0)
    assert set(info["models"]) == {"ocr", "clip"}
    assert info["clip_text"] == "loads on first query"
    assert {"ocr", "clip_image", "clip_text", "sleep"} <= set(info["tasks"])
    name = str(reference()["image_names"][4])
    pixels = front_pixels(shared / "testdata/photos" / name)
    vector = run(runner, "clip_image", arrays=[pixels]).arrays[0]
    assert cosine(vector, reference()["image_features"][4]) > 0.99999


def test_auto_load_and_bgr_compat_switches(models_env, shared: Path):
    models_env.setenv("AUTO_LOAD_TXT_MODAL", "on")
    models_env.setenv("CLIP_BGR_COMPAT", "on")
    runner, info = load_runner("onnx", 1, 0)
    assert info["clip_text"] == "loaded" and "BGR compat" in info["models"]["clip"]
    index = list(reference()["image_names"]).index("pokemon.jpeg")
    pixels = front_pixels(shared / "testdata/photos/pokemon.jpeg")
    swapped = run(runner, "clip_image", arrays=[pixels]).arrays[0]
    assert cosine(swapped, reference()["image_features"][index]) < 0.99


def test_missing_models_make_tasks_unavailable_with_the_fix(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    runner, info = load_runner("onnx", 1, 0)
    assert info["models"] == {}
    for task, fix in (("ocr", "mtai models fetch ocr"), ("clip_text", "mtai models fetch clip")):
        answer = run(runner, task, {"text": "x"})
        assert answer.kind == ERROR and answer.error["code"] == UNAVAILABLE
        assert fix in answer.error["message"]


def test_bad_clip_inputs_are_refused_not_crashed(models_env):
    runner, _ = load_runner("onnx", 1, 0)
    for task, options, arrays in (
        ("clip_image", {}, [np.zeros((100, 100, 3), np.uint8)]),
        ("clip_image", {}, [np.zeros((224, 224), np.uint8)]),
        ("clip_text", {"text": 5}, []),
        ("clip_text", {}, []),
    ):
        answer = run(runner, task, options, arrays)
        assert answer.kind == ERROR and answer.error["code"] == "bad_input", (task, options)
