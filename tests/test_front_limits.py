"""The front's limits with Flask's test client and a scripted farm: which limit a 413 names,
hostile JSON, deadlines counted from the request's arrival, Retry-After from the failure
itself, the image-request capacity, body read deadlines, and Immich's thresholds applied once."""

from __future__ import annotations

import io
import json
import logging
import time

import gevent
import numpy as np
import pytest
from PIL import Image

from frontend.app import create_app
from frontend.limits import ARRIVED, BodyTimedOut, DeadlineInput
from protocol.client import FarmUnreachable
from protocol.settings import Settings
from protocol.wire import REPLY, Message
from tests.test_front_errors import ScriptedFarm, jpeg

KEY = {"api-key": "k"}


class AnsweringFarm(ScriptedFarm):
    """Answers every call with ``reply(task, options, arrays)``."""

    def __init__(self, reply) -> None:
        super().__init__(None)
        self.reply = reply

    def call(self, task, options=None, arrays=(), timeout=None, *, deadline=None,
             client_gone=None) -> Message:
        self.calls.append({"task": task, "options": options, "deadline": deadline,
                           "arrays": list(arrays)})
        result, out = self.reply(task, options, arrays)
        return Message(REPLY, "x", task=task, result=result, arrays=out)


def app_with(farm, **settings):
    app = create_app(Settings(**{"api_key": "k", "request_timeout": 5, "max_upload_mb": 1,
                                 **settings}))
    app.extensions["farm"] = farm
    return app


def test_a_100k_deep_json_array_is_the_clients_422_and_logs_no_traceback(caplog):
    client = app_with(ScriptedFarm("internal")).test_client()
    deep = "[" * 100_000
    with caplog.at_level(logging.INFO):
        keyed = client.post("/clip/txt", data=deep, headers=KEY, content_type="application/json")
        keyless = client.post("/clip/txt", data=deep, content_type="application/json")
    assert keyed.status_code == 422
    assert keyed.json["detail"][0]["type"] == "json_invalid"
    assert keyless.status_code == 422
    assert keyless.json["detail"][0]["loc"] == ["header", "api-key"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def test_a_json_body_beyond_any_query_is_refused_unread():
    client = app_with(ScriptedFarm("internal"), max_upload_mb=100).test_client()
    response = client.post("/clip/txt", headers=KEY, content_type="application/json",
                           data=json.dumps({"text": "x" * (2 * 1024 * 1024)}))
    assert response.status_code == 413
    assert response.json["msg"] == ("upload too large: the body is over 1 MB, "
                                    "the most this endpoint takes")


def test_a_413_says_the_body_was_over_max_upload_mb():
    client = app_with(ScriptedFarm("internal")).test_client()
    big = io.BytesIO(b"\0" * (2 * 1024 * 1024))
    response = client.post("/ocr", headers=KEY, data={"file": (big, "a.jpg")})
    assert response.status_code == 413
    assert response.json == {"result": [], "msg": "upload too large: the body is over 1 MB "
                                                  "(MAX_UPLOAD_MB)"}


def test_a_413_says_there_were_too_many_form_parts():
    client = app_with(ScriptedFarm("internal")).test_client()
    fields = {f"f{n}": "x" for n in range(5000)}
    response = client.post("/ocr", headers=KEY, data={**fields, "file": (io.BytesIO(jpeg()), "a")})
    assert response.status_code == 413
    assert "more than 1000 form parts (Werkzeug's max_form_parts)" in response.json["msg"]


def test_a_413_for_immich_says_a_form_field_was_too_big():
    client = app_with(ScriptedFarm("internal")).test_client()
    entries = json.dumps({"clip": {"textual": {"modelName": "x" * 600_000}}})
    response = client.post("/predict", data={"entries": entries, "image": (io.BytesIO(jpeg()),
                                                                          "blob")})
    assert response.status_code == 413
    assert "max_form_memory_size" in response.json["detail"]
    assert "500 kB" in response.json["detail"]


def test_the_deadline_runs_from_arrival_and_an_expired_request_never_reaches_the_farm():
    farm = AnsweringFarm(lambda task, options, arrays: ({"lines": []}, []))
    client = app_with(farm).test_client()
    arrived = time.time() - 1
    ok = client.post("/ocr", headers=KEY, data={"file": (io.BytesIO(jpeg()), "a.jpg")},
                     environ_overrides={ARRIVED: arrived})
    assert ok.status_code == 200
    assert farm.calls[0]["deadline"] == pytest.approx(arrived + 5)
    late = client.post("/ocr", headers=KEY, data={"file": (io.BytesIO(jpeg()), "a.jpg")},
                       environ_overrides={ARRIVED: time.time() - 6})
    assert late.status_code == 503 and late.headers["Retry-After"] == "1"
    assert "deadline passed before it reached a worker" in late.json["msg"]
    assert len(farm.calls) == 1


@pytest.mark.parametrize("seconds", [2, 9])
def test_retry_after_is_the_one_the_failure_carries(seconds):
    client = app_with(ScriptedFarm(FarmUnreachable("down", retry_after=seconds))).test_client()
    response = client.post("/ocr", headers=KEY, data={"file": (io.BytesIO(jpeg()), "a.jpg")})
    assert response.status_code == 503 and response.headers["Retry-After"] == str(seconds)
    check = client.post("/check", headers=KEY)
    assert check.status_code == 503 and check.headers["Retry-After"] == str(seconds)


def test_a_process_at_its_image_capacity_answers_503_at_once():
    farm = AnsweringFarm(lambda task, options, arrays: ({"lines": []}, []))
    app = app_with(farm)
    client = app.test_client()
    imaging = app.extensions["imaging"]
    held = [imaging.admitted() for _ in range(imaging.capacity)]
    for place in held:
        place.__enter__()
    try:
        full = client.post("/ocr", headers=KEY, data={"file": (io.BytesIO(jpeg()), "a.jpg")})
        assert full.status_code == 503 and full.headers["Retry-After"] == "1"
        assert farm.calls == []
    finally:
        for place in held:
            place.__exit__(None, None, None)
    assert client.post("/ocr", headers=KEY,
                       data={"file": (io.BytesIO(jpeg()), "a.jpg")}).status_code == 200


class StalledStream:
    """A request body whose sender stops after a few bytes (cooperatively, like a socket
    under gevent)."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def read(self, size: int = -1) -> bytes:
        if self.first:
            data, self.first = self.first, b""
            return data
        gevent.sleep(60)
        return b""


def test_a_body_that_stops_arriving_times_out_at_the_read_deadline():
    started = time.monotonic()  # the deadline counts from here
    stream = DeadlineInput(StalledStream(b"--b0un"), seconds=0.3)
    assert stream.read(6) == b"--b0un"
    with pytest.raises(BodyTimedOut) as caught:
        stream.read(100)
    assert 0.3 <= time.monotonic() - started < 2
    assert caught.value.code == 408 and "READ_TIMEOUT" in caught.value.description
    with pytest.raises(BodyTimedOut):  # past the deadline every read fails at once
        stream.read(1)


def png_16bit(width: int, height: int) -> bytes:
    ramp = np.tile(np.linspace(0, 65535, width).astype(np.uint16), (height, 1))
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")
    return buffer.getvalue()


def test_big_16_bit_greyscale_pngs_reach_the_workers():
    """Reported: 4200x3000 on /ocr and anything over 896 px on /clip/img were answered
    "image has wrong mode"."""
    vector = np.ones(512, np.float32)
    farm = AnsweringFarm(lambda task, options, arrays: ({"lines": []}, [vector]))
    client = app_with(farm, max_upload_mb=50).test_client()
    data = png_16bit(4200, 3000)
    ocr = client.post("/ocr", headers=KEY, data={"file": (io.BytesIO(data), "deep.png")})
    assert ocr.status_code == 200 and ocr.json == {"result": {"texts": [], "scores": [],
                                                              "boxes": []}}
    assert farm.calls[-1]["arrays"][0].shape == (1500, 2100, 3)
    clip = client.post("/clip/img", headers=KEY,
                       data={"file": (io.BytesIO(png_16bit(1000, 700)), "deep.png")})
    assert clip.status_code == 200 and len(clip.json["result"]) == 512
    assert farm.calls[-1]["arrays"][0].shape == (224, 224, 3)


def test_immich_ocr_applies_its_text_threshold_once_as_immich_does():
    box = [[0, 0], [10, 0], [10, 5], [0, 5]]
    lines = [{"box": box, "text": t, "score": s, "box_score": 0.9}
             for t, s in (("equal", 0.8), ("above", 0.81), ("low", 0.3))]
    farm = AnsweringFarm(lambda task, options, arrays: ({"lines": lines}, []))
    client = app_with(farm).test_client()
    entries = {"ocr": {"detection": {"modelName": "m", "options": {"minScore": 0.4}},
                       "recognition": {"modelName": "m", "options": {"minScore": 0.8}}}}
    response = client.post("/predict", data={"entries": json.dumps(entries),
                                             "image": (io.BytesIO(jpeg()), "blob")})
    assert response.status_code == 200
    assert response.json["ocr"]["text"] == ["above"]  # Immich keeps scores above minScore
    assert farm.calls[0]["options"] == {"box_thresh": 0.4, "text_score": 0.0}


def test_immich_clip_asks_the_worker_for_the_normalised_vector():
    unit = np.full(512, 512 ** -0.5, np.float32)
    farm = AnsweringFarm(lambda task, options, arrays: (None, [unit]))
    client = app_with(farm).test_client()
    visual = client.post("/predict", data={
        "entries": json.dumps({"clip": {"visual": {"modelName": "m"}}}),
        "image": (io.BytesIO(jpeg()), "blob")})
    textual = client.post("/predict", data={
        "entries": json.dumps({"clip": {"textual": {"modelName": "m"}}}), "text": "猫"})
    assert visual.status_code == textual.status_code == 200
    assert [c["options"].get("normalise") for c in farm.calls] == [True, True]
    assert farm.calls[0]["arrays"][0].shape == (224, 224, 3)
    assert json.loads(visual.json["clip"]) == unit.astype(np.float64).tolist()
