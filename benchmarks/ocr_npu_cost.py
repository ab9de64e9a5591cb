"""Estimated RK3588 NPU cost of each OCR generation, from the work its networks do.

No NPU was available, and no per-model figures are published for PP-OCRv5/v6 on RK3588, so
the cost is scaled from the published PP-OCRv4 single-core figures (det 480x480 about 20 ms,
rec 48x320 fp16 about 13.5 ms; the same anchors as benchmarks/ocr_npu_profile.py) by the
multiply-accumulates each network needs at the same input size, counted from the ONNX graph
with shapes inferred at fixed inputs (Conv, ConvTranspose, MatMul, Gemm; the rest is small).
It assumes every network uses the NPU as efficiently as PP-OCRv4 does, which attention layers
(PP-OCRv5/v6 recognisers) may not: read it as a lower bound for them.

A photo is the service's usual case: a 4:3 image at 2000 px (detector canvas 1504x1984) with
20 lines of text (20 recogniser calls at 48x320 and 20 classifier calls).

    .venv/bin/python benchmarks/ocr_npu_cost.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.manifest import MANIFEST_NAME, Manifest  # noqa: E402
from models.ocr.generations import GENERATIONS, OCR_MODELS  # noqa: E402
from protocol.settings import Settings  # noqa: E402

V4_DET_MS_480 = 20.0  # PP-OCRv4 det, 1x3x480x480, one RK3588 NPU core (published)
V4_REC_MS_320 = 13.5  # PP-OCRv4 rec, 1x3x48x320, fp16, one core (published)
PHOTO_CANVAS = (1504, 1984)
PHOTO_LINES = 20


def macs(path: Path, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one run of the ONNX model at input ``shape``."""
    import numpy as np
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    graph = model.graph
    for dim, value in zip(graph.input[0].type.tensor_type.shape.dim, shape):
        dim.Clear()
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(model, data_prop=True).graph
    dims = {}
    for info in [*inferred.value_info, *inferred.input, *inferred.output]:
        dims[info.name] = [d.dim_value for d in info.type.tensor_type.shape.dim]
    weights = {init.name: list(init.dims) for init in graph.initializer}  # or Constant nodes
    total = 0
    for node in inferred.node:
        if node.op_type in ("Conv", "ConvTranspose"):
            w = weights.get(node.input[1]) or dims.get(node.input[1])
            out = dims.get(node.output[0]) if node.op_type == "Conv" else dims.get(node.input[0])
            if not w or not out or 0 in out:
                continue
            per_output = int(np.prod(w[1:]))  # Cin/groups x kh x kw
            total += int(np.prod(out)) * per_output
        elif node.op_type in ("MatMul", "Gemm"):
            a = dims.get(node.input[0]) or weights.get(node.input[0])
            b = dims.get(node.input[1]) or weights.get(node.input[1])
            if not a or not b or 0 in a or 0 in b:
                continue
            total += int(np.prod(a)) * b[-1]
    return total


def main() -> int:
    model_dir = Settings.from_env().model_dir
    rows = {}
    for name in OCR_MODELS:
        gen = GENERATIONS[name]
        directory = model_dir / gen.family
        specs = Manifest.load(directory / MANIFEST_NAME).models
        rows[name] = {
            "det480": macs(directory / specs["det"].file, (1, 3, 480, 480)),
            "det_photo": macs(directory / specs["det"].file, (1, 3, *PHOTO_CANVAS)),
            "rec320": macs(directory / specs["rec"].file, (1, 3, 48, 320)),
            "cls": macs(directory / specs["cls"].file, (1, 3, 48, 192)),
        }
    base = rows["ppocrv4"]
    det_rate = V4_DET_MS_480 / base["det480"]
    rec_rate = V4_REC_MS_320 / base["rec320"]
    print("| model | det GMAC 480x480 | rec GMAC 48x320 | est. det ms, 2000 px photo | "
          "est. rec ms per line | est. ms per photo (20 lines) | est. photos/s, 3 cores |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        det_ms = r["det_photo"] * det_rate
        rec_ms = r["rec320"] * rec_rate
        cls_ms = r["cls"] * det_rate
        photo = det_ms + PHOTO_LINES * (rec_ms + cls_ms)
        print(f"| {name} | {r['det480'] / 1e9:.2f} | {r['rec320'] / 1e9:.3f} | {det_ms:.0f} | "
              f"{rec_ms:.1f} | {photo:.0f} | {3000 / photo:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
