"""The HTTP front against hostile and odd input, and Immich's API, on the real service."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.service import Service

pytestmark = pytest.mark.service
FUZZ_CORPUS = Path(__file__).parent / "fixtures" / "fuzz"
OCR_ENTRIES = {"ocr": {
    "detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5,
                                                             "maxResolution": 736}},
    "recognition": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.8}},
}}


def restarts(service: Service) -> int:
    status = service.farm_status()
    return sum(s["restarts"] for s in status["slots"]) + status["front"]["restarts"]


def test_oversized_body_is_413_without_being_read(service: Service):
    url = urlparse(service.url)
    head = (
        "POST /ocr HTTP/1.1\r\nHost: x\r\napi-key: test-key\r\n"
        "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000000\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as conn:
        conn.sendall(head.encode() + b"--b\r\n" + b"x" * 1000)
        answer = conn.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]


@pytest.mark.parametrize(
    ("body", "headers", "kind"),
    [
        (b"{not json", {"Content-Type": "application/json"}, "json_invalid"),
        (json.dumps({"text": 42}).encode(), {"Content-Type": "application/json"}, "string_type"),
        (json.dumps({"text": ["a"]}).encode(), {"Content-Type": "application/json"},
         "string_type"),
        (json.dumps({"text": "字" * 20_000}).encode(), {"Content-Type": "application/json"},
         "string_too_long"),
        (json.dumps(["text"]).encode(), {"Content-Type": "application/json"}, "missing"),
    ],
)
def test_bad_clip_text_bodies_get_a_clear_422(service: Service, body, headers, kind):
    response = service.post("/clip/txt", data=body, headers=dict(headers))
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == kind


@pytest.mark.parametrize("path", sorted(FUZZ_CORPUS.iterdir()), ids=lambda p: p.name)
def test_fuzz_corpus_is_answered_in_the_client_format(service: Service, path: Path):
    data = path.read_bytes()
    for endpoint in ("/ocr", "/clip/img"):
        response = service.post(endpoint, files={"file": (path.name, data)})
        assert response.status_code == 200, (endpoint, response.text)
        body = response.json()
        assert body["result"] == [] and body["msg"].startswith("unusable image")
    predict = requests.post(service.url + "/predict", timeout=60,
                            data={"entries": json.dumps(OCR_ENTRIES)},
                            files={"image": ("blob", data)})
    assert predict.status_code == 422 and "unusable image" in predict.json()["detail"]


endpoints = st.sampled_from(["/ocr", "/clip/img", "/clip/txt", "/check", "/restart", "/predict"])
keys = st.sampled_from([None, "test-key", "", "wrong", "test-key\u00e9"])


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(endpoint=endpoints, key=keys, payload=st.binary(max_size=512),
       field=st.sampled_from(["file", "image", "text", "entries", "other"]),
       as_file=st.booleans())
def test_fuzzed_requests_never_get_a_500(service: Service, endpoint, key, payload, field,
                                         as_file):
    headers = {} if key is None else {"api-key": key.encode("utf-8")}
    if as_file:
        kwargs = {"files": {field: ("f", payload)}}
    else:
        kwargs = {"data": {field: payload.decode("latin-1")}}
    response = requests.post(service.url + endpoint, headers=headers, timeout=60, **kwargs)
    assert response.status_code in (200, 400, 401, 413, 422, 503), response.text[:300]
    assert response.headers["Content-Type"].startswith("application/json")


def test_fuzzing_killed_nothing(service: Service):
    before = restarts(service)
    for data in (b"\xff\xd8" * 1000, b"\x00", b"GIF89a" + b"\xff" * 100):
        service.post("/ocr", files={"file": ("x", data)})
    assert restarts(service) == before
    assert service.post("/check").status_code == 200


def test_ping_is_plain_pong(service: Service):
    response = requests.get(service.url + "/ping", timeout=10)
    assert response.status_code == 200 and response.text == "pong"
    assert response.headers["Content-Type"].startswith("text/plain")


def immich_ocr(service: Service, image: Path, entries: dict) -> requests.Response:
    with image.open("rb") as handle:
        return requests.post(service.url + "/predict", timeout=120,
                             data={"entries": json.dumps(entries)},
                             files={"image": ("blob", handle)})


def test_immich_ocr_answers_in_immich_shape(service: Service, shared: Path):
    image = shared / "testdata/ocr/rapidocr_ch_en_num.jpg"
    response = immich_ocr(service, image, OCR_ENTRIES)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["imageHeight"], body["imageWidth"]) == (430, 323)
    ocr = body["ocr"]
    n = len(ocr["text"])
    assert n >= 5 and len(ocr["box"]) == 8 * n
    assert len(ocr["boxScore"]) == len(ocr["textScore"]) == n
    assert all(0 <= v <= 1 for v in ocr["box"])
    assert all(s > 0.8 for s in ocr["textScore"]) and all(0 < s <= 1 for s in ocr["boxScore"])
    strict = json.loads(json.dumps(OCR_ENTRIES))
    strict["ocr"]["recognition"]["options"]["minScore"] = 0.99
    fewer = immich_ocr(service, image, strict).json()["ocr"]
    assert len(fewer["text"]) < n and all(s > 0.99 for s in fewer["textScore"])


@pytest.mark.parametrize("entries", ["not json", "[]", "{}", json.dumps({"ocr": {"x": {}}}),
                                     json.dumps({"clip": {"visual": {"modelName": 3}}})])
def test_immich_malformed_entries_are_422(service: Service, shared: Path, entries: str):
    response = requests.post(service.url + "/predict", timeout=60, data={"entries": entries},
                             files={"image": ("blob", b"\xff\xd8")})
    assert response.status_code == 422
    assert response.json() == {"detail": "Invalid request format."}


def test_immich_without_image_or_text_is_400(service: Service):
    response = requests.post(service.url + "/predict", timeout=60,
                             data={"entries": json.dumps(OCR_ENTRIES)})
    assert response.status_code == 400


def test_immich_task_we_do_not_serve_is_a_clear_4xx(service: Service, shared: Path):
    entries = {"pet-detection": {"detection": {"modelName": "yolo"}}}  # faces are served now
    response = immich_ocr(service, shared / "testdata/photos/pokemon.jpeg", entries)
    assert response.status_code == 422 and "pet-detection" in response.json()["detail"]


def test_api_key_never_reaches_the_log(service: Service):
    service.post("/check", key="wrong-key-8c1f")
    service.post("/check")
    log = service.log_path.read_text(errors="replace")
    assert "wrong-key-8c1f" not in log and "test-key" not in log
