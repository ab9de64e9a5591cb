"""What a worker loads and announces, driven by the settings as the service runs it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from models.fetch import fetch_ocr
from protocol.settings import Settings
from protocol.wire import ERROR, REQUEST, UNAVAILABLE, Message
from tests.clip_fixtures import cosine, front_pixels, reference
from workers.loading import load_runner


def run(runner, task: str, options: dict | None = None, arrays: list | None = None) -> Message:
    return runner.run(Message(REQUEST, "t", task=task, options=options or {},
                              arrays=arrays or []))


def settings(model_dir: Path, **env: str) -> Settings:
    """The settings a worker of `mtai serve` gets with this environment."""
    return Settings.from_env({"MODEL_DIR": str(model_dir), "CPU_THREADS": "1",
                              "OCR_MODEL": "ppocrv4", **env})


def test_worker_loads_ocr_and_clip_and_defers_the_text_model(full_model_dir: Path, shared: Path):
    runner, info = load_runner(settings(full_model_dir), "onnx", 0)
    assert set(info["models"]) == {"ocr", "clip"}
    assert info["clip_text"] == "loads on first query"
    assert {"ocr", "clip_image", "clip_text", "sleep"} <= set(info["tasks"])
    name = str(reference()["image_names"][4])
    pixels = front_pixels(shared / "testdata/photos" / name)
    vector = run(runner, "clip_image", arrays=[pixels]).arrays[0]
    assert cosine(vector, reference()["image_features"][4]) > 0.99999


def test_auto_load_and_bgr_compat_switches(full_model_dir: Path, shared: Path):
    switches = settings(full_model_dir, AUTO_LOAD_TXT_MODAL="on", CLIP_BGR_COMPAT="on")
    runner, info = load_runner(switches, "onnx", 0)
    assert info["clip_text"] == "loaded" and "BGR compat" in info["models"]["clip"]
    index = list(reference()["image_names"]).index("pokemon.jpeg")
    pixels = front_pixels(shared / "testdata/photos/pokemon.jpeg")
    swapped = run(runner, "clip_image", arrays=[pixels]).arrays[0]
    assert cosine(swapped, reference()["image_features"][index]) < 0.99


def test_missing_models_make_tasks_unavailable_with_the_fix(tmp_path: Path):
    runner, info = load_runner(settings(tmp_path), "onnx", 0)
    assert info["models"] == {}
    for task, fix in (("ocr", "mtai models fetch ocr"), ("clip_text", "mtai models fetch clip")):
        answer = run(runner, task, {"text": "x"})
        assert answer.kind == ERROR and answer.error["code"] == UNAVAILABLE
        assert fix in answer.error["message"]
        assert str(tmp_path) not in answer.error["message"]  # no paths to keyless clients


def test_bad_clip_inputs_are_refused_not_crashed(full_model_dir: Path):
    runner, _ = load_runner(settings(full_model_dir), "onnx", 0)
    for task, options, arrays in (
        ("clip_image", {}, [np.zeros((100, 100, 3), np.uint8)]),
        ("clip_image", {}, [np.zeros((224, 224), np.uint8)]),
        ("clip_text", {"text": 5}, []),
        ("clip_text", {}, []),
    ):
        answer = run(runner, task, options, arrays)
        assert answer.kind == ERROR and answer.error["code"] == "bad_input", (task, options)


def test_worker_loads_the_configured_ocr_model(model_dir: Path, tmp_path: Path):
    fetch_ocr(model_dir, lambda _: None, model="ppocrv6-tiny")
    runner, info = load_runner(settings(model_dir, OCR_MODEL="ppocrv6-tiny"), "onnx", 0)
    assert info["models"]["ocr"] == "PP-OCRv6 tiny (det/cls/rec)"
    assert info["ocr_model"] == "ppocrv6-tiny"
    image = np.full((120, 600, 3), 255, np.uint8)
    cv2.putText(image, "OPEN 24 HOURS", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
    reply = run(runner, "ocr", arrays=[image])
    read = " ".join(line["text"] for line in reply.result["lines"])
    assert "OPEN" in read and "HOURS" in read, read
    empty, _ = load_runner(settings(tmp_path, OCR_MODEL="ppocrv5-mobile"), "onnx", 0)
    answer = run(empty, "ocr", arrays=[image])
    assert answer.kind == ERROR and answer.error["code"] == UNAVAILABLE
    assert "mtai models fetch ocr --ocr-model ppocrv5-mobile" in answer.error["message"]
