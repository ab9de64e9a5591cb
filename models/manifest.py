"""Model directory and per-family manifests.

Every model file has a spec next to it (``<model_dir>/<family>/manifest.json``): where it came from,
its sha256, what its input looks like and how pixels must be prepared for it. The runtime and the
RKNN conversion (models/convert) both read this one spec, so preprocessing cannot drift between
them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1


class ManifestError(ValueError):
    """A manifest is missing or malformed."""


class ModelNotInstalled(FileNotFoundError):
    """The manifest or a model file is absent: the models were never fetched (or were removed)."""


class ModelIntegrityError(RuntimeError):
    """A model file does not match the sha256 its manifest pins."""


@dataclass(frozen=True)
class Preprocess:
    """How uint8 pixels become the network input: ``(x * scale - mean) / std`` per channel.

    ``channel_order`` is the order the network was trained on; callers hand over RGB and the
    model code swaps when this says BGR (PaddleOCR models were trained on OpenCV BGR images).
    """

    channel_order: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class ModelSpec:
    """One model file and the contract of its input tensor."""

    file: str
    source: str
    sha256: str
    input_name: str
    layout: str
    dtype: str
    shape: tuple[int, ...]  # -1 marks a dynamic dimension
    mean_std_folded: bool  # True once a converter bakes Preprocess into the graph (RKNN)
    preprocess: Preprocess
    shapes: list[list[int]] | None = None  # static shape buckets for backends that need them


@dataclass(frozen=True)
class Manifest:
    """The models of one family (e.g. ``ocr``), keyed by role (``det``, ``cls``, ``rec``)."""

    family: str
    models: dict[str, ModelSpec]
    format: int = FORMAT_VERSION

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest file; raise ManifestError with the path when it is unusable."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelNotInstalled(f"{path}: no manifest; fetch the models first") from exc
        except ValueError as exc:
            raise ManifestError(f"{path}: not JSON ({exc})") from exc
        if not isinstance(raw, dict) or raw.get("format") != FORMAT_VERSION:
            found = raw.get("format") if isinstance(raw, dict) else None
            raise ManifestError(f"{path}: unsupported manifest format {found!r}")
        try:
            models = {role: _spec_from_json(spec) for role, spec in raw["models"].items()}
            return cls(family=raw["family"], models=models)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ManifestError(f"{path}: malformed manifest ({exc!r})") from exc

    def save(self, path: Path) -> None:
        """Write atomically so a reader never sees half a manifest."""
        text = json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"
        write_atomic(Path(path), text.encode("utf-8"))

    def verify(self, directory: Path) -> None:
        """Check each file in ``directory`` against its pinned sha256; raise on the first bad."""
        for role, spec in self.models.items():
            path = Path(directory) / spec.file
            if not path.is_file():
                raise ModelNotInstalled(
                    f"{self.family}/{role}: {path} is missing; fetch the models"
                )
            actual = sha256_file(path)
            if actual != spec.sha256:
                raise ModelIntegrityError(
                    f"{self.family}/{role}: {path} has sha256 {actual}, manifest pins "
                    f"{spec.sha256}; the file is corrupt or was replaced, delete it and fetch again"
                )


def _spec_from_json(raw: dict[str, Any]) -> ModelSpec:
    prep = raw["preprocess"]
    return ModelSpec(
        file=raw["file"],
        source=raw["source"],
        sha256=raw["sha256"],
        input_name=raw["input_name"],
        layout=raw["layout"],
        dtype=raw["dtype"],
        shape=tuple(int(d) for d in raw["shape"]),
        mean_std_folded=bool(raw["mean_std_folded"]),
        preprocess=Preprocess(
            channel_order=prep["channel_order"],
            scale=float(prep["scale"]),
            mean=tuple(float(v) for v in prep["mean"]),
            std=tuple(float(v) for v in prep["std"]),
        ),
        shapes=_shapes(raw.get("shapes")),
    )


def _shapes(raw: Any) -> list[list[int]] | None:
    """Static shape buckets as lists of ints; absent or null (manifests before them): None."""
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(s, list) for s in raw):
        raise ValueError(f"shapes must be a list of shapes, got {raw!r}")
    return [[int(d) for d in shape] for shape in raw]


def family_dir(model_dir: Path, family: str) -> Path:
    """``<model_dir>/<family>``: one directory per model family, manifest inside."""
    return Path(model_dir) / family


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A file that appears at `path` only once fully written and synced (temp file in the same
    directory + rename): a crash or an error leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the service user must be able to read models
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def place_file(src: Path, dest: Path, move: bool = False) -> None:
    """Put ``src`` at ``dest`` whole: a rename when moving within a filesystem, else a copy to
    a temporary name and a rename (the source removed after, when moving)."""
    if src.resolve() == dest.resolve():
        return
    if move:
        try:
            os.replace(src, dest)
            os.chmod(dest, 0o644)
            return
        except OSError:
            pass  # another filesystem: copy below
    with atomic_writer(dest) as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
    if move:
        src.unlink()


def local_sources(files: Mapping[str, Path], sources: Mapping[str, str] | None) -> dict[str, str]:
    """Where each role's file came from: what the caller says, else ``file:`` its local path."""
    return {role: (sources or {}).get(role, f"file:{Path(path).resolve()}")
            for role, path in files.items()}


def install_files(target: Path, manifest: Manifest, files: Mapping[str, Path], *,
                  move: bool = False, progress: Callable[[str], None] = print,
                  superseded: str = "") -> None:
    """Place each role's file of ``files`` in ``target`` under the name ``manifest`` gives it,
    verify them all and write the manifest last, so a directory with a manifest is always
    complete. The old manifest goes first; once it is gone, so do the files matching the glob
    ``superseded`` that the new manifest does not list (e.g. another face pack's)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    listed = {spec.file for spec in manifest.models.values()}
    for stale in target.glob(superseded) if superseded else ():
        if stale.name not in listed:
            stale.unlink()
    for role, path in files.items():
        spec = manifest.models[role]
        dest = target / spec.file
        place_file(path, dest, move)
        progress(f"installed {dest} ({dest.stat().st_size:,} bytes, sha256 {spec.sha256})")
    manifest.verify(target)
    manifest.save(target / MANIFEST_NAME)


def write_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)
