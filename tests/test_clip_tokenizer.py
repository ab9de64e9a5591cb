"""The Chinese-CLIP tokenizer must give cn_clip 1.6.0's ids, byte for byte, for any text.

The golden ids come from cn_clip itself (shared test data); the properties cover what a
golden list cannot enumerate: arbitrary Unicode, huge inputs, the prefix shortcut, and
the Unicode facts the fast whole-text implementation relies on.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.clip.tokenizer import CJK_RANGES, ClipTokenizer

HERE = Path(__file__).resolve().parent
VOCAB = HERE / "fixtures" / "clip" / "vocab.txt"
VOCAB_SHA256 = "45bbac6b341c319adc98a532532882e91a9cefc0329aa57bac9ae761c27b291c"  # cn_clip 1.6.0
GOLDEN = Path("shared", "testdata", "clip", "tokens_golden.json")
CLS, SEP, UNK, CONTEXT = 101, 102, 100, 52

# Full code point range but lone surrogates (see test_lone_surrogates): includes controls,
# format chars, combining marks, private use and unassigned code points.
ANY_CHAR = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=("Cs",))
TRICKY = st.sampled_from(
    list(" \t\n\r\x00\x0b\x1c\x85\xa0\u2000\u2028\u3000\u200b\ufeff\ufffd\u00ad")
    + list("\u03a3\u03c3\u03c2İßﬁⅫ①\uff21\u0301\u0345\u037e\u1fef#@!。\uff0c《》中猫")
    + ["\U00020000", "\U0002f800", "😀", "🙂"]
)
TEXT = st.text(st.one_of(ANY_CHAR, TRICKY), max_size=300)
HUGE = st.builds(
    lambda s, n: s * n, st.text(st.one_of(ANY_CHAR, TRICKY), min_size=1), st.integers(1, 5000)
)
SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


def find_golden() -> Path:
    """`../shared/testdata/...` from the repo root; parents are searched too, for worktrees."""
    for base in HERE.parents:
        if (base / GOLDEN).is_file():
            return base / GOLDEN
    pytest.fail(f"golden token file {GOLDEN} not found beside any parent of {HERE}")


@pytest.fixture(scope="module")
def tok() -> ClipTokenizer:
    return ClipTokenizer.from_vocab_file(VOCAB)


def check_row(row: np.ndarray, vocab_size: int) -> None:
    assert row.shape == (CONTEXT,) and row.dtype == np.int64
    assert row[0] == CLS
    seps = np.flatnonzero(row == SEP)
    assert len(seps) == 1
    end = seps[0]
    assert (row[1:end] > 0).all(), "no padding before [SEP]"
    assert (row[end + 1 :] == 0).all(), "only padding after [SEP]"
    assert (row >= 0).all() and (row < vocab_size).all()


def test_vocab_fixture_is_cn_clip_vocab(tok: ClipTokenizer) -> None:
    assert hashlib.sha256(VOCAB.read_bytes()).hexdigest() == VOCAB_SHA256
    assert tok.vocab_size == 21128 and tok.context_length == CONTEXT
    assert tok.encode("").tolist() == [CLS, SEP] + [0] * (CONTEXT - 2)


def test_golden_ids(tok: ClipTokenizer) -> None:
    cases = json.loads(find_golden().read_text(encoding="utf-8"))["cases"]
    assert len(cases) >= 400
    bad = [c["text"] for c in cases if tok.encode(c["text"]).tolist() != c["ids"]]
    assert not bad, f"{len(bad)}/{len(cases)} golden texts differ, e.g. {bad[:5]!r}"
    batch = tok.encode_batch([c["text"] for c in cases])
    assert batch.dtype == np.int64
    assert batch.tolist() == [c["ids"] for c in cases]


def test_wordpiece_limits(tok: ClipTokenizer) -> None:
    assert UNK not in tok.encode("a" * 200)  # 200 chars: still split into pieces
    assert tok.encode("a" * 201)[:3].tolist() == [CLS, UNK, SEP]  # longer than 200 chars
    long = tok.encode("猫" * 100)
    assert long.tolist() == [CLS] + [long[1]] * 50 + [SEP]  # first 50 pieces, then [SEP]


def test_batch_api(tok: ClipTokenizer) -> None:
    texts = ["猫", "a dog", ""]
    assert np.array_equal(tok.encode_batch(texts), np.stack([tok.encode(t) for t in texts]))
    assert tok.encode_batch([]).shape == (0, CONTEXT)
    assert tok.encode_batch(iter(texts)).shape == (3, CONTEXT)
    with pytest.raises(TypeError):
        tok.encode_batch("a dog")
    with pytest.raises(TypeError):
        tok.encode(b"a dog")  # type: ignore[arg-type]


def test_lone_surrogates(tok: ClipTokenizer) -> None:
    """JSON can carry them ("\\ud800"); cn_clip makes them [UNK] like any unknown char."""
    assert tok.encode("\u4e2d\udfff")[:4].tolist() == [CLS, 704, UNK, SEP]
    assert tok.encode("a\udc00b")[:3].tolist() == [CLS, UNK, SEP]


@settings(SETTINGS, max_examples=500)
@given(TEXT)
def test_any_text_gives_a_valid_row(tok: ClipTokenizer, text: str) -> None:
    check_row(tok.encode(text), tok.vocab_size)


@settings(SETTINGS, max_examples=30)
@given(HUGE)
def test_huge_text_gives_a_valid_row(tok: ClipTokenizer, text: str) -> None:
    check_row(tok.encode(text), tok.vocab_size)


@settings(SETTINGS, max_examples=50)
@given(st.lists(st.one_of(TEXT, st.sampled_from(["cat", "猫", "é", "\n"])), min_size=50))
def test_prefix_shortcut_is_exact(tok: ClipTokenizer, parts: list[str]) -> None:
    text = " ".join(parts * 20)
    assert tok.piece_ids(text) == tok._pieces(text, CONTEXT - 2)


def test_unicode_facts_behind_whole_text_steps() -> None:
    """The reordering argued in the module docstring, re-checked on this Python's tables."""

    def is_cjk(c: str) -> bool:
        return any(lo <= ord(c) <= hi for lo, hi in CJK_RANGES)

    def final_sigma_boundary(c: str) -> bool:  # neither cased nor case-ignorable
        sigma, final = "\u03c3", "\u03c2"
        return ("A\u03a3" + c + "B").lower()[1] == final and (c + "\u03a3").lower()[-1] == sigma

    spaces = [chr(cp) for cp in range(0x110000) if chr(cp).isspace()]
    for c in spaces:
        assert unicodedata.combining(c) == 0
        assert unicodedata.normalize("NFD", c.lower()).isspace()
        assert unicodedata.category(c) in ("Cc", "Cf") or final_sigma_boundary(c)
    for lo, hi in CJK_RANGES:
        for c in map(chr, range(lo, hi + 1)):
            out = unicodedata.normalize("NFD", c.lower())
            assert len(out) == 1 and is_cjk(out) and unicodedata.combining(c) == 0
            assert final_sigma_boundary(c)
    for c in map(chr, range(0x110000)):
        if (unicodedata.decomposition(c) or c.lower() != c) and not is_cjk(c):
            assert not any(map(is_cjk, unicodedata.normalize("NFD", c.lower()))), hex(ord(c))
