"""Converted model directories for the NPU backend tests, made without rknn-toolkit2.

``fake_convert`` lays a family out exactly as `mtai convert` does (same plans and manifest
specs, from the converter's own planning code) but writes placeholder .rknn files: the RKNN
magic and the plan. Only the fake runtime (tests/fake_rknnlite.py) can run them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from models.convert.plan import family_plan
from models.manifest import MANIFEST_NAME, Manifest, family_dir, sha256_file
from models.ocr.profile import ShapeProfile
from models.runtime.artifacts import BUILD_NAME, BuildEntry, BuildRecord
from models.runtime.onnx import OnnxSession
from models.runtime.soc import rknn_root

COMPATIBLE_RK3588 = b"rockchip,rk3588s-orangepi-5\0rockchip,rk3588\0"


def fake_convert(model_dir: Path, family: str, target: str = "rk3588",
                 toolkit: str = "2.5.0") -> Path:
    """Write ``<model_dir>/rknn-<target>/<family>``; return ``<model_dir>/rknn-<target>``."""
    source = family_dir(model_dir, family)
    manifest = Manifest.load(source / MANIFEST_NAME)
    stage = rknn_root(model_dir, target) / family
    stage.mkdir(parents=True, exist_ok=True)
    specs, entries = {}, {}
    for item in family_plan(family, manifest.models, {}, target, source, stage):
        if item.plan is None:
            shutil.copyfile(source / item.source.file, stage / item.spec.file)
            specs[item.role] = item.spec
            continue
        path = stage / item.spec.file
        path.write_bytes(b"RKNN\0\0\0\0" + item.plan.key().encode())
        specs[item.role] = replace(item.spec, sha256=sha256_file(path))
        metadata = OnnxSession(source / item.source.file, threads=1).metadata()
        entries[item.role] = BuildEntry(file=item.spec.file, plan=item.plan, metadata=metadata)
    Manifest(family=family, models=specs).save(stage / MANIFEST_NAME)
    BuildRecord(family=family, target=target, toolkit=toolkit, models=entries).save(
        stage / BUILD_NAME)
    return rknn_root(model_dir, target)


def device_tree(root: Path, compatible: bytes = COMPATIBLE_RK3588,
                model: bytes = b"Orange Pi 5\0") -> Path:
    """A fake /proc/device-tree under ``root``; returns the compatible file."""
    tree = root / "proc" / "device-tree"
    tree.mkdir(parents=True, exist_ok=True)
    (tree / "compatible").write_bytes(compatible)
    (tree / "model").write_bytes(model)
    return tree / "compatible"


RUNTIME = b"\0\0junk librknnrt version: %s (c949ad889d@2024-11-07T11:35:33)\0more"


def board(root: Path, runtime: bytes | None = b"2.5.0", driver: bool = True) -> Path:
    """A fake RK3588 board's /proc, /sys and /usr/lib under ``root``."""
    device_tree(root)
    if driver:
        debug = root / "sys/kernel/debug/rknpu"
        debug.mkdir(parents=True)
        (debug / "version").write_text("RKNPU driver: v0.9.8\n")
        (debug / "load").write_text("NPU load:  Core0:  3%, Core1:  0%, Core2:  0%,\n")
    if runtime is not None:
        lib = root / "usr/lib"
        lib.mkdir(parents=True)
        (lib / "librknnrt.so").write_bytes(b"\x7fELF" + RUNTIME % runtime)
    return root


def deny_rknpu_reads(monkeypatch) -> None:
    """Reading the RKNPU driver's files fails as it does for a user other than root."""
    original = Path.read_bytes

    def deny(self: Path) -> bytes:
        if "rknpu" in str(self):
            raise PermissionError(13, "Permission denied")
        return original(self)

    monkeypatch.setattr(Path, "read_bytes", deny)


def ocr_with_profile(model_dir: Path, directory: Path, profile: ShapeProfile,
                     family: str = "ocr") -> Path:
    """``directory/<family>``: the fetched OCR models (linked) under a manifest listing
    ``profile``."""
    (directory / family).mkdir(parents=True)
    for file in (model_dir / family).iterdir():
        if file.name != MANIFEST_NAME:
            (directory / family / file.name).symlink_to(file)
    raw = json.loads((model_dir / family / MANIFEST_NAME).read_text())
    for role, shapes in profile.shapes().items():
        raw["models"][role]["shapes"] = shapes
    (directory / family / MANIFEST_NAME).write_text(json.dumps(raw))
    return directory
