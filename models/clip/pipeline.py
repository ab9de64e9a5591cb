"""Load the Chinese-CLIP pair from ``<model_dir>/clip``: image tower now, text tower when asked.

MT-Photos' ``AUTO_LOAD_TXT_MODAL=off`` (its default) means the text model loads on the first
text query: it is the larger file and a library that is only being indexed never needs it.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np

from models.clip.image import ClipImageEncoder
from models.clip.install import FAMILY
from models.clip.text import ClipTextEncoder
from models.clip.tokenizer import ClipTokenizer
from models.manifest import MANIFEST_NAME, Manifest, ManifestError, ModelNotInstalled, family_dir
from models.runtime import open_session

ROLES = ("image", "text", "vocab")


def l2_normalise(vector: np.ndarray) -> np.ndarray:
    """Unit-length copy (float32) for the Immich API; an all-zero vector stays zero."""
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v.astype(np.float64)))
    return v / np.float32(norm) if norm > 0 else v.copy()


class ClipModels:
    """The image encoder, and the text encoder created on first use (thread-safe)."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        image: ClipImageEncoder,
        backend: str,
        threads: int | None,
        core: int | None,
    ) -> None:
        self.directory = directory
        self.manifest = manifest
        self.image = image
        self._open = (backend, threads, core)
        self._text: ClipTextEncoder | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_dir: Path,
        backend: str = "onnx",
        threads: int | None = None,
        core: int | None = None,
        load_text: bool = False,
        *,
        bgr_compat: bool = False,
    ) -> ClipModels:
        """Verify and open ``<model_dir>/clip``; FileNotFoundError when CLIP is not installed."""
        directory = family_dir(model_dir, FAMILY)
        try:
            manifest = Manifest.load(directory / MANIFEST_NAME)
        except ModelNotInstalled as exc:
            raise ModelNotInstalled(
                f"Chinese-CLIP is not installed in {directory}: no {MANIFEST_NAME}; fetch it first"
            ) from exc
        missing = [role for role in ROLES if role not in manifest.models]
        if missing:
            raise ManifestError(f"{directory / MANIFEST_NAME}: no entry for {', '.join(missing)}")
        _verify(manifest, directory, "image", "vocab")
        spec = manifest.models["image"]
        session = open_session(directory / spec.file, backend, threads=threads, core=core)
        models = cls(
            directory, manifest, ClipImageEncoder(session, spec, bgr_compat), backend, threads, core
        )
        if load_text:
            models.text()
        return models

    @property
    def text_loaded(self) -> bool:
        return self._text is not None

    def text(self) -> ClipTextEncoder:
        """The text encoder, verified and loaded on the first call."""
        if self._text is None:
            with self._lock:
                if self._text is None:
                    self._text = self._load_text()
        return self._text

    def _load_text(self) -> ClipTextEncoder:
        _verify(self.manifest, self.directory, "text")
        spec = self.manifest.models["text"]
        vocab = self.directory / self.manifest.models["vocab"].file
        tokenizer = ClipTokenizer.from_vocab_file(vocab, context_length=spec.shape[-1])
        backend, threads, core = self._open
        session = open_session(self.directory / spec.file, backend, threads=threads, core=core)
        return ClipTextEncoder(session, tokenizer, spec)


def _verify(manifest: Manifest, directory: Path, *roles: str) -> None:
    """sha256-check only ``roles``: the text model's hash is paid when it is first needed."""
    subset = {role: manifest.models[role] for role in roles}
    dataclasses.replace(manifest, models=subset).verify(directory)
