"""The generated face models (models/tools/make_face_models.py), installed as fetch installs
buffalo_l, and insightface 2.1 run on the very same files as the reference."""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from models.face.install import install_face_files
from models.face.packs import get_pack
from models.tools.make_face_models import generate

MIN_COSINE = 0.99999
MAX_PIXELS_OFF = 0.01
THRESHOLD = 0.65  # the MT-Photos sidecars' DETECTION_THRESH


def make_models(directory: Path) -> tuple[Path, Path]:
    """The tiny detector and recogniser (buffalo_l's names and contract) in ``directory``."""
    return generate(directory, "tiny")


def install_tiny(model_dir: Path, source: Path) -> Path:
    det, rec = make_models(source)
    return install_face_files(model_dir, get_pack("buffalo_l"), det, rec, pinned=False,
                              progress=lambda _: None)


class Reference:
    """insightface 2.1's SCRFD and ArcFaceONNX on the same files, as the sidecars use them:
    one 640x640 detector size, BGR input (they decode with OpenCV)."""

    def __init__(self, det: Path, rec: Path, threads: int = 1) -> None:
        import onnxruntime as ort
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX
        from insightface.model_zoo.scrfd import SCRFD

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads

        def session(path: Path) -> ort.InferenceSession:
            return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        self.detector = SCRFD(str(det), session=session(det))
        self.detector.prepare(-1, input_size=(640, 640), det_thresh=THRESHOLD)
        self.recognizer = ArcFaceONNX(str(rec), session=session(rec))

    def __call__(self, rgb: np.ndarray, threshold: float = THRESHOLD):
        """(boxes with scores, landmarks, raw embeddings, normed embeddings) like FaceAnalysis."""
        import warnings

        from insightface.app.common import Face

        bgr = np.ascontiguousarray(rgb[..., ::-1])
        dets, points = self.detector.detect(bgr, det_thresh=threshold)
        raw, normed = [], []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # skimage's estimate() rename
            for index in range(dets.shape[0]):
                face = Face(bbox=dets[index, :4], kps=points[index], det_score=dets[index, 4])
                raw.append(self.recognizer.get(bgr, face))
                normed.append(face.normed_embedding)
        return dets, points, np.array(raw).reshape(-1, 512), np.array(normed).reshape(-1, 512)


@functools.cache
def drawn_face(seed: int, size: int = 96) -> np.ndarray:
    """A face-shaped oval of coarse colour noise (8x8 cells) on a light background.

    The random-weight detector answers to texture of about its strides' scale, not to flat
    colour or to a cartoon: each seed fires it a different way, so a crowd of them gives a
    few hundred candidates, most tiles a face or two, some none.
    """
    tile = np.full((size, size, 3), 235, np.uint8)
    mask = np.zeros((size, size), np.uint8)
    c = size // 2
    cv2.ellipse(mask, (c, c), (int(size * 0.34), int(size * 0.44)), 0, 0, 360, 255, -1)
    cells = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    grain = cv2.resize(cells, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.where(mask[..., None] > 0, grain, tile).astype(np.uint8)


def collage(rows: int, cols: int, size: int = 96) -> np.ndarray:
    """``rows * cols`` different faces in a grid (a crowd)."""
    return np.vstack([np.hstack([drawn_face(r * cols + c, size) for c in range(cols)])
                      for r in range(rows)])


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
