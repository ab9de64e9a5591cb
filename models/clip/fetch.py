"""Get the Chinese-CLIP ViT-B-16 ONNX pair that the MT-Photos sidecar runs.

Source: the official sidecar's README tells users to take ``vit-b-16.img.fp32.onnx`` and
``vit-b-16.txt.fp32.onnx`` from its GitHub release v1.1.0; both are cn_clip's fp32 export of the
ViT-B-16 checkpoint, single files without external data (only cn_clip's fp16 and ViT-H exports
carry an ``.extra_file``), about 330 MB and 390 MB. The release publishes no checksums, so their
sha256 is recorded in the manifest on first download and checked from then on; the vocab's is
pinned (cn_clip 1.6.0's file). Given a checkpoint instead, cn_clip exports the pair in a child
process (models/tools/export_clip.py).

Called through ``models.fetch.fetch_clip``; errors are that module's FetchError.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from models.clip.install import (
    FAMILY,
    IMAGE_FILE,
    TEXT_FILE,
    VOCAB_FILE,
    install_clip_files,
)
from models.download import DownloadError, download
from models.fetch import FetchError, download_or_explain
from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ModelIntegrityError,
    ModelNotInstalled,
    family_dir,
)

CLIP_BASE_URL = "https://github.com/MT-Photos/mt-photos-ai/releases/download/v1.1.0"
CLIP_URL_ENV = "CLIP_MODEL_URL"
VOCAB_URL = "https://raw.githubusercontent.com/OFA-Sys/Chinese-CLIP/master/cn_clip/clip/vocab.txt"
# Published sha256 of the release files, per role: none exist, so None = record on first download.
PINNED: dict[str, str | None] = {"image": None, "text": None}
EXPORT_ARCH = "ViT-B-16"
EXPORT_MODULE = "models.tools.export_clip"  # cn_clip's own script fails on current torch: see there

Progress = Callable[[str], None]


def fetch(
    model_dir: Path,
    progress: Progress = print,
    base_url: str | None = None,
    checkpoint: Path | None = None,
) -> Path:
    """Download (or export from ``checkpoint``), verify and install; return ``<model_dir>/clip``.

    Idempotent: nothing is fetched while an installed copy verifies. The base URL is
    ``base_url`` (the CLIP_MODEL_URL setting: a mirror, or ``file:///dir`` holding files
    downloaded by hand), else the MT-Photos release.
    """
    target = family_dir(model_dir, FAMILY)
    _sweep(target)
    if checkpoint is not None:
        return _export(model_dir, Path(checkpoint), progress)
    if _present(target):
        progress(f"Chinese-CLIP present and verified in {target}")
        return target
    # base: where vit-b-16.{img,txt}.fp32.onnx (and optionally vocab.txt) are served
    base = (base_url or CLIP_BASE_URL).rstrip("/")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target) as tmp:
        urls = {"image": f"{base}/{IMAGE_FILE}", "text": f"{base}/{TEXT_FILE}"}
        files = {role: _get(url, Path(tmp), progress) for role, url in urls.items()}
        vocab, urls["vocab"] = _vocab(base, Path(tmp), progress)
        try:
            install_clip_files(
                model_dir, files["image"], files["text"], vocab,
                sources=urls, expected=PINNED, move=True, progress=progress,
            )
        except ModelIntegrityError as exc:
            raise FetchError(f"{exc}\n(downloaded from {base})") from exc
    unpinned = [name for role, name in (("image", IMAGE_FILE), ("text", TEXT_FILE))
                if not PINNED[role]]
    if unpinned:
        progress(f"{' and '.join(unpinned)}: no published sha256; the digests above are now "
                 f"recorded in {target / MANIFEST_NAME} and checked at every load")
    progress(f"Chinese-CLIP ready in {target}")
    return target


def manual_route(base: str = CLIP_BASE_URL) -> str:
    """What to tell a user whose machine cannot download the files itself."""
    return (
        f"download {IMAGE_FILE} and {TEXT_FILE} from {base}/ (and {VOCAB_FILE} from {VOCAB_URL}) "
        f"into one directory, then run the fetch again with {CLIP_URL_ENV}=file:///that/directory "
        "(README: installing CLIP by hand)"
    )


def packaged_vocab() -> Path | None:
    """cn_clip's vocab.txt when the package is installed (located without importing torch)."""
    try:
        spec = importlib.util.find_spec("cn_clip")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location) / "clip" / VOCAB_FILE
        if path.is_file():
            return path
    return None


def _sweep(target: Path) -> None:
    """Remove what a killed earlier run left: temporary dirs are hundreds of MB."""
    for stale in [*target.glob(".fetch-*"), *target.glob(".export-*")] if target.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)


def _present(target: Path) -> bool:
    try:
        manifest = Manifest.load(target / MANIFEST_NAME)
        if {"image", "text", "vocab"} - set(manifest.models):
            return False
        if any(pin and manifest.models[role].sha256 != pin for role, pin in PINNED.items()):
            return False
        manifest.verify(target)
    except (ManifestError, ModelIntegrityError, ModelNotInstalled):
        return False
    return True


def _get(url: str, directory: Path, progress: Progress) -> Path:
    dest = directory / url.rsplit("/", 1)[-1]
    digest = download_or_explain(url, dest, progress, manual_route())
    progress(f"downloaded {dest.name} ({dest.stat().st_size / 1e6:.1f} MB, sha256 {digest})")
    return dest


def _vocab(base: str, tmp: Path, progress: Progress) -> tuple[Path, str]:
    """cn_clip's own file if installed, else ``<base>/vocab.txt``, else Chinese-CLIP's repo."""
    packaged = packaged_vocab()
    if packaged is not None:
        return packaged, f"package:cn_clip:{packaged}"
    errors = []
    for url in dict.fromkeys((f"{base}/{VOCAB_FILE}", VOCAB_URL)):
        try:
            download(url, tmp / VOCAB_FILE)
        except DownloadError as exc:
            errors.append(str(exc))
            continue
        progress(f"downloaded {VOCAB_FILE} from {url}")
        return tmp / VOCAB_FILE, url
    raise FetchError(f"no {VOCAB_FILE}: {'; '.join(errors)}. {manual_route()}")


def _export(model_dir: Path, checkpoint: Path, progress: Progress) -> Path:
    """Export ``checkpoint`` with cn_clip in a child process (torch stays out of this one)."""
    if not checkpoint.is_file():
        raise FetchError(f"checkpoint {checkpoint} does not exist")
    target = family_dir(model_dir, FAMILY)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".export-", dir=target) as tmp:
        out = Path(tmp)
        command = [sys.executable, "-m", EXPORT_MODULE, str(checkpoint), str(out)]
        command += ["--arch", EXPORT_ARCH]
        root = str(Path(__file__).resolve().parents[2])  # the exporter lives in this checkout
        paths = [root, os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))
        progress(f"exporting {checkpoint} with cn_clip (takes minutes)")
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp, check=False
        )
        files = [out / IMAGE_FILE, out / TEXT_FILE, out / VOCAB_FILE]
        if proc.returncode != 0 or not all(f.is_file() for f in files):
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
            raise FetchError(
                f"exporting {checkpoint} failed (exit code {proc.returncode}):\n{tail}\n"
                f"Or export elsewhere and install the two fp32 files by hand: {manual_route()}"
            )
        source = f"export:{checkpoint.resolve()}"
        try:
            install_clip_files(
                model_dir, *files, move=True, progress=progress,
                sources={"image": source, "text": source, "vocab": "package:cn_clip"},
            )
        except ModelIntegrityError as exc:
            raise FetchError(f"the export gave unusable files: {exc}") from exc
    progress(f"Chinese-CLIP exported and ready in {target}")
    return target
