"""Installing and loading the CLIP pair: manifest, integrity, the lazily loaded text tower."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from models.clip import ClipModels
from models.clip.install import (
    IMAGE_FILE,
    IMAGE_PREPROCESS,
    TEXT_FILE,
    VOCAB_FILE,
    VOCAB_SHA256,
    install_clip_files,
)
from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ModelIntegrityError,
    ModelNotInstalled,
    sha256_file,
)
from tests.clip_fixtures import IMAGE_ONNX, TEXT_ONNX, VOCAB, install_tiny


def test_install_writes_a_manifest_the_loader_trusts(tmp_path: Path):
    messages: list[str] = []
    target = install_clip_files(tmp_path, IMAGE_ONNX, TEXT_ONNX, VOCAB, progress=messages.append)
    assert target == tmp_path / "clip"
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [IMAGE_FILE, TEXT_FILE, VOCAB_FILE, MANIFEST_NAME]
    )
    manifest = Manifest.load(target / MANIFEST_NAME)
    image, text, vocab = (manifest.models[r] for r in ("image", "text", "vocab"))
    assert (image.input_name, image.layout, image.dtype, image.shape) == (
        "image", "NCHW", "float32", (1, 3, 224, 224)
    )
    assert image.preprocess == IMAGE_PREPROCESS and not image.mean_std_folded
    assert (text.input_name, text.dtype, text.shape) == ("text", "int64", (1, 52))
    assert image.sha256 == sha256_file(IMAGE_ONNX) and text.sha256 == sha256_file(TEXT_ONNX)
    assert vocab.sha256 == VOCAB_SHA256
    assert image.source == f"file:{IMAGE_ONNX.resolve()}"
    assert len(messages) == 3 and all("sha256" in m for m in messages)
    assert IMAGE_ONNX.is_file()  # copied, not moved


def test_text_tower_loads_on_first_use(tmp_path: Path):
    models = ClipModels.load(install_tiny(tmp_path).parent)
    assert not models.text_loaded
    models.image(np.zeros((224, 224, 3), dtype=np.uint8))
    assert not models.text_loaded
    models.text()
    assert models.text_loaded
    assert ClipModels.load(tmp_path, load_text=True).text_loaded


def test_absent_clip_is_file_not_found(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="not installed"):
        ClipModels.load(tmp_path)
    install_tiny(tmp_path)
    (tmp_path / "clip" / IMAGE_FILE).unlink()
    with pytest.raises(ModelNotInstalled, match="missing"):
        ClipModels.load(tmp_path)


def test_damaged_text_model_fails_when_first_needed(tmp_path: Path):
    install_tiny(tmp_path)
    with open(tmp_path / "clip" / TEXT_FILE, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\xff\x00\xff")
    models = ClipModels.load(tmp_path)  # the image side is intact
    with pytest.raises(ModelIntegrityError, match="clip/text"):
        models.text()


def test_manifest_without_a_role_is_refused(tmp_path: Path):
    target = install_tiny(tmp_path)
    manifest = Manifest.load(target / MANIFEST_NAME)
    del manifest.models["vocab"]
    manifest.save(target / MANIFEST_NAME)
    with pytest.raises(ManifestError, match="vocab"):
        ClipModels.load(tmp_path)


def test_a_foreign_vocab_is_refused(tmp_path: Path):
    odd = tmp_path / "vocab.txt"
    odd.write_text(VOCAB.read_text(encoding="utf-8").replace("[UNK]", "[???]"), encoding="utf-8")
    with pytest.raises(ModelIntegrityError, match="expected " + VOCAB_SHA256):
        install_clip_files(tmp_path / "m", IMAGE_ONNX, TEXT_ONNX, odd, progress=lambda _: None)
    assert not (tmp_path / "m" / "clip" / MANIFEST_NAME).exists()


@pytest.mark.parametrize(
    ("image", "text", "match"),
    [
        (TEXT_ONNX, TEXT_ONNX, "inputs \\['text'\\], expected \\['image'\\]"),
        (IMAGE_ONNX, VOCAB, "not a loadable ONNX model"),
    ],
)
def test_files_that_break_the_contract_are_refused(tmp_path: Path, image, text, match):
    with pytest.raises(ModelIntegrityError, match=match):
        install_clip_files(tmp_path, image, text, VOCAB, progress=lambda _: None)
    assert not (tmp_path / "clip" / MANIFEST_NAME).exists()


def test_pinned_digest_mismatch_is_refused(tmp_path: Path):
    with pytest.raises(ModelIntegrityError, match="not the published image file"):
        install_clip_files(
            tmp_path, IMAGE_ONNX, TEXT_ONNX, VOCAB, expected={"image": "0" * 64},
            progress=lambda _: None,
        )


def test_reinstall_over_an_installed_copy(tmp_path: Path):
    target = install_tiny(tmp_path)
    staged = tmp_path / "staged"
    staged.mkdir()
    for src in (IMAGE_ONNX, TEXT_ONNX, VOCAB):
        shutil.copy(src, staged / src.name)
    install_clip_files(
        tmp_path, staged / "image.onnx", staged / "text.onnx", staged / "vocab.txt",
        move=True, progress=lambda _: None,
    )
    assert not any(staged.iterdir())  # moved
    Manifest.load(target / MANIFEST_NAME).verify(target)
    install_clip_files(  # installing the installed files onto themselves is a no-op copy
        tmp_path, target / IMAGE_FILE, target / TEXT_FILE, target / VOCAB_FILE,
        progress=lambda _: None,
    )
    Manifest.load(target / MANIFEST_NAME).verify(target)
