"""Chinese-CLIP text tokenizer: the ids of cn_clip 1.6.0 `clip.tokenize(texts, context_length=52)`.

The text tower was trained on exactly these ids, so any drift (another punctuation set,
accents kept, CJK characters glued together) silently degrades search. The steps are
BERT's basic tokenizer and WordPiece; the shared golden file pins them.

Speed: each step runs over the whole text in C (regex, str methods) instead of per
character in Python, WordPiece results are cached per word, and work stops once the
context is full. This reorders nothing observable: whitespace code points are starters
and not case-ignorable, so lower-casing and NFD never act across words; CJK code points
likewise, and NFD keeps them inside the CJK ranges, so they can be split off after
lower-casing and NFD instead of before (tests re-check both facts against `unicodedata`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path

import numpy as np

CONTEXT_LENGTH = 52
MAX_WORD_CHARS = 200  # longer words become [UNK], as in BERT
CACHE_LIMIT = 1 << 16  # WordPiece results kept per tokenizer before the cache is reset
PREFIX_CHARS = 2048  # a longer text is tokenized prefix first (see piece_ids)
_CUT = re.compile("[ \n\u4e00-\u9fff]")  # whitespace or CJK: never inside a word

# Code point ranges BERT calls "Chinese characters": each becomes its own token.
CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)
# ASCII non-alphanumerics count as punctuation even where Unicode says symbol ($, ^, `).
ASCII_PUNCT_RANGES = ((33, 47), (58, 64), (91, 96), (123, 126))


def _char_class(ranges: Iterable[tuple[int, int]], capture: bool = False) -> re.Pattern[str]:
    """A regex for one character of the class, captured when it feeds `split`.

    sre scans a class's astral ranges one by one, and only a pattern that starts with a
    plain class gets its fast skip-ahead. So: BMP part plus "any astral" as that class,
    then a lookbehind that checks the exact astral ranges for astral characters only.
    """

    def body(rs: Iterable[tuple[int, int]]) -> str:
        return "[" + "".join(f"\\U{lo:08x}-\\U{hi:08x}" for lo, hi in rs) + "]"

    bmp = [(lo, min(hi, 0xFFFF)) for lo, hi in ranges if lo <= 0xFFFF]
    astral = [(max(lo, 0x10000), hi) for lo, hi in ranges if hi > 0xFFFF]
    one = body(bmp)
    if astral:
        one = body([*bmp, (0x10000, 0x10FFFF)])
        one += f"(?:(?<=[\\x00-\\uffff])|(?<={body(astral)}))"
    return re.compile(f"({one})" if capture else one)


def _code(category: str) -> str:
    """The reference's own tests: Cc/Cf are dropped, Mn is an accent, any P* stands alone."""
    if category in ("Cc", "Cf"):
        return "c"
    return "m" if category == "Mn" else "s" if category.startswith("P") else "x"


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(dropped chars, accent marks, chars that stand alone) from this interpreter's tables.

    Built once per process (~0.3 s): a full scan, because the reference asks `unicodedata`
    at run time and a hard-coded table would drift with the Python version.
    """
    cats = list(map(unicodedata.category, map(chr, range(0x110000))))
    codes = list(map({c: _code(c) for c in set(cats)}.__getitem__, cats))
    codes[0x09] = codes[0x0A] = codes[0x0D] = "x"  # tab/newline/CR are whitespace
    codes[0x00] = codes[0xFFFD] = "c"  # NUL and the replacement char are dropped
    for lo, hi in (*ASCII_PUNCT_RANGES, *CJK_RANGES):
        codes[lo : hi + 1] = "s" * (hi + 1 - lo)
    table = "".join(codes)

    def runs(code: str) -> list[tuple[int, int]]:
        return [(m.start(), m.end() - 1) for m in re.finditer(f"{code}+", table)]

    return (
        _char_class(runs("c")),
        _char_class(runs("m")),
        _char_class(runs("s"), capture=True),
    )


class ClipTokenizer:
    """Text -> `[CLS] pieces… [SEP] 0…` int64 ids for the Chinese-CLIP text encoder."""

    def __init__(self, tokens: Sequence[str], context_length: int = CONTEXT_LENGTH) -> None:
        """`tokens[i]` is the vocab entry with id i (lines of vocab.txt, stripped)."""
        if context_length < 2:
            raise ValueError("context_length must leave room for [CLS] and [SEP]")
        vocab: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            vocab[tok] = i  # a repeated entry maps to its last line, as in the reference
        try:
            self._cls, self._sep, self._unk = vocab["[CLS]"], vocab["[SEP]"], vocab["[UNK]"]
        except KeyError as exc:
            raise ValueError(f"vocab lacks the special token {exc}") from None
        self._vocab = vocab
        self._cont = {k[2:]: v for k, v in vocab.items() if k.startswith("##")}
        self._max_first = max(map(len, vocab))
        self._max_cont = max(map(len, self._cont), default=0)
        self._size = len(tokens)
        self._context_length = context_length
        self._cache: dict[str, tuple[int, ...]] = {}
        self._drop, self._marks, self._alone = _patterns()

    @classmethod
    def from_vocab_file(cls, path: Path, context_length: int = CONTEXT_LENGTH) -> ClipTokenizer:
        """Read vocab.txt: one token per line, id = line number (universal newlines, stripped)."""
        with open(path, encoding="utf-8") as f:
            return cls([line.strip() for line in f], context_length)

    @property
    def context_length(self) -> int:
        """Ids per row: [CLS], up to context_length - 2 pieces, [SEP], zero padding."""
        return self._context_length

    @property
    def vocab_size(self) -> int:
        """Lines in vocab.txt: every id is below this (the embedding table's size)."""
        return self._size

    def words(self, text: str) -> list[str]:
        """BERT basic tokenization: clean, lower-case, strip accents, split CJK and punctuation."""
        text = self._drop.sub("", text).lower()
        if not text.isascii():
            text = self._marks.sub("", unicodedata.normalize("NFD", text))
        return " ".join(self._alone.split(text)).split()

    def piece_ids(self, text: str) -> list[int]:
        """WordPiece ids of `text`, at most `context_length - 2` of them.

        A long text is tried on growing prefixes cut at a space, newline or common CJK
        character: the reference never joins anything across those, so a prefix's pieces
        are the whole text's first pieces, and a pasted novel costs what a query does.
        """
        limit, size = self._context_length - 2, PREFIX_CHARS
        while len(text) > size:
            cut = _CUT.search(text, size)
            if cut is None:
                break
            ids = self._pieces(text[: cut.start()], limit)
            if len(ids) >= limit:
                return ids
            size *= 8
        return self._pieces(text, limit)

    def _pieces(self, text: str, limit: int) -> list[int]:
        cache = self._cache
        ids: list[int] = []
        for word in self.words(text):
            pieces = cache.get(word)
            if pieces is None:
                if len(cache) >= CACHE_LIMIT:
                    cache.clear()
                pieces = cache[word] = self._wordpiece(word)
            ids += pieces
            if len(ids) >= limit:
                return ids[:limit]
        return ids

    def encode(self, text: str) -> np.ndarray:
        """One text -> int64 array of shape (context_length,)."""
        row = self._row(text)
        out = np.zeros(self._context_length, dtype=np.int64)
        out[: len(row)] = row
        return out

    def encode_batch(self, texts: Iterable[str]) -> np.ndarray:
        """Several texts -> int64 array of shape (N, context_length)."""
        if isinstance(texts, str):
            raise TypeError("encode_batch takes a sequence of texts; use encode() for one")
        rows = [self._row(t) for t in texts]
        out = np.zeros((len(rows), self._context_length), dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out

    def _row(self, text: str) -> list[int]:
        """`[CLS]`, the pieces, `[SEP]`; zero padding is left to the caller's array."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}")
        return [self._cls, *self.piece_ids(text), self._sep]

    def _wordpiece(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first split; any unmatched remainder makes the word [UNK]."""
        n = len(word)
        if n > MAX_WORD_CHARS:
            return (self._unk,)
        ids: list[int] = []
        table, longest, start = self._vocab, self._max_first, 0
        while start < n:
            end = min(n, start + longest)
            while end > start:
                tid = table.get(word[start:end])
                if tid is not None:
                    break
                end -= 1
            else:
                return (self._unk,)
            ids.append(tid)
            table, longest, start = self._cont, self._max_cont, end
        return tuple(ids)
