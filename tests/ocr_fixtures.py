"""Shared helpers for the OCR tests: one loaded pipeline per session, the reference file's lines,
tolerances and character agreement (line matching is models.ocr.compare's), and a recording
wrapper around the real sessions (which input shapes each model was fed)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.manifest import MANIFEST_NAME, Manifest, family_dir
from models.ocr.compare import corner_distance, line_height
from models.ocr.generations import generation_of_family
from models.ocr.pipeline import OcrLine, OcrPipeline, split_charset
from models.ocr.profile import ShapeProfile
from models.runtime import Session, open_session
from models.tools.ocr_score import edit_distance

BOX_TOLERANCE_PX = 2.0


@functools.cache
def load_pipeline(model_dir: Path) -> OcrPipeline:
    """Loading costs seconds; every OCR test module shares one pipeline."""
    return OcrPipeline.load(model_dir)


def reference_lines(entries: list[dict]) -> list[OcrLine]:
    """Lines of the reference file (``{"text", "box", "score"}``) as the pipeline's lines."""
    return [OcrLine(box=tuple(tuple(p) for p in e["box"]), text=e["text"],
                    score=float(e.get("score", 1.0))) for e in entries]


def profile_tolerance(ref: OcrLine) -> float:
    """Box tolerance against the dynamic pipeline for a static profile: a different detector
    scale moves box edges a little, so 2 px or 20% of the line height."""
    return max(BOX_TOLERANCE_PX, 0.2 * line_height(ref))


class RecordingSession:
    """The real session, passed through, remembering the shape of every input it was fed."""

    def __init__(self, inner: Session) -> None:
        self.inner = inner
        self.shapes: list[tuple[int, ...]] = []

    @property
    def input_names(self) -> list[str]:
        return self.inner.input_names

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.shapes.extend(tuple(array.shape) for array in feeds.values())
        return self.inner.run(feeds)

    def metadata(self) -> dict[str, str]:
        return self.inner.metadata()


def recorded_pipeline(
    model_dir: Path, profile: ShapeProfile | None, threads: int | None = None,
    family: str = "ocr",
) -> tuple[OcrPipeline, dict[str, RecordingSession]]:
    """A pipeline on the real ONNX models of ``family`` (static shapes when ``profile``), every
    session wrapped in a recorder; also returns the recorders by role."""
    directory = family_dir(model_dir, family)
    specs, dictionary = split_charset(Manifest.load(directory / MANIFEST_NAME).models, directory)
    sessions = {
        role: RecordingSession(open_session(directory / spec.file, "onnx", threads=threads))
        for role, spec in specs.items()
    }
    pipeline = OcrPipeline.from_sessions(
        dict(sessions), specs, profile=profile, recipe=generation_of_family(family)[0].recipe,
        dictionary=dictionary)
    return pipeline, sessions


def read_agreement(
    reference: list[OcrLine], ours: list[OcrLine], tolerance: Callable[[OcrLine], float]
) -> tuple[int, int, int]:
    """(reference characters, characters read alike, reference lines found).

    Each reference line is paired with our unused line whose box is nearest, within
    ``tolerance``, whatever its text; a pair agrees on ``len(ref) - edit distance`` characters,
    a line not found on none. Unlike exact matching, one flipped glyph costs one character.
    """
    used: set[int] = set()
    chars = alike = found = 0
    for ref in reference:
        chars += len(ref.text)
        near = [(corner_distance(line, ref), k) for k, line in enumerate(ours) if k not in used]
        best = min(near, default=None)
        if best is None or best[0] > tolerance(ref):
            continue
        used.add(best[1])
        found += 1
        alike += max(0, len(ref.text) - edit_distance(ref.text, ours[best[1]].text))
    return chars, alike, found
