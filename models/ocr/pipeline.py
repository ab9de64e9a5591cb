"""PP-OCRv4 end to end: RGB image in, text lines with boxes out, matching RapidOCR 1.4.4 defaults.

Channel order: the reference (shared/testdata/ocr_reference_rapidocr.json) was made by handing
RapidOCR PIL images, which it converts to BGR. Rerun on the same decoded pixels, RapidOCR given BGR
reproduces all 110 reference lines (text, boxes, 109 scores to the 4th decimal, one off by 1e-4)
and nothing more; given the RGB arrays as-is, 87 lines match text and box, 26 keep their score and
26 lines appear that the reference lacks. So the PaddleOCR models get BGR here too: the manifest
says so and ``to_model_order`` swaps once at the entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.manifest import MANIFEST_NAME, Manifest, family_dir
from models.ocr.classify import AngleClassifier
from models.ocr.detect import TextDetector
from models.ocr.geometry import crop_quad, fit_sides, letterbox, reading_order, to_input_pixels
from models.ocr.recognize import TextRecognizer, load_charset
from models.preprocess import to_model_order
from models.runtime import open_session

MAX_SIDE = 2000  # long side cap before detection
MIN_SIDE = 30  # short side floor before detection


@dataclass(frozen=True)
class OcrLine:
    """One line of text: 4 corners clockwise from top-left in input pixels, text, its score.

    ``box_score`` is the detector's confidence (Immich reports it as ``boxScore``).
    """

    box: tuple[tuple[float, float], ...]
    text: str
    score: float
    box_score: float = 1.0


class OcrPipeline:
    """Detector, angle classifier and recogniser over one backend; one image at a time."""

    def __init__(
        self,
        detector: TextDetector,
        classifier: AngleClassifier,
        recognizer: TextRecognizer,
        text_score: float = 0.5,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.recognizer = recognizer
        self.text_score = text_score
        self.recipe = detector.spec.preprocess

    @classmethod
    def load(
        cls,
        model_dir: Path,
        threads: int | None = None,
        backend: str = "onnx",
        *,
        core: int | None = None,
        text_score: float = 0.5,
    ) -> OcrPipeline:
        """Load ``<model_dir>/ocr`` after checking every file against its manifest."""
        directory = family_dir(model_dir, "ocr")
        manifest = Manifest.load(directory / MANIFEST_NAME)
        manifest.verify(directory)
        specs = manifest.models
        if len({spec.preprocess.channel_order for spec in specs.values()}) != 1:
            raise ValueError(f"{directory}: OCR models disagree on channel order")
        sessions = {
            role: open_session(directory / spec.file, backend, threads=threads, core=core)
            for role, spec in specs.items()
        }
        charset = load_charset(sessions["rec"].metadata())
        return cls(
            TextDetector(sessions["det"], specs["det"]),
            AngleClassifier(sessions["cls"], specs["cls"]),
            TextRecognizer(sessions["rec"], specs["rec"], charset),
            text_score=text_score,
        )

    def __call__(
        self,
        image: np.ndarray,
        *,
        text_score: float | None = None,
        box_thresh: float | None = None,
    ) -> list[OcrLine]:
        """Lines in reading order from an HxWx3 uint8 RGB image, less those under ``text_score``."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise ValueError(
                f"expected a non-empty HxWx3 uint8 RGB image, got {image.shape} {image.dtype}"
            )
        min_score = self.text_score if text_score is None else text_score
        height, width = image.shape[:2]
        canvas, placement = fit_sides(image, MAX_SIDE, MIN_SIDE)  # resize first: swap fewer pixels
        canvas, placement = letterbox(to_model_order(canvas, self.recipe), placement)
        quads, box_scores = self.detector(canvas, box_thresh)
        if len(quads) == 0:
            return []
        order = reading_order(quads)
        quads, box_scores = quads[order], box_scores[order]
        crops = self.classifier([crop_quad(canvas, quad) for quad in quads])
        texts = self.recognizer(crops)
        boxes = to_input_pixels(quads, placement, height, width)
        return [
            OcrLine(
                box=tuple((float(x), float(y)) for x, y in box),
                text=text,
                score=score,
                box_score=float(box_score),
            )
            for box, (text, score), box_score in zip(boxes, texts, box_scores)
            if score >= min_score
        ]
