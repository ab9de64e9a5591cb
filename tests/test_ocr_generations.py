"""Every OCR generation against RapidOCR 3.10.0 on the same model files (the recorded reference
tests/fixtures/ocr_reference_rapidocr310.json, made by benchmarks/ocr_reference.py): identical
text with corners within 2 px for at least 99% of the lines, and few lines it lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.fetch import fetch_ocr, ocr_manifest
from models.ocr.compare import match_lines
from models.ocr.generations import OCR_MODELS, family_name
from models.ocr.pipeline import OcrPipeline
from protocol.images import decode_image
from tests.ocr_fixtures import reference_lines

FIXTURE = Path(__file__).parent / "fixtures" / "ocr_reference_rapidocr310.json"
REFERENCE = json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("model", OCR_MODELS)
def test_reads_what_rapidocr_310_reads(model: str, model_dir: Path, shared: Path):
    fetch_ocr(model_dir, lambda _: None, model=model)
    recorded = REFERENCE["models"][model]
    pinned = {role: spec.sha256 for role, spec in ocr_manifest(model).models.items()}
    assert recorded["sha256"] == pinned, "the reference was made from other files: rerun it"
    pipeline = OcrPipeline.load(model_dir, threads=2, family=family_name(model))
    total = matched = extra = 0
    report = []
    for name, reference in sorted(recorded["images"].items()):
        lines = pipeline(decode_image((shared / "testdata" / name).read_bytes()).array)
        found = match_lines(reference_lines(reference), lines)
        total, matched, extra = total + len(reference), matched + found.matched, extra + found.extra
        if found.missed or found.extra:
            report.append(f"{name}: missed {[m.text for m in found.missed]}, {found.extra} extra")
    assert total >= 50, f"{model}: the reference holds too few lines to compare ({total})"
    detail = "\n".join(report)
    assert matched / total >= 0.99, f"{model}: {matched}/{total} lines identical\n{detail}"
    assert extra / total <= 0.01, f"{model}: {extra} extra lines over {total}\n{detail}"
