"""Scoring OCR output against ground truth (models/tools/ocr_truth.py), per script group.

Each truth line collects the predicted lines lying on it (a predicted box whose area lies at
least half inside the truth box, grown by a fifth of the line height): a detector that reads a
sign as three word boxes is not punished for that, one that glues words together is (the words
are what users search for). The collected texts are joined in reading order (left to right;
top to bottom for vertical lines), with spaces between boxes.

Figures, per group and overall:
- CER: character edit distance / truth characters, whitespace removed from both sides;
- word accuracy: truth words found whole in the prediction. Latin-spaced groups (English,
  numbers, Korean) split on spaces; Chinese groups are segmented with jieba on both sides (the
  words a user would type); Japanese has no word figure;
- line recall: truth lines read exactly (whitespace ignored); found: truth lines with any box.

jieba is imported here only: the service never needs it (setup.cfg's ``dev`` and ``bench``
extras).
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from models.tools.ocr_truth import CJK_GROUPS, LATIN_GROUPS, TruthLine

Box = Sequence[Sequence[float]]


@dataclass
class Tally:
    """Running counts for one group (or all)."""

    chars: int = 0
    errors: int = 0
    words: int = 0
    words_ok: int = 0
    lines: int = 0
    lines_ok: int = 0
    found: int = 0
    has_words: bool = False

    def add(self, other: Tally) -> None:
        for name in ("chars", "errors", "words", "words_ok", "lines", "lines_ok", "found"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.has_words = self.has_words or other.has_words

    @property
    def cer(self) -> float:
        return self.errors / self.chars if self.chars else 0.0

    @property
    def word_accuracy(self) -> float | None:
        return self.words_ok / self.words if self.words else None

    @property
    def line_recall(self) -> float:
        return self.lines_ok / self.lines if self.lines else 0.0

    @property
    def found_rate(self) -> float:
        return self.found / self.lines if self.lines else 0.0


@dataclass
class Score:
    groups: dict[str, Tally] = field(default_factory=dict)

    def total(self) -> Tally:
        all_ = Tally()
        for tally in self.groups.values():
            all_.add(tally)
        return all_

    def add(self, other: Score) -> None:
        for group, tally in other.groups.items():
            self.groups.setdefault(group, Tally()).add(tally)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def squeeze(text: str) -> str:
    """Whitespace removed, full-width forms folded (NFKC), as CER compares."""
    return "".join(unicodedata.normalize("NFKC", text).split())


def _polygon_area(points: np.ndarray) -> float:
    return float(abs(cv2.contourArea(points.astype(np.float32))))


def inside_fraction(pred: Box, truth: Box, grow: float) -> float:
    """Share of ``pred``'s area inside ``truth`` grown by ``grow`` pixels on every side."""
    p = np.asarray(pred, np.float32).reshape(-1, 2)
    t = np.asarray(truth, np.float32).reshape(-1, 2)
    centre = t.mean(axis=0)
    direction = t - centre
    norm = np.linalg.norm(direction, axis=1, keepdims=True)
    t = t + direction / np.maximum(norm, 1e-6) * grow * np.sqrt(2)
    area = _polygon_area(p)
    if area <= 0:
        return 0.0
    overlap, _ = cv2.intersectConvexConvex(p, t.astype(np.float32))
    return float(overlap) / area


def _height(box: Box, vertical: bool) -> float:
    b = np.asarray(box, float)
    side = np.linalg.norm(b[1] - b[0]) if vertical else np.linalg.norm(b[3] - b[0])
    return float(side)


def words_of(text: str, group: str) -> list[str]:
    """The searchable words of ``text`` for ``group`` (see the module docstring)."""
    if group in LATIN_GROUPS:
        return [w for w in unicodedata.normalize("NFKC", text).split() if w]
    if group in CJK_GROUPS:
        import jieba

        jieba.setLogLevel(60)
        tokens = jieba.lcut(squeeze(text))
        return [t for t in tokens if any(ch.isalnum() for ch in t)]
    return []


def score_image(truth: Iterable[TruthLine], predicted: Sequence[tuple[Box, str]]) -> Score:
    """Score one image's prediction (box, text per line) against its truth lines."""
    score = Score()
    for line in truth:
        grow = 0.2 * _height(line.box, line.vertical)
        hits = [(box, text) for box, text in predicted
                if inside_fraction(box, line.box, grow) >= 0.5]
        axis = 1 if line.vertical else 0
        hits.sort(key=lambda item: float(np.asarray(item[0], float)[:, axis].min()))
        read = " ".join(text for _, text in hits)
        tally = score.groups.setdefault(line.group, Tally())
        want, got = squeeze(line.text), squeeze(read)
        tally.chars += len(want)
        tally.errors += edit_distance(want, got)
        tally.lines += 1
        tally.lines_ok += int(want == got)
        tally.found += int(bool(hits))
        truth_words = words_of(line.text, line.group)
        if truth_words:
            tally.has_words = True
            available = Counter(words_of(read, line.group))
            for word in truth_words:
                tally.words += 1
                if available[word] > 0:
                    available[word] -= 1
                    tally.words_ok += 1
    return score
