"""The walking skeleton end to end: real gunicorn, real workers, real ZeroMQ, real models."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from models.ocr.compare import match_lines
from tests.ocr_fixtures import reference_lines
from tests.service import Service

pytestmark = pytest.mark.service


def ocr(service: Service, path: Path) -> dict:
    with path.open("rb") as handle:
        response = service.post("/ocr", files={"file": (path.name, handle)})
    assert response.status_code == 200, response.text
    return response.json()


def test_ocr_reads_what_the_reference_reads(service: Service, shared: Path):
    reference = json.loads((shared / "testdata/ocr_reference_rapidocr.json").read_text())["images"]
    assert len(reference) >= 20
    total = found = 0
    misses = []
    for name, lines in reference.items():
        result = ocr(service, shared / "testdata" / name)["result"]
        ours = [SimpleNamespace(text=text, box=[(float(box["x"]), float(box["y"]))])
                for text, box in zip(result["texts"], result["boxes"])]
        matching = match_lines(reference_lines(lines), ours, 3.0, distance=first_corner)
        total, found = total + len(lines), found + matching.matched
        misses += [(name, line.text) for line in matching.missed]
    assert found / total >= 0.95, f"{found}/{total} reference lines found; missed {misses[:20]}"


def first_corner(line, ref) -> float:
    """MT-Photos boxes keep only the first corner exactly (x, y; width and height follow)."""
    return max(abs(line.box[0][0] - ref.box[0][0]), abs(line.box[0][1] - ref.box[0][1]))


def test_ocr_answers_in_the_exact_mt_photos_format(service: Service, shared: Path):
    body = ocr(service, shared / "testdata/ocr/rapidocr_ch_en_num.jpg")
    assert list(body) == ["result"]
    result = body["result"]
    assert list(result) == ["texts", "scores", "boxes"]
    assert len(result["texts"]) == len(result["scores"]) == len(result["boxes"]) > 3
    for score in result["scores"]:
        assert re.fullmatch(r"[01]\.\d\d", score) and float(score) >= 0.5
    for box in result["boxes"]:
        assert list(box) == ["x", "y", "width", "height"]
        for value in box.values():
            assert isinstance(value, str) and "e" not in value.lower()
            assert value == str(round(float(value), 2))
        assert float(box["width"]) > 0 and float(box["height"]) > 0


def test_ocr_of_an_image_without_text_is_three_empty_lists(service: Service, shared: Path):
    body = ocr(service, shared / "testdata/ocr/rapidocr_empty_black.jpg")
    assert body == {"result": {"texts": [], "scores": [], "boxes": []}}


@pytest.mark.parametrize("payload", [b"", b"hello, not an image", b"\xff\xd8\xff\xe0" + b"\0" * 50])
def test_unusable_upload_is_200_with_empty_result_and_reason(service: Service, payload: bytes):
    response = service.post("/ocr", files={"file": ("x.jpg", payload)})
    assert response.status_code == 200
    body = response.json()
    assert body["result"] == [] and body["msg"]


def test_missing_api_key_is_fastapi_422(service: Service, shared: Path):
    response = service.post("/check", key=None)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"type": "missing", "loc": ["header", "api-key"], "msg": "Field required"}]
    }


def test_wrong_api_key_is_401_everywhere(service: Service):
    for path in ("/check", "/ocr", "/clip/img", "/clip/txt", "/restart"):
        response = service.post(path, key="wrong")
        assert response.status_code == 401, path
        assert response.json() == {"detail": "Invalid API key"}


def test_missing_file_or_text_is_422_with_its_location(service: Service):
    response = service.post("/ocr")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    response = service.post("/clip/txt", json={"query": "x"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "text"]
    both = service.post("/ocr", key=None).json()["detail"]
    assert [d["loc"] for d in both] == [["header", "api-key"], ["body", "file"]]


def test_check_restart_and_status_page(service: Service):
    check = service.post("/check")
    assert check.status_code == 200
    assert check.json()["result"] == "pass" and "ocr" in check.json()["models"]
    assert service.post("/restart").json() == {"result": "pass"}
    page = requests.get(service.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "test-key" not in page.text and "core" in page.text


def test_listens_on_ipv6_too(service: Service):
    port = service.url.rsplit(":", 1)[1]
    try:
        response = requests.get(f"http://[::1]:{port}/", timeout=10)
    except requests.ConnectionError as exc:
        if "Address family" in str(exc) or "Cannot assign" in str(exc):
            pytest.fail(f"no IPv6 loopback on this machine: {exc}")
        raise
    assert response.status_code == 200


def test_killed_worker_is_respawned_and_serves_again(service: Service, shared: Path):
    before = service.farm_status()["slots"][0]
    os.kill(before["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        slot = service.farm_status()["slots"][0]
        if slot["pid"] not in (None, before["pid"]):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"worker 0 was not respawned:\n{service.tail()}")
    assert slot["restarts"] == before["restarts"] + 1
    service.wait_ready(workers=3)
    texts = ocr(service, shared / "testdata/ocr/rapidocr_en.jpg")["result"]["texts"]
    assert texts
