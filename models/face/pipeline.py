"""Detection, alignment and recognition of every face in one photo, on one worker.

Loaded from ``<model_dir>/face`` (or a converted copy): the manifest says which pack's files
are there, and a pack other than the one asked for (FACE_MODEL) is refused rather than served
under the wrong name, because embeddings of two packs are not comparable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.face.align import ALIGNED_SIZE, align
from models.face.detect import Detections, FaceDetector
from models.face.install import FAMILY
from models.face.packs import DEFAULT_PACK, ROLES, FacePack, get_pack, pack_of_files
from models.face.recognize import FaceRecognizer
from models.manifest import MANIFEST_NAME, Manifest, ModelNotInstalled, family_dir
from models.runtime import open_session

DEFAULT_MIN_SCORE = 0.5  # insightface's own det_thresh; the services pass theirs


@dataclass(frozen=True)
class Faces:
    """Every face found in one photo, best detection score first."""

    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2 in the photo's pixels, not clipped
    scores: np.ndarray  # (n,) float32
    landmarks: np.ndarray  # (n, 5, 2) float32
    embeddings: np.ndarray  # (n, 512) float32, raw (unnormalised) ArcFace output

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def crops(rgb: np.ndarray, detections: Detections) -> np.ndarray:
    """(n, 112, 112, 3) uint8 aligned crops, one per detected face."""
    out = np.zeros((len(detections), ALIGNED_SIZE, ALIGNED_SIZE, 3), dtype=np.uint8)
    for index, points in enumerate(detections.landmarks):
        align(rgb, points, out[index])
    return out


class FacePipeline:
    """The loaded detector and recogniser of one pack."""

    def __init__(self, detector: FaceDetector, recognizer: FaceRecognizer, pack: FacePack,
                 backend: str = "onnx") -> None:
        self.detector = detector
        self.recognizer = recognizer
        self.pack = pack
        self.backend = backend

    @classmethod
    def load(cls, model_dir: Path, backend: str = "onnx", threads: int | None = None,
             core: int | None = None, pack: str = DEFAULT_PACK) -> FacePipeline:
        """Verify and open ``<model_dir>/face``; ModelNotInstalled when absent or another
        pack; ValueError for an unknown pack name."""
        wanted = get_pack(pack)
        directory = family_dir(model_dir, FAMILY)
        try:
            manifest = Manifest.load(directory / MANIFEST_NAME)
        except ModelNotInstalled as exc:
            raise ModelNotInstalled(f"no face models in {directory}: no {MANIFEST_NAME}; "
                                    f"run `mtai models fetch face`") from exc
        missing = [role for role in ROLES if role not in manifest.models]
        if missing:
            raise ModelNotInstalled(f"{directory / MANIFEST_NAME} lists no {', '.join(missing)}")
        found = pack_of_files(manifest.models["det"].file, manifest.models["rec"].file)
        if found is None or found.name != wanted.name:
            have = found.name if found else "an unknown pack"
            raise ModelNotInstalled(
                f"{directory} holds {have}, FACE_MODEL asks for {wanted.name}; run `mtai models "
                f"fetch face` (and a face re-index in the clients: embeddings of two packs do "
                "not compare)"
            )
        dataclasses.replace(manifest, models={r: manifest.models[r] for r in ROLES}).verify(
            directory)
        det, rec = manifest.models["det"], manifest.models["rec"]
        det_session = open_session(directory / det.file, backend, threads=threads, core=core)
        rec_session = open_session(directory / rec.file, backend, threads=threads, core=core)
        return cls(FaceDetector(det_session, det), FaceRecognizer(rec_session, rec), wanted,
                   backend)

    def detect(self, rgb: np.ndarray, min_score: float = DEFAULT_MIN_SCORE) -> Detections:
        return self.detector(_checked(rgb), min_score)

    def __call__(self, rgb: np.ndarray, min_score: float = DEFAULT_MIN_SCORE) -> Faces:
        """All faces of an HxWx3 uint8 RGB photo scoring at least ``min_score``."""
        rgb = _checked(rgb)
        found = self.detector(rgb, min_score)
        embeddings = self.recognizer(crops(rgb, found))
        return Faces(found.boxes, found.scores, found.landmarks, embeddings)


def _checked(rgb: np.ndarray) -> np.ndarray:
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < 1:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {rgb.dtype}{list(rgb.shape)}")
    return rgb


def l2_normalised(embeddings: np.ndarray) -> np.ndarray:
    """Each row divided by its float32 norm, as InsightFace's ``normed_embedding`` (a zero row
    stays zero)."""
    out = np.zeros_like(embeddings, dtype=np.float32)
    for index, row in enumerate(np.asarray(embeddings, dtype=np.float32)):
        norm = np.linalg.norm(row)  # 1-D: the reference's float32 dot product, bit for bit
        if norm > 0:
            out[index] = row / norm
    return out
