"""`mtai convert` on the newer OCR generations: PP-OCRv6 small, the default, whose recogniser
rknn-toolkit2 2.5.0 cannot build as it is (IndexError in a fusion pass) and converts from its
onnxslim-simplified graph; the simulator must then read what onnxruntime reads.

A tiny profile (two canvases, two widths) on a few shared images keeps this inside the suite's
budget; every generation's conversion on a larger test profile, and the figures, are in
BENCHMARKS.md ("OCR generations on the NPU").
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from models.convert import toolkit
from models.convert.convert import Samples, convert_family
from models.fetch import fetch_ocr
from models.manifest import MANIFEST_NAME, Manifest
from models.ocr.generations import family_name
from models.ocr.profile import ShapeProfile
from tests.rknn_fixtures import ocr_with_profile

if platform.machine() != "x86_64":
    pytest.importorskip("rknn.api")

pytestmark = pytest.mark.simulator

PROFILE = ShapeProfile(det_canvases=((736, 736), (736, 992)), rec_widths=(320, 640))
IMAGES = ("rapidocr_ch_en_num.jpg", "rapidocr_japan.jpg", "easyocr_french.jpg")


def test_ppocrv6_small_converts_through_onnxslim_and_agrees(model_dir: Path, shared: Path,
                                                            tmp_path: Path):
    fetch_ocr(model_dir, lambda _: None, model="ppocrv6-small")
    family = family_name("ppocrv6-small")
    directory = ocr_with_profile(model_dir, tmp_path / "models", PROFILE, family)
    samples = tmp_path / "samples"
    samples.mkdir()
    for name in IMAGES:
        (samples / name).symlink_to(shared / "testdata/ocr" / name)
    messages: list[str] = []
    try:
        report = convert_family(directory, family, sample_dirs=Samples(ocr=samples),
                                progress=messages.append)
    finally:
        toolkit.forget()
    (check,) = report.checks
    assert check.passed and check.value >= 0.95, check.summary()
    assert int(check.detail.split()[0]) >= 20, check.detail  # the check compared real lines
    assert any("retrying on the onnxslim-simplified graph" in m for m in messages), messages
    target = directory / "rknn-rk3588" / family
    build = json.loads((target / "build.json").read_text())["models"]
    assert build["rec"]["plan"]["simplify"] is True
    assert not build["det"]["plan"]["simplify"]  # the detector builds as it is
    assert len(build["rec"]["metadata"]["character"].splitlines()) == 18708
    converted = Manifest.load(target / MANIFEST_NAME).models
    assert {role: spec.shapes for role, spec in converted.items()} == PROFILE.shapes()
