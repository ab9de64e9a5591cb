"""Per-query cost of the CLIP text tokenizer over the golden texts, ours vs cn_clip's.

A search request tokenizes one query before the text tower runs, so this is latency on
every search. The reference is timed in the same run when cn_clip is importable (its
tokenizer module is loaded by file, so torch is not needed).

    python benchmarks/bench_tokenizer.py [--repeat 50] [--vocab PATH] [--golden PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from models.clip.tokenizer import ClipTokenizer  # noqa: E402

GOLDEN = Path("shared", "testdata", "clip", "tokens_golden.json")


def reference() -> Callable[[str], np.ndarray] | None:
    """cn_clip's tokenize(text, 52) as numpy, or None when cn_clip is not installed."""
    spec = importlib.util.find_spec("cn_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), "clip", "bert_tokenizer.py")
    mod_spec = importlib.util.spec_from_file_location("cn_clip_bert_tokenizer", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    bert = module.FullTokenizer()  # its bundled vocab.txt

    def encode(text: str) -> np.ndarray:  # what clip.tokenize does, minus torch
        ids = bert.convert_tokens_to_ids(bert.tokenize(text))[:50]
        row = np.zeros(52, dtype=np.int64)
        row[: len(ids) + 2] = [bert.vocab["[CLS]"], *ids, bert.vocab["[SEP]"]]
        return row

    return encode


def per_query_us(fn: Callable[[], object], n: int, repeat: int) -> tuple[float, float]:
    """(median, best) over `repeat` passes of one call over all `n` texts, in µs per text."""
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        passes.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(passes), min(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--vocab", type=Path, default=REPO / "tests/fixtures/clip/vocab.txt")
    parser.add_argument("--golden", type=Path, default=REPO.parent / GOLDEN)
    args = parser.parse_args()
    texts = [c["text"] for c in json.loads(args.golden.read_text(encoding="utf-8"))["cases"]]
    n = len(texts)

    start = time.perf_counter()
    tok = ClipTokenizer.from_vocab_file(args.vocab)
    load_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    for t in texts:
        tok.encode(t)
    cold_us = (time.perf_counter() - start) / n * 1e6

    rows = [
        ("ours encode()", *per_query_us(lambda: [tok.encode(t) for t in texts], n, args.repeat)),
        ("ours encode_batch()", *per_query_us(lambda: tok.encode_batch(texts), n, args.repeat)),
    ]
    ref = reference()
    if ref is not None:
        same = sum(np.array_equal(ref(t), tok.encode(t)) for t in texts)
        timing = per_query_us(lambda: [ref(t) for t in texts], n, args.repeat)
        rows.append(("cn_clip tokenize", *timing))

    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}, {n} golden texts")
    print(f"ours: load {load_ms:.0f} ms (Unicode tables + vocab), first pass {cold_us:.1f} µs/text")
    print(f"{'implementation':<22}{'median µs':>11}{'best µs':>10}{'vs ours':>9}")
    for name, median, best in rows:
        print(f"{name:<22}{median:>11.2f}{best:>10.2f}{median / rows[0][1]:>8.2f}x")
    if ref is None:
        print("cn_clip not importable here: reference not timed")
    else:
        print(f"identical ids: {same}/{n}")


if __name__ == "__main__":
    main()
