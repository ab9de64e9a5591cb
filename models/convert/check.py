"""The converter's self-check: the converted models, run by the simulator through the real
pipelines, against onnxruntime on the same inputs. A model that fails is not written.

The pipelines are loaded from the converted directory exactly as a worker on the board loads
them (manifest, layout, dtype, static shapes, folded mean/std), only on ``rknn-sim``. A model
fed the wrong layout, or normalised twice, gives other vectors and other text, and fails here.

Thresholds: OCR lines agree (same text, box within a few pixels) for at least 93% of the lines
of both sides; every CLIP vector has cosine at least 0.999 with the ONNX one. The OCR floor sits
under what fp16 rounding alone costs: PP-OCRv4 flips borderline glyphs under any harmless change
(the shipped profile's agreement and RapidOCR's own under a different recogniser batch are in
BENCHMARKS.md): the check is there to catch a conversion that computes something else (a wrong
layout, normalisation applied twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.ocr.compare import match_lines

OCR_MIN_AGREEMENT = 0.93
CLIP_MIN_COSINE = 0.999
BOX_TOLERANCE = 3.0  # pixels, or 0.5% of the image's long side when that is more

Progress = Callable[[str], None]
Sample = tuple[str, np.ndarray]


@dataclass(frozen=True)
class CheckResult:
    """One measured agreement and its verdict."""

    role: str  # the roles it covers: "det+cls+rec", "image", "text"
    metric: str
    value: float
    threshold: float
    detail: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold

    def summary(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        digits = 6 if self.metric.endswith("cosine") else 4
        return (f"{self.role}: {self.metric} {self.value:.{digits}f} (needs >= {self.threshold}) "
                f"{verdict}; {self.detail}")

    def as_json(self) -> dict[str, object]:
        return {"metric": self.metric, "value": round(self.value, 6), "threshold": self.threshold,
                "passed": self.passed, "detail": self.detail}


def check_ocr(reference_pipeline: Callable, candidate_pipeline: Callable,
              samples: Sequence[Sample], progress: Progress) -> CheckResult:
    """Line agreement ``2 * matched / (reference lines + candidate lines)`` over all samples."""
    started = time.monotonic()
    matched = ref_total = cand_total = 0
    worst: list[str] = []
    for index, (name, rgb) in enumerate(samples, 1):
        ref, cand = reference_pipeline(rgb), candidate_pipeline(rgb)
        tolerance = max(BOX_TOLERANCE, 0.005 * max(rgb.shape[:2]))
        hits = match_lines(ref, cand, tolerance).matched
        matched += hits
        ref_total += len(ref)
        cand_total += len(cand)
        if hits < max(len(ref), len(cand)):
            worst.append(f"{name}: {hits} of {len(ref)}/{len(cand)}")
        progress(f"  [{index}/{len(samples)}] {name}: {hits} of {len(ref)} lines agree"
                 f"{'' if len(cand) == len(ref) else f' ({len(cand)} read)'}")
    if ref_total + cand_total == 0:
        raise ValueError("the OCR samples hold no text for either side: the check would prove "
                         "nothing; give images with text")
    value = 2 * matched / (ref_total + cand_total)
    detail = (f"{matched} lines agree of {ref_total} (onnxruntime) and {cand_total} (simulator) "
              f"on {len(samples)} images")
    if worst:
        detail += "; differing: " + ", ".join(worst[:8])
    return CheckResult("det+cls+rec", "line agreement", value, OCR_MIN_AGREEMENT, detail,
                       time.monotonic() - started)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    denominator = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(a @ b / denominator) if denominator > 0 else 0.0


def check_vectors(
    role: str, reference: Callable, candidate: Callable, samples: Sequence[tuple[str, object]],
    progress: Progress,
) -> CheckResult:
    """Smallest cosine between the two sides' vectors over ``samples``."""
    started = time.monotonic()
    scores = []
    for name, item in samples:
        scores.append((cosine(reference(item), candidate(item)), name))
    value, name = min(scores)
    progress(f"  {role}: cosine min {value:.6f}, mean {np.mean([s for s, _ in scores]):.6f} "
             f"over {len(scores)} samples")
    detail = f"{len(scores)} samples, lowest on {name}"
    return CheckResult(role, "min cosine", value, CLIP_MIN_COSINE, detail,
                       time.monotonic() - started)


def check_faces(reference: object, candidate: object, samples: Sequence[Sample],
                progress: Progress, threshold: float = 0.5) -> list[CheckResult]:
    """Two checks on the face pipelines: the detector's nine raw heads (each centred on its
    mean) on each letterboxed sample, compared as one vector, faces or none; the recogniser on
    the reference's aligned crops of every face it found plus a centre crop of each sample.
    The faces each side finds are reported too (fp16 may move a score across the threshold)."""
    from models.face.detect import letterbox
    from models.face.pipeline import crops

    def heads(pipeline: object) -> Callable[[np.ndarray], np.ndarray]:
        detector = pipeline.detector

        def run(rgb: np.ndarray) -> np.ndarray:
            feed = detector.prepare(letterbox(rgb, detector.size)[0])
            outputs = detector.session.run({detector.spec.input_name: feed})
            # centred per head: the heads' constant part (box and landmark biases) would
            # otherwise agree whatever the input, even a blank one
            heads = [np.asarray(o, np.float32).ravel() for o in outputs]
            return np.concatenate([h - h.mean() for h in heads])

        return run

    results = [check_vectors("det", heads(reference), heads(candidate), samples, progress)]
    faces, found = [], [0, 0]
    for name, rgb in samples:
        detections = reference.detect(rgb, threshold)
        found[0] += len(detections)
        found[1] += len(candidate.detect(rgb, threshold))
        faces += [(f"{name}#{i}", crop) for i, crop in enumerate(crops(rgb, detections))]
        side = min(rgb.shape[:2])
        top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        centre = cv2.resize(rgb[top:top + side, left:left + side], (112, 112))
        faces.append((f"{name}#centre", centre))
    progress(f"  faces at score >= {threshold}: {found[0]} (onnxruntime), {found[1]} "
             "(simulator)")
    results.append(check_vectors("rec", lambda c: reference.recognizer(c[None])[0],
                                 lambda c: candidate.recognizer(c[None])[0], faces, progress))
    return results


def load_face_pair(model_dir: Path, candidate_root: Path) -> tuple[object, object]:
    from models.face.packs import pack_of_files
    from models.face.pipeline import FacePipeline
    from models.manifest import MANIFEST_NAME, Manifest

    manifest = Manifest.load(Path(model_dir) / "face" / MANIFEST_NAME)
    pack = pack_of_files(manifest.models["det"].file, manifest.models["rec"].file)
    name = pack.name if pack else "buffalo_l"
    return (FacePipeline.load(model_dir, backend="onnx", pack=name),
            FacePipeline.load(candidate_root, backend="rknn-sim", pack=name))


def load_ocr_pair(model_dir: Path, candidate_root: Path,
                  family: str = "ocr") -> tuple[Callable, Callable]:
    """The ONNX pipeline and the simulated converted one, both on the static shape profile,
    so the comparison measures the conversion and nothing else."""
    from models.ocr.pipeline import OcrPipeline

    reference = OcrPipeline.load(model_dir, backend="onnx", static_shapes=True, family=family)
    candidate = OcrPipeline.load(candidate_root, backend="rknn-sim", static_shapes=True,
                                 family=family)
    return reference, candidate


def load_clip_pair(model_dir: Path, candidate_root: Path) -> tuple[object, object]:
    from models.clip import ClipModels

    return (ClipModels.load(model_dir, backend="onnx"),
            ClipModels.load(candidate_root, backend="rknn-sim"))
