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
    assert set(info["models"]) == {"ocr", "clip", "face"}
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


def test_worker_serves_faces_in_one_job(full_model_dir: Path, shared: Path):
    from tests.face_fixtures import collage

    runner, info = load_runner(settings(full_model_dir, FACE_MIN_SCORE="0.6"), "onnx", 0)
    assert info["face"] == {"pack": "buffalo_l", "detector": "SCRFD-10GF", "min_score": 0.6}
    assert "face" in info["tasks"]
    answer = run(runner, "face", {"normalise": True}, [collage(2, 3)])
    boxes, scores, landmarks, vectors = answer.arrays
    assert answer.result["faces"] == len(boxes) == len(vectors) > 0
    assert landmarks.shape == (len(boxes), 5, 2) and (scores >= np.float32(0.6)).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    raw = run(runner, "face", {"min_score": 0.9}, [collage(2, 3)])
    assert raw.result["faces"] <= answer.result["faces"]
    empty = run(runner, "face", {}, [np.full((50, 80, 3), 127, np.uint8)])
    assert empty.result == {"faces": 0} and empty.arrays[3].shape == (0, 512)
    for options, arrays in (({}, []), ({"min_score": 2}, [collage(1, 1)]),
                            ({}, [np.zeros((4, 4), np.uint8)])):
        refused = run(runner, "face", options, arrays)
        assert refused.kind == ERROR and refused.error["code"] == "bad_input"


def test_a_face_pack_other_than_face_model_is_reported_not_served(full_model_dir: Path):
    runner, info = load_runner(settings(full_model_dir, FACE_MODEL="antelopev2"), "onnx", 0)
    assert "face" not in info["models"]
    answer = run(runner, "face", {}, [np.zeros((8, 8, 3), np.uint8)])
    assert answer.error["code"] == UNAVAILABLE
    assert "mtai models fetch face" in answer.error["message"]
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
