"""Face alignment: the similarity transform taking the 5 landmarks onto ArcFace's template.

The transform is Umeyama's least-squares similarity (rotation, uniform scale, translation),
estimated as scikit-image's ``SimilarityTransform.estimate`` does for insightface 2.1's
``utils/face_align.py`` (same float32 inputs, same float64 result, so the matrix matches the
reference's to the last bits), then OpenCV warps the photo into a 112x112 crop, bilinear,
black outside the photo. A face cut by the border therefore gets black where the photo ends,
as in InsightFace.
"""

from __future__ import annotations

import cv2
import numpy as np

ALIGNED_SIZE = 112
# Where ArcFace expects the eyes, the nose tip and the mouth corners in a 112x112 crop.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], dtype=np.float32,
)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 3x3 similarity matrix mapping ``src`` points onto ``dst`` (least squares); all NaN
    when the points do not determine one (all landmarks on one spot)."""
    count, dim = src.shape
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_centred, dst_centred = src - src_mean, dst - dst_mean
    covariance = dst_centred.T @ src_centred / count
    signs = np.ones((dim,), dtype=np.float64)
    if np.linalg.det(covariance) < 0:
        signs[dim - 1] = -1
    matrix = np.eye(dim + 1, dtype=np.float64)
    u, s, vt = np.linalg.svd(covariance)
    tolerance = s.max() * max(covariance.shape) * np.finfo(float).eps
    rank = np.count_nonzero(s > tolerance)
    if rank == 0:
        return np.nan * matrix
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        flipped = signs.copy()
        flipped[dim - 1] = -1
        matrix[:dim, :dim] = u @ np.diag(flipped) @ vt
    elif rank == dim - 1:
        matrix[:dim, :dim] = u @ vt
    else:
        matrix[:dim, :dim] = u @ np.diag(signs) @ vt
    scale = 1.0 / src_centred.var(axis=0).sum() * (s @ signs)
    matrix[:dim, dim] = dst_mean - scale * (matrix[:dim, :dim] @ src_mean.T)
    matrix[:dim, :dim] *= scale
    return matrix


def alignment_matrix(landmarks: np.ndarray) -> np.ndarray:
    """The 2x3 warp of one face's (5, 2) landmarks onto the template."""
    if landmarks.shape != (5, 2):
        raise ValueError(f"expected 5 landmarks (5, 2), got {landmarks.shape}")
    return umeyama(landmarks, ARCFACE_TEMPLATE)[:2, :]


def align(rgb: np.ndarray, landmarks: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The 112x112x3 uint8 crop of one face; black where the landmarks fix no transform."""
    matrix = alignment_matrix(landmarks)
    if out is None:
        out = np.zeros((ALIGNED_SIZE, ALIGNED_SIZE, 3), dtype=np.uint8)
    if not np.isfinite(matrix).all():
        out[...] = 0
        return out
    cv2.warpAffine(rgb, matrix, (ALIGNED_SIZE, ALIGNED_SIZE), dst=out, borderValue=0.0)
    return out
