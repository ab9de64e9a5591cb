"""The reference pipelines our OCR follows: RapidOCR 1.4.4 (PP-OCRv4, MT-Photos' sidecar) and
RapidOCR 3.10.0 (every newer generation). Both share the resize, DB post-process, crop, classifier
and recogniser batching; they differ in three small steps, each measured to change lines:

- reading order: 1.4.4 runs one insertion pass that moves a box left past neighbours whose top
  corner lies within 10 px; 3.10 groups boxes into lines wherever consecutive tops (in y order)
  are less than 10 px apart and reads each line left to right;
- 3.10 drops lines whose text is blank (only spaces) before the score filter;
- 3.10 rounds each character's probability and the line score to 5 decimals.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recipe:
    name: str
    reading_order: str  # "insertion" (1.4.4) or "lines" (3.10)
    drop_blank: bool
    score_digits: int | None  # None: full precision


RAPIDOCR_144 = Recipe("rapidocr-1.4.4", "insertion", drop_blank=False, score_digits=None)
RAPIDOCR_310 = Recipe("rapidocr-3.10.0", "lines", drop_blank=True, score_digits=5)
