"""PP-OCR end to end: RGB image in, text lines with boxes out, matching the RapidOCR release each
generation follows (models/ocr/recipe.py: 1.4.4 for PP-OCRv4, 3.10.0 for the newer ones).

Channel order: the reference (shared/testdata/ocr_reference_rapidocr.json) was made by handing
RapidOCR PIL images, which it converts to BGR. Rerun on the same decoded pixels, RapidOCR given BGR
reproduces all 110 reference lines (text, boxes, 109 scores to the 4th decimal, one off by 1e-4)
and nothing more; given the RGB arrays as-is, 87 lines match text and box, 26 keep their score and
26 lines appear that the reference lacks. So the PaddleOCR models get BGR here too: the manifest
says so, and the image stays RGB throughout (resizing and warping treat channels alike) until
each model's pixel table writes the planes in the model's order, so no copy is spent swapping.

Two modes: dynamic shapes (onnxruntime; RapidOCR's sizes exactly) and static shapes (the NPU:
only the shapes of a ``ShapeProfile``, read from the manifest; see models/ocr/profile.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.manifest import MANIFEST_NAME, Manifest, ModelSpec, family_dir
from models.ocr.classify import AngleClassifier
from models.ocr.detect import TextDetector
from models.ocr.generations import CHARSET_ROLE, generation_of_family
from models.ocr.geometry import (
    crop_quad,
    fit_sides,
    letterbox,
    line_order,
    reading_order,
    to_input_pixels,
)
from models.ocr.profile import DEFAULT_PROFILE, ProfileError, ShapeProfile
from models.ocr.recipe import RAPIDOCR_144, Recipe
from models.ocr.recognize import TextRecognizer, load_charset
from models.runtime import NPU_BACKENDS, Session, open_session, resolve_backend
from models.runtime.parts import MAX_OPEN_PARTS, SIMULATOR_OPEN_PARTS, open_roles

MAX_SIDE = 2000  # long side cap before detection
MIN_SIDE = 30  # short side floor before detection
MAX_LINES = 500  # lines recognised per image at most (the detector keeps <= 1000 candidates)
REC_BATCH = 1  # crops per recogniser call (dynamic mode): the fastest on CPU, see BENCHMARKS.md
CLS_BATCH = 6  # crops per classifier call (dynamic mode)


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
        *,
        profile: ShapeProfile | None = None,
        max_lines: int = MAX_LINES,
        recipe: Recipe = RAPIDOCR_144,
    ) -> None:
        self.detector = detector
        self.classifier = classifier
        self.recognizer = recognizer
        self.text_score = text_score
        self.profile = profile  # None: dynamic shapes
        self.max_lines = max_lines
        self.recipe = recipe

    @classmethod
    def load(
        cls,
        model_dir: Path,
        threads: int | None = None,
        backend: str = "onnx",
        *,
        core: int | None = None,
        text_score: float = 0.5,
        static_shapes: bool | None = None,
        family: str = "ocr",
    ) -> OcrPipeline:
        """Load ``<model_dir>/<family>`` after checking every file against its manifest.

        ``family``: the generation's directory (models/ocr/generations.py; ``ocr`` is PP-OCRv4),
        which also decides the reference recipe followed. ``static_shapes``: feed only the
        manifest's shape profile (None: exactly when the backend needs static shapes, i.e. on
        the NPU; onnxruntime then runs RapidOCR's dynamic sizes).
        """
        recipe = generation_of_family(family)[0].recipe
        directory = family_dir(model_dir, family)
        manifest = Manifest.load(directory / MANIFEST_NAME)
        manifest.verify(directory)
        name = resolve_backend(backend)
        if static_shapes is None:
            static_shapes = name in NPU_BACKENDS
        models, dictionary = split_charset(manifest.models, directory)
        sessions, specs = open_roles(
            models,
            lambda file: open_session(directory / file, name, threads=threads, core=core),
            SIMULATOR_OPEN_PARTS if name == "rknn-sim" else MAX_OPEN_PARTS,
        )  # a detector converted in parts (models/runtime/parts.py) is one session again
        profile = manifest_profile(specs) if static_shapes else None
        return cls.from_sessions(sessions, specs, profile=profile, text_score=text_score,
                                 recipe=recipe, dictionary=dictionary)

    @classmethod
    def from_sessions(
        cls,
        sessions: dict[str, Session],
        specs: dict[str, ModelSpec],
        *,
        profile: ShapeProfile | None = None,
        text_score: float = 0.5,
        recipe: Recipe = RAPIDOCR_144,
        dictionary: bytes | None = None,
    ) -> OcrPipeline:
        """Assemble a pipeline from loaded sessions (dynamic shapes unless ``profile``);
        ``dictionary``: the character list of a recogniser that embeds none."""
        if len({specs[role].preprocess.channel_order for role in ("det", "cls", "rec")}) != 1:
            raise ValueError("OCR models disagree on channel order")
        charset = load_charset(sessions["rec"].metadata(), dictionary)
        digits = recipe.score_digits
        if profile is None:
            detector = TextDetector(sessions["det"], specs["det"])
            classifier = AngleClassifier(sessions["cls"], specs["cls"], batch=CLS_BATCH)
            recognizer = TextRecognizer(sessions["rec"], specs["rec"], charset, batch=REC_BATCH,
                                        score_digits=digits)
        else:
            p = profile
            detector = TextDetector(
                sessions["det"], specs["det"], canvases=p.det_canvases, batch=p.det_batch
            )
            classifier = AngleClassifier(
                sessions["cls"], specs["cls"], batch=p.cls_batch, size=p.cls_size, fixed=True
            )
            recognizer = TextRecognizer(
                sessions["rec"], specs["rec"], charset, height=p.rec_height,
                batch=p.rec_batch, widths=p.rec_widths, score_digits=digits,
            )
        return cls(detector, classifier, recognizer, text_score, profile=profile, recipe=recipe)

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
        canvas, placement = fit_sides(image, MAX_SIDE, MIN_SIDE)
        canvas, placement = letterbox(canvas, placement)
        quads, box_scores = self.detector(canvas, box_thresh)
        if len(quads) > self.max_lines:  # keep the surest boxes; bounds time on crowded images
            keep = np.sort(np.argsort(-box_scores, kind="stable")[: self.max_lines])
            quads, box_scores = quads[keep], box_scores[keep]
        if len(quads) == 0:
            return []
        lines_first = self.recipe.reading_order == "lines"
        order = line_order(quads) if lines_first else reading_order(quads)
        quads, box_scores = quads[order], box_scores[order]
        crops = self.classifier([crop_quad(canvas, quad) for quad in quads])
        texts = self.recognizer(crops)
        boxes = to_input_pixels(quads, placement, height, width)
        blank = self.recipe.drop_blank
        return [
            OcrLine(
                box=tuple((float(x), float(y)) for x, y in box),
                text=text,
                score=score,
                box_score=float(box_score),
            )
            for box, (text, score), box_score in zip(boxes, texts, box_scores)
            if score >= min_score and not (blank and not text.strip())
        ]


def split_charset(specs: Mapping[str, ModelSpec],
                  directory: Path) -> tuple[dict[str, ModelSpec], bytes | None]:
    """The manifest's models, and the bytes of its character list file (``CHARSET_ROLE``) when
    the recogniser ships without one embedded (None otherwise)."""
    models = {role: spec for role, spec in specs.items() if role != CHARSET_ROLE}
    charset = specs.get(CHARSET_ROLE)
    return models, None if charset is None else (directory / charset.file).read_bytes()


def manifest_profile(specs: dict[str, ModelSpec]) -> ShapeProfile:
    """The static profile the manifest lists; the shipped default for a manifest written before
    profiles existed (``shapes: null``, the ONNX files only: there is nothing to mismatch)."""
    shapes = {role: specs[role].shapes for role in ("det", "cls", "rec") if role in specs}
    if not any(shapes.values()):
        return DEFAULT_PROFILE
    try:
        return ShapeProfile.from_shapes(shapes)
    except ProfileError as exc:
        raise ProfileError(f"OCR manifest: {exc}") from exc
