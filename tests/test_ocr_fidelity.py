"""Our PP-OCRv4 pipeline against what RapidOCR 1.4.4 reads in the shared test images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.ocr.compare import match_lines
from models.ocr.pipeline import OcrPipeline
from protocol.images import decode_image
from tests.ocr_fixtures import load_pipeline, reference_lines


@pytest.fixture(scope="module")
def pipeline(model_dir: Path) -> OcrPipeline:
    return load_pipeline(model_dir)


def test_reads_what_the_reference_reads(pipeline: OcrPipeline, shared: Path):
    testdata = shared / "testdata"
    reference = json.loads((testdata / "ocr_reference_rapidocr.json").read_text())["images"]
    images = sorted(p.relative_to(testdata).as_posix() for p in (testdata / "ocr").iterdir())
    assert images == sorted(reference), "every test image needs a reference entry"
    total = matched = extra = 0
    report = []
    for name in images:
        decoded = decode_image((testdata / name).read_bytes())
        lines = pipeline(decoded.array)
        found = match_lines(reference_lines(reference[name]), lines)
        hits, left_over = found.matched, found.extra
        missed = [(m.text, m.box) for m in found.missed]
        total += len(reference[name])
        matched += hits
        extra += left_over
        if missed or left_over:
            ours = [(line.text, [list(p) for p in line.box]) for line in lines]
            report.append(f"{name}: missed {missed}, {left_over} extra; ours {ours}")
    assert total >= 100
    detail = "\n".join(report)
    assert matched / total >= 0.99, f"{matched}/{total} reference lines matched\n{detail}"
    assert extra / total < 0.01, f"{extra} extra lines over {total}\n{detail}"
