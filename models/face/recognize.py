"""ArcFace recognition: aligned 112x112 crops in, one 512-d embedding per face out.

InsightFace runs the recogniser once per face; here all faces of a photo go through in batches
(the per-face outputs are the same: rows of a batch do not mix). The ONNX model takes any
batch; a converted model takes only the batch sizes it was built for, so the faces are fed in
chunks of the largest built size and the last chunk is padded with black crops whose rows are
dropped. The embeddings are the raw network output, unnormalised: the MT-Photos API normalises
them, Immich sends them as they are.
"""

from __future__ import annotations

import numpy as np

from models.face.align import ALIGNED_SIZE
from models.face.pixels import BlobPixels, network_input
from models.manifest import ModelSpec
from models.runtime import Session

EMBEDDING_SIZE = 512
ONNX_BATCH = 32  # faces per run on onnxruntime: bounds the input buffer (1.5 MB per 32 faces)


class FaceRecognizer:
    """An ArcFace session with its manifest spec (and the static batch sizes, if any)."""

    def __init__(self, session: Session, spec: ModelSpec) -> None:
        if spec.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"face recogniser layout {spec.layout!r}; supported: NCHW, NHWC")
        self.session = session
        self.spec = spec
        self.pixels = BlobPixels(spec.preprocess)
        shapes = spec.shapes or [list(spec.shape)]
        static = sorted({int(s[0]) for s in shapes if int(s[0]) > 0})
        self.batches: list[int] = static or [ONNX_BATCH]
        self.static = bool(static)

    def prepare(self, crops: np.ndarray) -> np.ndarray:
        """The network input for N aligned RGB crops (N x 112 x 112 x 3 uint8)."""
        return network_input(crops, self.spec, self.pixels)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """(N, 512) float32 raw embeddings for N crops (N may be 0)."""
        if crops.ndim != 4 or crops.shape[1:] != (ALIGNED_SIZE, ALIGNED_SIZE, 3):
            raise ValueError(f"expected N x {ALIGNED_SIZE} x {ALIGNED_SIZE} x 3 crops, "
                             f"got {list(crops.shape)}")
        out = np.empty((len(crops), EMBEDDING_SIZE), dtype=np.float32)
        start = 0
        while start < len(crops):
            size = self._chunk(len(crops) - start)
            chunk = crops[start:start + size]
            if len(chunk) < size:  # a static model's last chunk: pad with black crops
                pad = np.zeros((size - len(chunk), *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            result = self.session.run({self.spec.input_name: self.prepare(chunk)})[0]
            result = np.asarray(result, dtype=np.float32).reshape(size, -1)
            if result.shape[1] != EMBEDDING_SIZE:
                raise ValueError(f"recogniser gave {result.shape[1]} values per face, "
                                 f"expected {EMBEDDING_SIZE}")
            taken = min(size, len(crops) - start)
            out[start:start + taken] = result[:taken]
            start += taken
        return out

    def _chunk(self, remaining: int) -> int:
        """Faces in the next run: the whole rest on ONNX (at most ONNX_BATCH); on a static
        model the smallest built size holding the rest, else the largest."""
        if not self.static:
            return min(remaining, self.batches[-1])
        fitting = [b for b in self.batches if b >= remaining]
        return fitting[0] if fitting else self.batches[-1]
