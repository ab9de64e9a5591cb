"""Get a face pack: InsightFace's release archive, or files a user downloaded by hand.

``fetch`` downloads ``<base>/<pack>.zip`` (InsightFace's v0.7 release, or a mirror, or a
``file://`` folder), checks the archive's digest where one is published, takes the detector and
the recogniser out of it and installs them after checking each against its pinned sha256;
``install_from`` does the same from a folder holding the archive or the two files (``mtai
models fetch face --from DIR``). Both are idempotent: an installed pack that verifies is kept.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from models.face.install import FAMILY, install_face_files
from models.face.packs import RELEASE_URL, ROLES, FacePack, get_pack, pack_of_files
from models.fetch import FetchError, download_or_explain
from models.manifest import (
    MANIFEST_NAME,
    Manifest,
    ManifestError,
    ModelIntegrityError,
    ModelNotInstalled,
    family_dir,
)

Progress = Callable[[str], None]


def manual_route(pack: FacePack, base: str = RELEASE_URL) -> str:
    return (f"download {base}/{pack.archive} on a machine that can, copy it (or the "
            f"{pack.det.name} and {pack.rec.name} inside) into a folder here and run "
            f"`mtai models fetch face --from that/folder`")


def installed(model_dir: Path, pack: FacePack) -> bool:
    """``pack``'s two files are in ``<model_dir>/face`` and match their pinned digests."""
    target = family_dir(model_dir, FAMILY)
    try:
        manifest = Manifest.load(target / MANIFEST_NAME)
        det, rec = manifest.models["det"], manifest.models["rec"]
        if pack_of_files(det.file, rec.file) != pack:
            return False
        if (det.sha256, rec.sha256) != (pack.det.sha256, pack.rec.sha256):
            return False
        manifest.verify(target)
    except (ManifestError, ModelIntegrityError, ModelNotInstalled, KeyError):
        return False
    return True


def fetch(model_dir: Path, pack_name: str, progress: Progress = print,
          base_url: str | None = None) -> Path:
    """Download, verify and install ``pack_name``; return ``<model_dir>/face``."""
    pack = _pack(pack_name)
    target = family_dir(model_dir, FAMILY)
    if installed(model_dir, pack):
        progress(f"face models {pack.name} present and verified in {target}")
        return target
    base = (base_url or RELEASE_URL).rstrip("/")
    url = f"{base}/{pack.archive}"
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target) as tmp:
        archive = Path(tmp) / pack.archive
        progress(f"downloading {url}")
        digest = download_or_explain(url, archive, progress, manual_route(pack, base))
        if pack.archive_sha256 and digest != pack.archive_sha256:
            raise FetchError(f"{url} has sha256 {digest}, expected {pack.archive_sha256}: not "
                             f"the published {pack.archive}; nothing installed")
        _install(model_dir, pack, *_extract(archive, pack, Path(tmp)), url, progress)
    progress(f"face models {pack.name} ready in {target}")
    return target


def install_from(model_dir: Path, pack_name: str, folder: Path,
                 progress: Progress = print) -> Path:
    """Install ``pack_name`` from ``folder`` holding ``<pack>.zip`` or its two model files
    (at any depth, as unpacked); return ``<model_dir>/face``."""
    pack = _pack(pack_name)
    folder = Path(folder)
    if not folder.is_dir():
        raise FetchError(f"--from {folder}: not a folder")
    target = family_dir(model_dir, FAMILY)
    files = {role: _find(folder, pack.file(role).name) for role in ROLES}
    if all(files.values()):
        _install(model_dir, pack, files["det"], files["rec"], f"file:{folder.resolve()}",
                 progress)
        return target
    archive = _find(folder, pack.archive)
    if archive is None:
        raise FetchError(f"{folder} holds neither {pack.archive} nor {pack.det.name} and "
                         f"{pack.rec.name}; {manual_route(pack)}")
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=target) as tmp:
        _install(model_dir, pack, *_extract(archive, pack, Path(tmp)), f"file:{archive}",
                 progress)
    return target


def _pack(name: str) -> FacePack:
    try:
        return get_pack(name)
    except ValueError as exc:
        raise FetchError(str(exc)) from None


def _find(folder: Path, name: str) -> Path | None:
    found = sorted(folder.rglob(name))
    return found[0] if found else None


def _extract(archive: Path, pack: FacePack, into: Path) -> tuple[Path, Path]:
    """The detector and recogniser out of the archive (some packs nest them in a folder)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            members = {PurePosixPath(m).name: m for m in zf.namelist() if not m.endswith("/")}
            paths = []
            for file in (pack.det, pack.rec):
                member = members.get(file.name)
                if member is None:
                    raise FetchError(f"{archive.name} has no {file.name}: not the {pack.name} "
                                     "pack")
                dest = into / file.name
                with zf.open(member) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                paths.append(dest)
    except (OSError, zipfile.BadZipFile) as exc:
        raise FetchError(f"{archive} is not a readable zip archive: {exc}") from exc
    return paths[0], paths[1]


def _install(model_dir: Path, pack: FacePack, det: Path, rec: Path, origin: str,
             progress: Progress) -> None:
    sources = {"det": f"{origin}:{pack.det.name}", "rec": f"{origin}:{pack.rec.name}"}
    try:
        install_face_files(model_dir, pack, det, rec, sources=sources, progress=progress)
    except ModelIntegrityError as exc:
        raise FetchError(f"{exc}; nothing installed") from exc
    except PermissionError as exc:
        raise FetchError(f"cannot write models to {family_dir(model_dir, FAMILY)}: {exc}; run "
                         "as a user who may, or point MODEL_DIR at a writable folder") from exc
