"""How the front maps each farm outcome to each client's format, with a scripted stand-in
for the farm (a test double named as such: the real farm is tested in test_farm.py)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from frontend.app import create_app
from protocol.client import FarmUnreachable
from protocol.settings import Settings
from protocol.wire import ERROR, Message


class ScriptedFarm:
    """Answers every call with one scripted outcome: an error code, or an exception."""

    def __init__(self, outcome) -> None:
        self.outcome = outcome
        self.calls: list[dict] = []

    def call(self, task, options=None, arrays=(), timeout=None, *, deadline=None,
             client_gone=None) -> Message:
        self.calls.append({"task": task, "options": options, "deadline": deadline})
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return Message(ERROR, "x", task=task).fail(self.outcome, f"scripted {self.outcome}")


def client_for(outcome):
    app = create_app(Settings(api_key="k", request_timeout=5, max_upload_mb=1))
    app.extensions["farm"] = ScriptedFarm(outcome)
    return app.test_client()


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def post_ocr(client):
    return client.post("/ocr", headers={"api-key": "k"},
                       data={"file": (io.BytesIO(jpeg()), "a.jpg")})


def post_predict(client):
    entries = {"ocr": {"detection": {"modelName": "m"}, "recognition": {"modelName": "m"}}}
    return client.post("/predict", data={"entries": json.dumps(entries),
                                         "image": (io.BytesIO(jpeg()), "blob")})


@pytest.mark.parametrize(("code", "status"), [
    ("bad_input", 200), ("unavailable", 200),  # final: MT-Photos records the reason
    ("timeout", 503), ("worker_lost", 503), ("internal", 503), ("busy", 503),  # retry later
])
def test_mt_photos_gets_503_for_server_trouble_and_200_for_final_answers(code, status):
    response = post_ocr(client_for(code))
    assert response.status_code == status
    assert response.json["result"] == [] and code in response.json["msg"]
    if status == 503:
        assert response.headers["Retry-After"].isdigit()


@pytest.mark.parametrize(("code", "status"), [
    ("bad_input", 422), ("unavailable", 422), ("timeout", 503), ("internal", 503)])
def test_immich_gets_4xx_for_final_answers_and_503_otherwise(code, status):
    assert post_predict(client_for(code)).status_code == status


def test_an_absent_farm_is_503_with_retry_after():
    response = post_ocr(client_for(FarmUnreachable("no answer from the worker farm")))
    assert response.status_code == 503 and response.headers["Retry-After"] == "5"


def test_a_bug_is_answered_in_json_never_an_html_500():
    ocr = post_ocr(client_for(RuntimeError("boom")))
    assert ocr.status_code == 503 and ocr.json["result"] == []
    predict = post_predict(client_for(RuntimeError("boom")))
    assert predict.status_code == 500 and predict.is_json


def test_immich_text_longer_than_the_limit_is_422():
    client = client_for("internal")
    entries = {"clip": {"textual": {"modelName": "m"}}}
    response = client.post("/predict", data={"entries": json.dumps(entries),
                                             "text": "字" * 20_000})
    assert response.status_code == 422


