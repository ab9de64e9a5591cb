"""Faces through the whole service: MT-Photos' /represent and /check, Immich's facial
recognition in /predict, equal to insightface 2.1 on the same generated models, and face jobs
surviving a killed worker under mixed load."""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import numpy as np
import orjson
import pytest
import requests
from PIL import Image

from tests.face_fixtures import MIN_COSINE, Reference, collage, cosine_rows
from tests.service import BusyWorkerKiller, Service, under_load

pytestmark = pytest.mark.service
ENTRIES = {"facial-recognition": {
    "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
    "recognition": {"modelName": "buffalo_l"}}}


@pytest.fixture(scope="module")
def reference(full_model_dir: Path) -> Reference:
    face = full_model_dir / "face"
    return Reference(face / "det_10g.onnx", face / "w600k_r50.onnx")


def png(rgb: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    return out.getvalue()


def represent(service: Service, data: bytes) -> requests.Response:
    return service.post("/represent", files={"file": ("photo.png", data)})


def predict(service: Service, data: bytes, entries: dict) -> requests.Response:
    return requests.post(service.url + "/predict", timeout=60, files={"image": ("blob", data)},
                         data={"entries": json.dumps(entries)})


def test_represent_is_the_sidecars_answer(service: Service, reference: Reference):
    rgb = collage(2, 4)
    response = represent(service, png(rgb))
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["detector_backend", "recognition_model", "result"]
    assert (body["detector_backend"], body["recognition_model"]) == ("insightface", "buffalo_l")
    dets, _, _, normed = reference(rgb, 0.65)
    assert len(body["result"]) == len(dets) > 0
    for face, det, want in zip(body["result"], dets, normed):
        assert list(face) == ["embedding", "facial_area", "face_confidence"]
        x1, y1, x2, y2 = det[:4]
        assert face["facial_area"] == {"x": int(x1), "y": int(y1), "w": int(x2 - x1),
                                       "h": int(y2 - y1)}
        assert face["face_confidence"] == pytest.approx(float(det[4]), abs=1e-6)
        vector = np.array(face["embedding"])
        assert vector.shape == (512,) and abs(np.linalg.norm(vector) - 1) < 1e-5
        assert cosine_rows(vector[None], want[None])[0] >= MIN_COSINE


def test_represent_without_a_face_and_with_garbage(service: Service):
    flat = represent(service, png(np.full((300, 400, 3), 127, np.uint8)))
    assert flat.json() == {"detector_backend": "insightface", "recognition_model": "buffalo_l",
                           "result": []}
    garbage = represent(service, b"not an image")
    assert garbage.status_code == 200 and garbage.json()["result"] == []
    assert "unusable image" in garbage.json()["msg"]
    tiny = represent(service, png(np.full((1, 1, 3), 9, np.uint8)))
    assert tiny.status_code == 200 and tiny.json()["result"] == []
    luma = collage(2, 4)[..., 1]
    grey = io.BytesIO()
    Image.fromarray(luma).save(grey, "PNG")  # mode L: decoded to grey RGB
    as_grey = represent(service, grey.getvalue())
    assert as_grey.status_code == 200
    assert as_grey.json() == represent(service, png(np.dstack([luma] * 3))).json()
    assert service.post("/represent").status_code == 422
    assert service.post("/represent", key="wrong", files={"file": ("a", b"x")}).status_code == 401


def test_check_fills_the_face_api_slot(service: Service):
    body = service.post("/check").json()
    assert body["result"] == "pass" and "face" in body["models"]
    assert body["detector_backend"] == "insightface" and body["recognition_model"] == "buffalo_l"
    assert (body["facial_min_score"], body["facial_max_distance"]) == (0.65, 0.5)


def test_immich_faces_are_immichs_answer(service: Service, reference: Reference):
    rgb = collage(2, 3)
    response = predict(service, png(rgb), ENTRIES)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["imageHeight"], body["imageWidth"]) == rgb.shape[:2]
    dets, _, raw, _ = reference(rgb, 0.7)
    faces = body["facial-recognition"]
    assert len(faces) == len(dets) > 0
    boxes = np.round(dets[:, :4])
    for face, box, score, want in zip(faces, boxes, dets[:, 4], raw):
        assert list(face) == ["boundingBox", "embedding", "score"]
        assert face["boundingBox"] == dict(zip(("x1", "y1", "x2", "y2"), box.tolist()))
        assert isinstance(face["embedding"], str)
        vector = np.array(json.loads(face["embedding"]), np.float32)
        assert cosine_rows(vector[None], want[None])[0] >= MIN_COSINE
        assert abs(np.linalg.norm(vector) - np.linalg.norm(want)) < 1e-3 * np.linalg.norm(want)
        assert face["score"] == pytest.approx(float(score), abs=1e-6)
    # the bytes Immich's own service writes for these values (orjson, float32)
    first = faces[0]
    text = response.content.decode()
    assert orjson.dumps(np.float32(first["score"]), option=orjson.OPT_SERIALIZE_NUMPY).decode() \
        in text


def test_immich_min_score_no_face_and_combined_tasks(service: Service):
    data = png(collage(2, 3))
    loose = dict(ENTRIES, **{"facial-recognition": {
        **ENTRIES["facial-recognition"],
        "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.3}}}})
    many = predict(service, data, loose).json()["facial-recognition"]
    few = predict(service, data, ENTRIES).json()["facial-recognition"]
    assert len(many) > len(few) and all(f["score"] >= 0.7 for f in few)
    flat = predict(service, png(np.full((64, 64, 3), 127, np.uint8)), ENTRIES).json()
    assert flat["facial-recognition"] == [] and flat["imageWidth"] == 64
    both = predict(service, data, {**ENTRIES, "clip": {"visual": {"modelName": "ViT-B-16"}}})
    assert both.status_code == 200, both.text
    body = both.json()
    assert isinstance(body["clip"], str) and len(body["facial-recognition"]) == len(few)
    half = predict(service, data, {"facial-recognition": {"recognition": {"modelName": "x"}}})
    assert half.status_code == 400
    bad = predict(service, data, {"facial-recognition": {
        "detection": {"modelName": "x", "options": {"minScore": "high"}},
        "recognition": {"modelName": "x"}}})
    assert bad.status_code == 422


def test_a_killed_worker_under_mixed_load_fails_no_face_job(service: Service, shared: Path):
    text = (shared / "testdata/ocr/rapidocr_text_rec.jpg").read_bytes()
    photo = (shared / "testdata/photos/silver_fir.jpg").read_bytes()
    faces = png(collage(2, 2))
    turns = itertools.cycle(("ocr", "clip", "face"))

    def request() -> tuple[int, dict]:
        kind = next(turns)
        if kind == "ocr":
            response = service.post("/ocr", files={"file": ("t.jpg", text)})
        elif kind == "clip":
            response = service.post("/clip/img", files={"file": ("p.jpg", photo)})
        else:
            response = represent(service, faces)
        body = response.json()
        ok = response.status_code == 200 and "msg" not in body and body["result"]
        return (response.status_code if ok else -1), {"kind": kind, **body}

    killer = BusyWorkerKiller(service)
    answers = under_load(killer.kill, request, until=killer.replaced)
    kinds = {a[1]["kind"] for a in answers}
    assert kinds == {"ocr", "clip", "face"} and len(answers) >= 6
    assert [a for a in answers if a[0] != 200] == []
    service.wait_ready(workers=3)
