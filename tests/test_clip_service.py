"""CLIP through the whole service: MT-Photos' exact vector strings and Immich's normalised
JSON-string embedding, equal to the torch reference model's vectors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.clip_fixtures import MIN_COSINE, cosine, reference
from tests.service import Service

pytestmark = pytest.mark.service
VECTOR_STRING = re.compile(r"-?\d+\.\d{16}")


def mt_vector(response: requests.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["result"] and len(body["result"]) == 512
    assert all(isinstance(v, str) and VECTOR_STRING.fullmatch(v) for v in body["result"])
    return np.array([float(v) for v in body["result"]])


def test_clip_image_vectors_match_the_reference_model(service: Service, shared: Path):
    ref = reference()
    for name, expected in zip(ref["image_names"], ref["image_features"]):
        with (shared / "testdata/photos" / name).open("rb") as handle:
            vector = mt_vector(service.post("/clip/img", files={"file": (name, handle)}))
        assert cosine(vector, expected) >= MIN_COSINE, name
        assert abs(np.linalg.norm(vector) - np.linalg.norm(expected)) < 1e-3  # unnormalised


def test_clip_text_vectors_match_the_reference_model(service: Service):
    ref = reference()
    for text, expected in list(zip(ref["texts"], ref["text_features"]))[:8]:
        vector = mt_vector(service.post("/clip/txt", json={"text": str(text)}))
        assert cosine(vector, expected) >= MIN_COSINE, text


def test_small_values_never_use_scientific_notation(service: Service):
    body = service.post("/clip/txt", json={"text": "一只猫"}).json()
    assert not any("e" in v.lower() for v in body["result"])


def test_immich_clip_is_a_normalised_json_string(service: Service, shared: Path):
    ref = reference()
    name = str(ref["image_names"][0])
    with (shared / "testdata/photos" / name).open("rb") as handle:
        response = requests.post(
            service.url + "/predict", timeout=60, files={"image": ("blob", handle)},
            data={"entries": json.dumps({"clip": {"visual": {"modelName": "ViT-B-16__openai"}}})},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["clip"], str) and body["imageWidth"] > 0 and body["imageHeight"] > 0
    embedding = np.array(json.loads(body["clip"]))
    assert embedding.shape == (512,) and abs(np.linalg.norm(embedding) - 1) < 1e-6
    assert cosine(embedding, ref["image_features"][0]) >= MIN_COSINE
    text = requests.post(service.url + "/predict", timeout=60, data={
        "entries": json.dumps({"clip": {"textual": {"modelName": "x",
                                                    "options": {"language": "zh"}}}}),
        "text": str(ref["texts"][1])})
    assert text.status_code == 200, text.text
    assert "imageWidth" not in text.json()
    assert cosine(np.array(json.loads(text.json()["clip"])), ref["text_features"][1]) >= MIN_COSINE
