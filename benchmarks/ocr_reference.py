"""RapidOCR 3.10.0 as the reference for every OCR generation, and the file the tests read.

``rapidocr_engine`` runs RapidOCR 3.10.0 (PyPI ``rapidocr``, the ``reference`` extra) on one
generation's installed files: the same det/cls/rec ONNX, its dictionary when the recogniser has
none, the same onnxruntime thread count. Run as a script it reads every image of
``shared/testdata/ocr`` and ``shared/testdata/photos`` decoded as the service decodes them and
writes what RapidOCR reads per generation to ``tests/fixtures/ocr_reference_rapidocr310.json``
(with the files' SHA-256, so a test notices a fixture made from other files):

    .venv/bin/python benchmarks/ocr_reference.py            # every generation
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.manifest import MANIFEST_NAME, Manifest, family_dir  # noqa: E402
from models.ocr.generations import CHARSET_ROLE, OCR_MODELS, family_name  # noqa: E402
from protocol.images import decode_image  # noqa: E402
from protocol.settings import Settings  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "ocr_reference_rapidocr310.json"
TESTDATA = ROOT.parent / "shared" / "testdata"
IMAGE_DIRS = ("ocr", "photos")

Line = dict  # {"text": str, "box": [[x, y] * 4], "score": float}


def rapidocr_engine(model_dir: Path, model: str, threads: int = 1,
                    lang: str | None = None) -> Callable[[np.ndarray], list[Line]]:
    """RapidOCR 3.10.0 on ``model``'s files in ``model_dir``: RGB array in, lines out."""
    from rapidocr import RapidOCR

    directory = family_dir(model_dir, family_name(model, lang))
    specs = Manifest.load(directory / MANIFEST_NAME).models
    params = {
        "Global.log_level": "error",
        "Det.model_path": str(directory / specs["det"].file),
        "Cls.model_path": str(directory / specs["cls"].file),
        "Rec.model_path": str(directory / specs["rec"].file),
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    if CHARSET_ROLE in specs:
        params["Rec.rec_keys_path"] = str(directory / specs[CHARSET_ROLE].file)
    engine = RapidOCR(params=params)

    def run(rgb: np.ndarray) -> list[Line]:
        out = engine(np.ascontiguousarray(rgb[..., ::-1]))  # RapidOCR takes OpenCV's BGR
        if out.boxes is None or out.txts is None:
            return []
        return [{"text": text, "box": np.asarray(box, float).tolist(), "score": float(score)}
                for box, text, score in zip(out.boxes, out.txts, out.scores)]

    return run


def shared_images(testdata: Path = TESTDATA) -> Iterator[tuple[str, np.ndarray]]:
    """(name relative to testdata, RGB array decoded as the front does) for the shared images."""
    for folder in IMAGE_DIRS:
        for path in sorted((testdata / folder).iterdir()):
            yield f"{folder}/{path.name}", decode_image(path.read_bytes()).array


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(OCR_MODELS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=FIXTURE)
    args = parser.parse_args()
    import rapidocr

    model_dir = Settings.from_env().model_dir
    images = list(shared_images())
    result = {"rapidocr": rapidocr.__version__ if hasattr(rapidocr, "__version__") else "3.10.0",
              "models": {}}
    if args.out.is_file():
        result["models"] = json.loads(args.out.read_text(encoding="utf-8"))["models"]
    for model in args.models.split(","):
        engine = rapidocr_engine(model_dir, model, args.threads)
        directory = family_dir(model_dir, family_name(model))
        specs = Manifest.load(directory / MANIFEST_NAME).models
        lines = {}
        for name, rgb in images:
            lines[name] = engine(rgb)
            print(f"{model} {name}: {len(lines[name])} lines", flush=True)
        result["models"][model] = {
            "sha256": {role: spec.sha256 for role, spec in specs.items()},
            "images": lines,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
