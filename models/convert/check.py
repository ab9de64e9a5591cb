"""The converter's self-check: the converted models, run by the simulator through the real
pipelines, against onnxruntime on the same inputs. A model that fails is not written.

The pipelines are loaded from the converted directory exactly as a worker on the board loads
them (manifest, layout, dtype, static shapes, folded mean/std), only on ``rknn-sim``. A model
fed the wrong layout, or normalised twice, gives other vectors and other text, and fails here.

Thresholds: OCR lines agree (same text, box within a few pixels) for at least 93% of the lines
of both sides; every CLIP vector has cosine at least 0.999 with the ONNX one. The OCR floor sits
under what fp16 rounding alone costs: PP-OCRv4 flips borderline glyphs under any harmless change
(the shipped profile converted for rk3588 agrees on 96.8% of the shared images' lines; RapidOCR
with a recogniser batch of 8 instead of 6 keeps 95.7% of its own): the check is there to
catch a conversion that computes something else (a wrong layout, normalisation applied twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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


def match_lines(reference: Sequence, candidate: Sequence, tolerance: float) -> int:
    """Lines of ``candidate`` paired one to one with ``reference`` lines of equal text whose
    corners lie within ``tolerance`` pixels; returns the number of pairs."""
    used: set[int] = set()
    for ref in reference:
        best = None
        for k, line in enumerate(candidate):
            if k in used or line.text != ref.text:
                continue
            distance = float(np.abs(np.asarray(line.box) - np.asarray(ref.box)).max())
            if distance <= tolerance and (best is None or distance < best[0]):
                best = (distance, k)
        if best is not None:
            used.add(best[1])
    return len(used)


def check_ocr(reference_pipeline: Callable, candidate_pipeline: Callable,
              samples: Sequence[Sample], progress: Progress) -> CheckResult:
    """Line agreement ``2 * matched / (reference lines + candidate lines)`` over all samples."""
    started = time.monotonic()
    matched = ref_total = cand_total = 0
    worst: list[str] = []
    for index, (name, rgb) in enumerate(samples, 1):
        ref, cand = reference_pipeline(rgb), candidate_pipeline(rgb)
        tolerance = max(BOX_TOLERANCE, 0.005 * max(rgb.shape[:2]))
        hits = match_lines(ref, cand, tolerance)
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
