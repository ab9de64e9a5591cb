"""SCRFD face detection: letterbox, one network run, anchor decode, NMS; InsightFace's recipe.

Every step follows insightface 2.1's ``model_zoo/scrfd.py`` on one 640x640 canvas (its
``det_size=(640, 640)``, what the MT-Photos sidecars and Immich use), down to the order of the
float32 operations, so boxes and landmarks come out as the reference's: the photo is resized
keeping its aspect into the top-left corner of a zero canvas, each stride's cells carry two
anchors, a candidate is kept when its score is at least the threshold, boxes and landmarks are
scaled back to the photo *before* the NMS (IoU 0.4, InsightFace's ``+1`` pixel areas), and
nothing caps the number of faces.

The one departure: an image so flat that its short side would scale to 0 px (InsightFace's
resize fails on it) is given a 1 px strip instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from models.face.pixels import BlobPixels, network_input
from models.manifest import ModelSpec
from models.runtime import Session

STRIDES = (8, 16, 32)
ANCHORS = 2
NMS_THRESHOLD = 0.4
DET_SIZE = 640
OUTPUTS = 3 * len(STRIDES)  # scores, boxes, landmarks per stride


@dataclass(frozen=True)
class Detections:
    """Faces of one photo in its own pixels, best score first."""

    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2; not clipped to the photo
    scores: np.ndarray  # (n,) float32
    landmarks: np.ndarray  # (n, 5, 2) float32: eyes, nose, mouth corners

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


def letterbox(rgb: np.ndarray, size: int = DET_SIZE) -> tuple[np.ndarray, float]:
    """The photo resized (bilinear) into the top-left of a black ``size`` square; its scale."""
    height, width = rgb.shape[:2]
    ratio = float(height) / width
    if ratio > 1.0:
        new_height = size
        new_width = int(new_height / ratio)
    else:
        new_width = size
        new_height = int(new_width * ratio)
    new_width, new_height = max(1, new_width), max(1, new_height)
    scale = float(new_height) / height
    canvas = np.zeros((size, size, 3), dtype=np.uint8)
    canvas[:new_height, :new_width] = cv2.resize(rgb, (new_width, new_height))
    return canvas, scale


def anchor_centres(size: int, stride: int) -> np.ndarray:
    """(cells * 2, 2) float32 x, y of each anchor: rows of cells, two anchors per cell."""
    cells = size // stride
    grid = np.stack(np.mgrid[:cells, :cells][::-1], axis=-1).astype(np.float32)
    centres = (grid * stride).reshape(-1, 2)
    return np.repeat(centres, ANCHORS, axis=0)


def nms(dets: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    """Indices kept by greedy NMS over ``dets`` rows (x1, y1, x2, y2, score), InsightFace's
    arithmetic: areas with ``+1``, a box dropped when its IoU with a kept one exceeds it."""
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size > 0:
        first, rest = order[0], order[1:]
        keep.append(int(first))
        left, top = np.maximum(x1[first], x1[rest]), np.maximum(y1[first], y1[rest])
        right, bottom = np.minimum(x2[first], x2[rest]), np.minimum(y2[first], y2[rest])
        width = np.maximum(0.0, right - left + 1)
        height = np.maximum(0.0, bottom - top + 1)
        inter = width * height
        overlap = inter / (areas[first] + areas[rest] - inter)
        order = rest[np.where(overlap <= threshold)[0]]
    return keep


class FaceDetector:
    """An SCRFD session and the manifest spec of its input (ONNX float NCHW, or an RKNN model
    with the normalisation folded in, fed uint8 NHWC)."""

    def __init__(self, session: Session, spec: ModelSpec, nms_threshold: float = NMS_THRESHOLD):
        if spec.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"face detector layout {spec.layout!r}; supported: NCHW, NHWC")
        self.session = session
        self.spec = spec
        self.nms_threshold = nms_threshold
        self.size = DET_SIZE
        self.pixels = BlobPixels(spec.preprocess)
        self._centres = {stride: anchor_centres(self.size, stride) for stride in STRIDES}

    def prepare(self, canvas: np.ndarray) -> np.ndarray:
        """The network input (a batch of one) for a letterboxed ``size`` x ``size`` RGB canvas."""
        return network_input(canvas[None], self.spec, self.pixels)

    def __call__(self, rgb: np.ndarray, threshold: float) -> Detections:
        canvas, scale = letterbox(rgb, self.size)
        outputs = self.session.run({self.spec.input_name: self.prepare(canvas)})
        return self.decode(outputs, scale, threshold)

    def decode(self, outputs: list[np.ndarray], scale: float, threshold: float) -> Detections:
        """Candidates at or above ``threshold`` from the 9 heads, mapped back by ``scale``."""
        if len(outputs) != OUTPUTS:
            raise ValueError(f"SCRFD gives {OUTPUTS} outputs, this model gave {len(outputs)}")
        scores, boxes, points = [], [], []
        for level, stride in enumerate(STRIDES):
            score = np.asarray(outputs[level]).reshape(-1)
            centres = self._centres[stride]
            if score.shape[0] != centres.shape[0]:
                raise ValueError(f"stride {stride}: {score.shape[0]} scores for "
                                 f"{centres.shape[0]} anchors")
            hits = np.where(score >= threshold)[0]
            distance = np.asarray(outputs[level + 3]).reshape(-1, 4)[hits] * stride
            offsets = np.asarray(outputs[level + 6]).reshape(-1, 10)[hits] * stride
            anchor = centres[hits]
            boxes.append(np.stack([anchor[:, 0] - distance[:, 0], anchor[:, 1] - distance[:, 1],
                                   anchor[:, 0] + distance[:, 2], anchor[:, 1] + distance[:, 3]],
                                  axis=-1))
            points.append(np.stack([anchor[:, i % 2] + offsets[:, i] for i in range(10)], axis=-1))
            scores.append(score[hits])
        all_scores = np.concatenate(scores).astype(np.float32, copy=False)
        if all_scores.size == 0:
            return Detections(np.empty((0, 4), np.float32), np.empty(0, np.float32),
                              np.empty((0, 5, 2), np.float32))
        order = np.argsort(-all_scores, kind="stable")
        all_boxes = np.vstack(boxes) / scale
        all_points = (np.vstack(points) / scale).reshape(-1, 5, 2)
        dets = np.hstack((all_boxes, all_scores[:, None])).astype(np.float32, copy=False)[order]
        all_points = all_points[order]
        keep = nms(dets, self.nms_threshold)
        kept = dets[keep]
        return Detections(np.ascontiguousarray(kept[:, :4]), np.ascontiguousarray(kept[:, 4]),
                          np.ascontiguousarray(all_points[keep], dtype=np.float32))
