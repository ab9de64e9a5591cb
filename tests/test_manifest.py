"""Model manifests: round trip, integrity checks and the model directory default."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from models.fetch import ocr_manifest
from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ModelIntegrityError,
    ModelNotInstalled,
    ModelSpec,
    Preprocess,
    sha256_file,
)

REPO = Path(__file__).resolve().parents[1]


def _tiny_family(directory: Path) -> Manifest:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "net.onnx").write_bytes(b"pretend weights")
    spec = ModelSpec(
        file="net.onnx",
        source="test",
        sha256=sha256_file(directory / "net.onnx"),
        input_name="x",
        layout="NCHW",
        dtype="float32",
        shape=(-1, 3, 48, -1),
        mean_std_folded=False,
        preprocess=Preprocess("BGR", 1 / 255, (0.5,) * 3, (0.5,) * 3),
    )
    return Manifest(family="toy", models={"rec": spec})


def test_round_trip_keeps_every_field(tmp_path: Path):
    manifest = _tiny_family(tmp_path)
    manifest.save(tmp_path / MANIFEST_NAME)
    assert Manifest.load(tmp_path / MANIFEST_NAME) == manifest
    raw = json.loads((tmp_path / MANIFEST_NAME).read_text())
    assert raw["models"]["rec"]["shapes"] is None
    assert raw["models"]["rec"]["preprocess"]["channel_order"] == "BGR"


def test_verify_accepts_intact_files(tmp_path: Path):
    _tiny_family(tmp_path).verify(tmp_path)


def test_verify_names_the_tampered_file(tmp_path: Path):
    manifest = _tiny_family(tmp_path)
    (tmp_path / "net.onnx").write_bytes(b"pretend weightz")
    with pytest.raises(ModelIntegrityError, match=r"toy/rec: .*net\.onnx has sha256 [0-9a-f]{64}"):
        manifest.verify(tmp_path)


def test_missing_models_are_file_not_found(tmp_path: Path):
    manifest = _tiny_family(tmp_path)
    (tmp_path / "net.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        manifest.verify(tmp_path)
    with pytest.raises(ModelNotInstalled, match="fetch"):
        Manifest.load(tmp_path / "nowhere" / MANIFEST_NAME)


@pytest.mark.parametrize("text", ["{", "[]", '{"format": 99}', '{"format": 1, "models": {}}'])
def test_malformed_manifests_are_reported(tmp_path: Path, text: str):
    (tmp_path / MANIFEST_NAME).write_text(text)
    with pytest.raises(ManifestError, match=MANIFEST_NAME):
        Manifest.load(tmp_path / MANIFEST_NAME)


def test_fetched_ocr_manifest_matches_the_pinned_one(model_dir: Path):
    directory = model_dir / "ocr"
    manifest = Manifest.load(directory / MANIFEST_NAME)
    assert manifest == ocr_manifest()
    manifest.verify(directory)
    assert set(manifest.models) == {"det", "cls", "rec"}
    for spec in manifest.models.values():
        assert spec.source.startswith("pypi:rapidocr-onnxruntime==1.4.4:")
        assert (spec.layout, spec.dtype, spec.mean_std_folded) == ("NCHW", "float32", False)


def test_tampered_real_model_is_caught(model_dir: Path, tmp_path: Path):
    manifest = ocr_manifest()
    cls_spec = manifest.models["cls"]
    data = bytearray((model_dir / "ocr" / cls_spec.file).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / cls_spec.file).write_bytes(bytes(data))
    only_cls = dataclasses.replace(manifest, models={"cls": cls_spec})
    with pytest.raises(ModelIntegrityError, match="corrupt or was replaced"):
        only_cls.verify(tmp_path)


