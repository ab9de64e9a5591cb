"""The worker's CLIP handlers with a stand-in model (a named test double: the real encoders
are tested in test_clip_encoders.py): input size from the model, normalised on request."""

from __future__ import annotations

import numpy as np
import pytest

from models.clip import l2_normalise
from protocol.wire import ERROR, REPLY, REQUEST, Message
from workers.tasks import TaskRunner, clip_image_handler, clip_text_handler, face_handler


class ScriptedClip:
    """The ClipModels surface the handlers use: an image encoder with a `size`, a text one."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.image = self.ImageEncoder(size)

    class ImageEncoder:
        def __init__(self, size: tuple[int, int]) -> None:
            self.size = size

        def __call__(self, rgb: np.ndarray) -> np.ndarray:
            return np.arange(1, 513, dtype=np.float32)

    def text(self):
        return lambda text: np.full(512, 3.0, np.float32)


def runner(size=(224, 224)) -> TaskRunner:
    clip = ScriptedClip(size)
    return TaskRunner(handlers={"clip_image": clip_image_handler(clip),
                                "clip_text": clip_text_handler(clip)})


def image_job(height: int, width: int, **options) -> Message:
    return Message(REQUEST, "j", task="clip_image", options=options,
                   arrays=[np.zeros((height, width, 3), np.uint8)])


def test_the_image_must_have_the_models_own_input_size():
    assert runner((336, 336)).run(image_job(336, 336)).kind == REPLY
    refused = runner((336, 336)).run(image_job(224, 224))
    assert refused.kind == ERROR and refused.error["code"] == "bad_input"
    assert "336x336" in refused.error["message"]


def test_vectors_are_raw_unless_normalised_is_asked_for():
    raw = runner().run(image_job(224, 224)).arrays[0]
    unit = runner().run(image_job(224, 224, normalise=True)).arrays[0]
    assert np.array_equal(raw, np.arange(1, 513, dtype=np.float32))
    assert np.array_equal(unit, l2_normalise(raw))
    text = runner().run(Message(REQUEST, "t", task="clip_text",
                                options={"text": "猫", "normalise": True})).arrays[0]
    assert np.linalg.norm(text) == pytest.approx(1.0)


def test_normalise_must_be_a_boolean():
    refused = runner().run(image_job(224, 224, normalise="yes"))
    assert refused.kind == ERROR and refused.error["code"] == "bad_input"


def test_a_face_job_takes_normalise_as_the_clip_jobs_do():
    def faces(rgb: np.ndarray, min_score: float) -> None:
        raise AssertionError("a refused job never reaches the model")

    face = TaskRunner(handlers={"face": face_handler(faces, 0.65)})
    refused = face.run(Message(REQUEST, "f", task="face", options={"normalise": "yes"},
                               arrays=[np.zeros((8, 8, 3), np.uint8)]))
    assert refused.kind == ERROR and refused.error["code"] == "bad_input"
    assert "normalise must be true or false" in refused.error["message"]
