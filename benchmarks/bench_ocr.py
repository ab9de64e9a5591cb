"""Our OCR pipeline against RapidOCR on the same images, same ONNX files, same threads.

``--model`` picks the generation (models/ocr/generations.py); the reference is the RapidOCR
release it follows (1.4.4 for ppocrv4, 3.10.0 for the others; ``--reference`` overrides it:
``--model ppocrv4 --reference 3.10`` times RapidOCR 3.10.0 on the v4 files).

Both engines run alternately on every image (the machines are shared and noisy, so only ratios
measured side by side mean anything), after a warm-up pass, for several rounds; the script prints
per-image and total time ratios ours/reference (wall clock and CPU time) and whether the two
read the same lines (text identical, box corners within 2 px).

Variants of ours switch the speed levers one at a time: ``shipped`` is the pipeline as loaded by
the service, ``baseline`` the first version (no lever); ``baseline+arena`` or ``shipped-rec1``
add or remove one lever. Levers: arena (onnxruntime memory arena), shrink (the arena hands back
what a run on an input larger than a 2000 px photo's canvas grew), nospin (no busy-waiting
intra-op threads), rec1 (one crop per recogniser call instead of 6), clsall (every crop in one
classifier call instead of 6), lut (pixel tables writing the model's channel order, instead of a
BGR copy plus cast/scale/shift/divide/transpose passes).

    python benchmarks/bench_ocr.py [--threads 1] [--rounds 5] [--variants shipped,baseline]
    python benchmarks/bench_ocr.py --model ppocrv6-small --rounds 3
    python benchmarks/bench_ocr.py --memory shipped     # RSS after a pass, ours only
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ocr_reference import rapidocr_engine  # noqa: E402

from models.manifest import MANIFEST_NAME, Manifest, Preprocess  # noqa: E402
from models.ocr.generations import OCR_MODELS, generation  # noqa: E402
from models.ocr.pipeline import OcrPipeline, split_charset  # noqa: E402
from models.preprocess import normalize_chw, to_model_order  # noqa: E402
from models.runtime.onnx import SHRINK_ABOVE, OnnxSession  # noqa: E402
from protocol.images import decode_image  # noqa: E402
from protocol.settings import Settings  # noqa: E402

TESTDATA = REPO.parent / "shared" / "testdata"
LEVERS = ("arena", "shrink", "nospin", "rec1", "clsall", "lut")
SHIPPED = ("arena", "shrink", "nospin", "rec1", "lut")  # what measurement kept (BENCHMARKS.md)
BOX_PX = 2.0
Engine = Callable[[np.ndarray], list[tuple[list[list[float]], str, float]]]


def parse_variant(text: str) -> frozenset[str]:
    """``shipped``, ``baseline``, optionally followed by ``+lever`` / ``-lever`` tokens."""
    base, *edits = text.replace("-", " -").replace("+", " +").split()
    if base not in ("shipped", "baseline"):
        raise SystemExit(f"variant {text!r}: start with shipped or baseline")
    levers = set(SHIPPED if base == "shipped" else ())
    for edit in edits:
        name = edit[1:]
        if name not in LEVERS:
            raise SystemExit(f"unknown lever {name!r}; known: {', '.join(LEVERS)}")
        (levers.add if edit[0] == "+" else levers.discard)(name)
    return frozenset(levers)


class LegacyPixels:
    """The pixel path before the ``lut`` lever: BGR copy, then separate numpy passes."""

    def __init__(self, recipe: Preprocess) -> None:
        self.recipe = recipe

    def __call__(self, rgb: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        chw = normalize_chw(to_model_order(rgb, self.recipe), self.recipe)
        if out is None:
            return chw
        out[...] = chw
        return out


def load_ours(model_dir: Path, threads: int, levers: frozenset[str],
              model: str = "ppocrv4") -> Engine:
    """Our pipeline on ``model`` with exactly ``levers`` switched on."""
    gen = generation(model)
    directory = model_dir / gen.family
    specs, dictionary = split_charset(Manifest.load(directory / MANIFEST_NAME).models, directory)
    sessions = {
        role: OnnxSession(
            directory / spec.file,
            threads=threads,
            arena="arena" in levers,
            spinning="nospin" not in levers,
            shrink_above=SHRINK_ABOVE if "shrink" in levers else None,
        )
        for role, spec in specs.items()
    }
    pipeline = OcrPipeline.from_sessions(sessions, specs, recipe=gen.recipe, dictionary=dictionary)
    pipeline.recognizer.batch = 1 if "rec1" in levers else 6
    pipeline.classifier.batch = 1000 if "clsall" in levers else 6
    if "lut" not in levers:
        for part in (pipeline.detector, pipeline.classifier, pipeline.recognizer):
            part.table = LegacyPixels(part.spec.preprocess)

    def run(rgb: np.ndarray) -> list[tuple[list[list[float]], str, float]]:
        return [(list(map(list, line.box)), line.text, line.score) for line in pipeline(rgb)]

    return run


def load_reference(model_dir: Path, threads: int, model: str = "ppocrv4",
                   release: str = "auto") -> Engine:
    """RapidOCR 1.4.4 or 3.10.0 (``auto``: the one ``model`` follows) on our model files."""
    if release == "auto":
        release = "1.4.4" if generation(model).recipe.name == "rapidocr-1.4.4" else "3.10"
    if release == "3.10":
        engine310 = rapidocr_engine(model_dir, model, threads)
        return lambda rgb: [(line["box"], line["text"], line["score"]) for line in engine310(rgb)]
    return load_reference_144(model_dir, threads)


def load_reference_144(model_dir: Path, threads: int) -> Engine:
    """RapidOCR 1.4.4 on our model files; its intra-op threads set as ours (its config takes
    ``intra_op_num_threads``/``inter_op_num_threads`` and copies them to det, cls and rec)."""
    from rapidocr_onnxruntime import RapidOCR

    directory = model_dir / "ocr"
    specs = Manifest.load(directory / MANIFEST_NAME).models
    engine = RapidOCR(
        intra_op_num_threads=threads,
        inter_op_num_threads=1,
        det_model_path=str(directory / specs["det"].file),
        cls_model_path=str(directory / specs["cls"].file),
        rec_model_path=str(directory / specs["rec"].file),
    )

    def run(rgb: np.ndarray) -> list[tuple[list[list[float]], str, float]]:
        result, _ = engine(rgb[..., ::-1])  # an ndarray is taken as BGR, as cv2.imread gives
        return [(box, text, float(score)) for box, text, score in result or []]

    return run


def images() -> list[tuple[str, np.ndarray]]:
    """Every shared OCR test image and photo, decoded as the service decodes uploads."""
    found = []
    for folder in ("ocr", "photos"):
        for path in sorted((TESTDATA / folder).iterdir()):
            found.append((f"{folder}/{path.name}", decode_image(path.read_bytes()).array))
    return found


def agreement(ref: list, ours: list) -> tuple[int, int, float]:
    """(reference lines we read alike, our extra lines, largest score difference)."""
    used: set[int] = set()
    score_diff = 0.0
    for box, text, score in ref:
        best = None
        for k, (obox, otext, _) in enumerate(ours):
            dist = float(np.abs(np.asarray(box) - np.asarray(obox)).max())
            if (
                k not in used
                and otext == text
                and dist <= BOX_PX
                and (best is None or dist < best[0])
            ):
                best = (dist, k)
        if best is not None:
            used.add(best[1])
            score_diff = max(score_diff, abs(ours[best[1]][2] - score))
    return len(used), len(ours) - len(used), score_diff


def timed(engine: Engine, image: np.ndarray) -> tuple[float, float, list]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = engine(image)
    return time.perf_counter() - wall, time.process_time() - cpu, out


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return (
        f"{cpu}; {os.cpu_count()} logical CPUs; load average {load}; python "
        f"{platform.python_version()}, onnxruntime {ort.__version__}, numpy {np.__version__}"
    )


def bench(args: argparse.Namespace) -> None:
    model_dir = Path(args.model_dir)
    variants = {name: parse_variant(name) for name in args.variants.split(",")}
    engines: dict[str, Engine] = {
        "rapidocr": load_reference(model_dir, args.threads, args.model, args.reference)
    }
    engines.update({name: load_ours(model_dir, args.threads, lv, args.model)
                    for name, lv in variants.items()})
    data = images()
    print(f"machine: {machine()}")
    print(f"model {args.model}, reference RapidOCR {args.reference}; threads {args.threads}, "
          f"rounds {args.rounds}, {len(data)} images; variants:")
    for name, levers in variants.items():
        print(f"  {name}: {', '.join(sorted(levers)) or 'no lever'}")
    outputs: dict[str, dict[str, list]] = {name: {} for name in engines}
    for name, image in data:  # warm-up, and the outputs compared below
        for engine_name, engine in engines.items():
            outputs[engine_name][name] = engine(image)
    wall = {e: {n: [] for n, _ in data} for e in engines}
    cpu = {e: {n: [] for n, _ in data} for e in engines}
    order = list(engines)
    for round_no in range(args.rounds):
        for name, image in data:
            for engine_name in order if round_no % 2 == 0 else order[::-1]:
                w, c, _ = timed(engines[engine_name], image)
                wall[engine_name][name].append(w)
                cpu[engine_name][name].append(c)
    report(data, variants, wall, cpu, outputs, args.rounds)
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


def report(data, variants, wall, cpu, outputs, rounds) -> None:
    names = [n for n, _ in data]
    med = statistics.median
    header = f"{'image':48s} {'ref ms':>8s}" + "".join(f" {v[:22]:>22s}" for v in variants)
    print(
        "\nper image: median wall ms of the reference; per variant ratio ours/ref and agreement "
        "(ref lines matched/ref lines, +extra)"
    )
    print(header)
    for name in names:
        ref_ms = med(wall["rapidocr"][name]) * 1000
        cells = []
        for v in variants:
            ratio = med(wall[v][name]) / med(wall["rapidocr"][name])
            hit, extra, _ = agreement(outputs["rapidocr"][name], outputs[v][name])
            cells.append(f"{ratio:5.2f} {hit:3d}/{len(outputs['rapidocr'][name]):<3d}+{extra}")
        print(f"{name:48s} {ref_ms:8.0f}" + "".join(f" {c:>22s}" for c in cells))
    print("\ntotals (ratio = ours/ref; per-round ratio of the round totals, median [min-max])")
    for v in variants:
        for label, table in (("wall", wall), ("cpu", cpu)):
            per_round = [
                sum(table[v][n][r] for n in names) / sum(table["rapidocr"][n][r] for n in names)
                for r in range(rounds)
            ]
            ours_s = med([sum(table[v][n][r] for n in names) for r in range(rounds)])
            ref_s = med([sum(table["rapidocr"][n][r] for n in names) for r in range(rounds)])
            print(
                f"  {v:28s} {label}: {med(per_round):.3f} [{min(per_round):.3f}-"
                f"{max(per_round):.3f}]  ours {ours_s:.2f} s, ref {ref_s:.2f} s per round"
            )
        hits = [agreement(outputs["rapidocr"][n], outputs[v][n]) for n in names]
        total = sum(len(outputs["rapidocr"][n]) for n in names)
        print(
            f"  {v:28s} agree: {sum(h for h, _, _ in hits)}/{total} reference lines, "
            f"{sum(e for _, e, _ in hits)} extra, max score diff "
            f"{max(d for _, _, d in hits):.5f}"
        )


def memory(args: argparse.Namespace) -> None:
    """RSS of a process that ran one variant over every image once (ours only)."""
    engine = load_ours(Path(args.model_dir), args.threads, parse_variant(args.memory), args.model)
    for _, image in images():
        engine(image)
    rss = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{args.memory}: RSS after the pass {rss / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, both engines")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", default="shipped", help="comma-separated, see the docstring")
    parser.add_argument("--model-dir", default=str(Settings.from_env().model_dir))
    parser.add_argument("--memory", metavar="VARIANT", help="only report RSS of one variant")
    parser.add_argument("--model", default="ppocrv4", choices=OCR_MODELS)
    parser.add_argument("--reference", default="auto", choices=("auto", "1.4.4", "3.10"))
    args = parser.parse_args()
    memory(args) if args.memory else bench(args)


if __name__ == "__main__":
    main()
