"""Large photos end to end: 12 MP and 24 MP JPEGs with known text (generated ground truth).

The front decodes JPEGs over 4000 px at reduced scale (DCT scaling), which measured at least
as accurate as a full decode followed by RapidOCR's resize, at a quarter of the front's CPU
time (BENCHMARKS.md, "Large photos: which decode"). So the service's text on such photos is not
RapidOCR's on the full decode: these tests pin that it is exactly the in-process pipeline's on
the same decode, that boxes come back in the uploaded photo's pixels, and that the known text
is read.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.tools.ocr_score import Score, score_image
from models.tools.ocr_truth import Sample, large_specs, render
from protocol.images import OCR_MAX_SIDE, decode_image
from tests.ocr_fixtures import load_pipeline
from tests.service import Service

pytestmark = pytest.mark.service


@pytest.fixture(scope="module")
def photos(shared: Path) -> list[Sample]:
    specs = large_specs(shared / "testdata", count=2)  # 4032x3024 and 6000x4000
    assert [(s.long_side, round(s.aspect, 2)) for s in specs] == [(4032, 1.33), (6000, 1.5)]
    return [render(spec) for spec in specs]


def test_service_reads_large_photos_as_the_pipeline_does(service: Service, photos, model_dir):
    pipeline = load_pipeline(model_dir)  # the service runs ppocrv4 with dynamic shapes too
    score = Score()
    for sample in photos:
        assert len(sample.jpeg) < 8 * 1024 * 1024  # the test service's MAX_UPLOAD_MB
        response = service.post("/ocr", files={"file": ("photo.jpg", sample.jpeg)})
        assert response.status_code == 200, response.text
        result = response.json()["result"]
        decoded = decode_image(sample.jpeg, max_side=OCR_MAX_SIDE)
        assert max(decoded.array.shape) < max(sample.width, sample.height) / 1.9  # reduced
        lines = pipeline(decoded.array)
        assert result["texts"] == [line.text for line in lines]
        for box, line in zip(result["boxes"], lines):
            x, y = (v / decoded.scale for v in line.box[0])
            assert abs(float(box["x"]) - x) <= 0.01 and abs(float(box["y"]) - y) <= 0.01
        predicted = [([[float(b["x"]), float(b["y"])],
                       [float(b["x"]) + float(b["width"]), float(b["y"])],
                       [float(b["x"]) + float(b["width"]), float(b["y"]) + float(b["height"])],
                       [float(b["x"]), float(b["y"]) + float(b["height"])]], text)
                     for b, text in zip(result["boxes"], result["texts"])]
        score.add(score_image(sample.lines, predicted))
    total = score.total()
    assert total.lines >= 8 and total.found_rate >= 0.6, vars(total)


def test_immich_reads_large_photos_as_the_pipeline_does(service: Service, photos, model_dir):
    pipeline = load_pipeline(model_dir)
    sample = photos[1]  # 24 MP
    entries = {"ocr": {"detection": {"modelName": "PP-OCRv5_mobile", "options": {"minScore": 0.5}},
                       "recognition": {"modelName": "PP-OCRv5_mobile",
                                       "options": {"minScore": 0.5}}}}
    response = service.post("/predict", key=None, data={"entries": json.dumps(entries)},
                            files={"image": ("blob", sample.jpeg)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["imageWidth"], body["imageHeight"]) == (sample.width, sample.height)
    decoded = decode_image(sample.jpeg, max_side=OCR_MAX_SIDE)
    lines = pipeline(decoded.array, text_score=0.5, box_thresh=0.5)
    expected = [line.text for line in lines if line.score > 0.5]
    assert body["ocr"]["text"] == expected and expected


def test_check_names_the_loaded_ocr_model(service: Service):
    body = service.post("/check").json()
    assert body["result"] == "pass" and body["ocr_model"] == ["ppocrv4"]
