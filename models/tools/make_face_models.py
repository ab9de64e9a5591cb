"""Generate random-weight face models with the InsightFace packs' ONNX contract.

Why: no InsightFace weights are reachable from the machines the tests run on, yet the face
code must be tested end to end on files shaped like the real ones, and against insightface
itself. These models have buffalo_l's input and output names and shapes: an SCRFD detector
(``input.1`` of 1x3xHxW, outputs ``448 471 494`` scores, ``451 474 497`` boxes, ``454 477 500``
landmarks at strides 8, 16, 32, two anchors per cell, unbatched) and an ArcFace recogniser
(``input.1`` of Nx3x112x112, output ``683`` of Nx512). Nothing here is trained: the weights
are seeded noise, shaped so the pipeline has work to do:

- the first convolution's kernels sum to zero, so a flat image gives no response and no face,
  while texture (edges, photos, drawn faces) drives the score head over the threshold in
  places; box and landmark heads are biased to face-sized boxes with the five points laid out
  like a face, so decoding, NMS and alignment run on plausible geometry;
- the recogniser ends in a dense layer over the spatial features, so a crop moved by one
  pixel gives another embedding: alignment errors cannot hide.

Two sizes: ``tiny`` (tests; well under a MB, made in a fraction of a second, never
committed: tests/face_fixtures.py generates them per session) and ``full`` (benchmarks: the
detector's and recogniser's real size and cost, SCRFD-10GF-like and IResNet-50, 17 MB and
174 MB, also generated, never committed)::

    python -m models.tools.make_face_models --size full --out /tmp/face-full
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240613
STRIDES = (8, 16, 32)
SCORE_NAMES = ("448", "471", "494")
BOX_NAMES = ("451", "474", "497")
KPS_NAMES = ("454", "477", "500")
REC_OUTPUT = "683"
INPUT = "input.1"
# The five points (eyes, nose tip, mouth corners) relative to the anchor, in strides.
FACE_POINTS = np.array([[-0.55, -0.45], [0.55, -0.45], [0.0, 0.1], [-0.45, 0.65], [0.45, 0.65]])


@dataclass
class Graph:
    """A tiny ONNX graph builder: named nodes, initialisers, multiply-accumulate count."""

    rng: np.random.Generator
    nodes: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    macs: int = 0
    count: int = 0

    def name(self, op: str) -> str:
        self.count += 1
        return f"{op.lower()}_{self.count}"  # never "Sub..."/"Mul...": see insightface arcface

    def const(self, array: np.ndarray, label: str = "w") -> str:
        key = f"{label}_{len(self.weights)}"
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(array), key))
        return key

    def op(self, op: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        out = output or self.name(op)
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.name(op), **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, size: int, hw: int, stride: int = 1,
             gain: float = 1.0, bias: np.ndarray | float = 0.0, zero_sum: bool = False) -> str:
        """``hw`` is the output side at a 640 (or 112) input, for the MAC count only."""
        std = gain * np.sqrt(2.0 / (cin * size * size))
        w = self.rng.normal(0, std, (cout, cin, size, size)).astype(np.float32)
        if zero_sum:
            w -= w.mean(axis=(1, 2, 3), keepdims=True)
        b = (np.broadcast_to(np.asarray(bias, np.float32), (cout,))
             + self.rng.normal(0, 0.01, cout)).astype(np.float32)
        self.macs += hw * hw * cout * cin * size * size
        pad = size // 2
        return self.op("Conv", [x, self.const(w), self.const(b, "b")], kernel_shape=[size, size],
                       strides=[stride, stride], pads=[pad] * 4)

    def relu(self, x: str) -> str:
        return self.op("Relu", [x])

    def prelu(self, x: str, channels: int) -> str:
        slope = np.full((channels, 1, 1), 0.25, np.float32)
        return self.op("PRelu", [x, self.const(slope, "slope")])

    def model(self, inputs: list, outputs: list, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "random", inputs, outputs, initializer=self.weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        model.doc_string = doc
        for key, value in (("generator", "models/tools/make_face_models.py"), ("seed", str(SEED))):
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        return model


def _heads(g: Graph, features: dict[int, tuple[str, int]], score_bias: float,
           score_gain: float) -> list:
    """SCRFD's 9 outputs from one feature map per stride: scores (sigmoid), box distances and
    landmark offsets, each laid out cell by cell with 2 anchors (NCHW -> NHWC -> rows)."""
    outputs: dict[str, tuple[str, int]] = {}
    for level, stride in enumerate(STRIDES):
        x, channels = features[stride]
        hw = 640 // stride
        logits = g.conv(x, channels, 2, 1, hw, gain=score_gain, bias=score_bias)
        box = g.conv(x, channels, 8, 1, hw, gain=0.05, bias=1.6)
        kps_bias = np.tile((FACE_POINTS * 1.6).reshape(-1), 2)
        kps = g.conv(x, channels, 20, 1, hw, gain=0.03, bias=kps_bias)
        heads = ((SCORE_NAMES[level], g.op("Sigmoid", [logits]), 1),
                 (BOX_NAMES[level], box, 4), (KPS_NAMES[level], kps, 10))
        for name, tensor, width in heads:
            nhwc = g.op("Transpose", [tensor], perm=[0, 2, 3, 1])
            shape = g.const(np.array([-1, width], np.int64), "shape")
            outputs[name] = (g.op("Reshape", [nhwc, shape], output=name), width)
    order = (*SCORE_NAMES, *BOX_NAMES, *KPS_NAMES)
    return [helper.make_tensor_value_info(n, TensorProto.FLOAT, [f"{n}_rows", outputs[n][1]])
            for n in order]


def _det_input() -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, 3, "?", "?"])


def tiny_detector(rng: np.random.Generator) -> tuple[onnx.ModelProto, int]:
    g = Graph(rng)
    x = g.relu(g.conv(INPUT, 3, 8, 3, 320, 2, gain=2.0, zero_sum=True))
    x = g.relu(g.conv(x, 8, 16, 3, 160, 2))
    features = {}
    for stride, hw in ((8, 80), (16, 40), (32, 20)):
        x = g.relu(g.conv(x, 16, 16, 3, hw, 2))
        features[stride] = (x, 16)
    outputs = _heads(g, features, score_bias=-7.0, score_gain=3.0)
    return g.model([_det_input()], outputs, "random-weight SCRFD test model"), g.macs


def _block(g: Graph, x: str, cin: int, cout: int, hw: int, stride: int) -> str:
    """A residual basic block (two 3x3 convolutions), projected when the shape changes."""
    y = g.relu(g.conv(x, cin, cout, 3, hw, stride))
    y = g.conv(y, cout, cout, 3, hw, 1, gain=0.3)
    shortcut = x if (cin, stride) == (cout, 1) else g.conv(x, cin, cout, 1, hw, stride)
    return g.relu(g.op("Add", [y, shortcut]))


def full_detector(rng: np.random.Generator) -> tuple[onnx.ModelProto, int]:
    """SCRFD-10GF's shape: a ResNet backbone of (56, 88, 88, 224) channels in (3, 4, 2, 3)
    blocks, a top-down neck to 56 channels and two 3x3 convolutions of 80 per head."""
    g = Graph(rng)
    x = g.relu(g.conv(INPUT, 3, 28, 3, 320, 2, gain=2.0, zero_sum=True))
    x = g.relu(g.conv(x, 28, 28, 3, 320))
    x = g.relu(g.conv(x, 28, 56, 3, 320))
    x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    channels, hw, taps = 56, 160, {}
    for width, blocks, stride in ((56, 3, 1), (88, 4, 2), (88, 2, 2), (224, 3, 2)):
        hw //= stride
        for index in range(blocks):
            x = _block(g, x, channels, width, hw, stride if index == 0 else 1)
            channels = width
        taps[640 // hw] = (x, width)
    lateral = {s: g.conv(t, c, 56, 1, 640 // s) for s, (t, c) in taps.items() if s in STRIDES}
    top = lateral[32]
    merged = {32: top}
    for stride in (16, 8):
        up = g.op("Resize", [top, "", g.const(np.array([1, 1, 2, 2], np.float32), "scales")],
                  mode="nearest")
        top = g.op("Add", [lateral[stride], up])
        merged[stride] = top
    features = {}
    for stride in STRIDES:
        y = g.conv(merged[stride], 56, 56, 3, 640 // stride)
        for cin in (56, 80):
            y = g.relu(g.conv(y, cin, 80, 3, 640 // stride))
        features[stride] = (y, 80)
    outputs = _heads(g, features, score_bias=-9.0, score_gain=1.0)
    return g.model([_det_input()], outputs, "random-weight SCRFD-10GF-sized model"), g.macs


def _rec_io() -> tuple[onnx.ValueInfoProto, onnx.ValueInfoProto]:
    return (helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["None", 3, 112, 112]),
            helper.make_tensor_value_info(REC_OUTPUT, TensorProto.FLOAT, ["None", 512]))


def _dense(g: Graph, x: str, features: int) -> str:
    flat = g.op("Flatten", [x], axis=1)
    w = g.rng.normal(0, np.sqrt(1.0 / features), (features, 512)).astype(np.float32)
    g.macs += features * 512
    return g.op("Gemm", [flat, g.const(w), g.const(g.rng.normal(0, 0.01, 512).astype(np.float32),
                                                    "b")], output=REC_OUTPUT)


def tiny_recognizer(rng: np.random.Generator) -> tuple[onnx.ModelProto, int]:
    g = Graph(rng)
    x = g.relu(g.conv(INPUT, 3, 8, 3, 56, 2, gain=2.0))
    for hw in (28, 14, 7):
        x = g.relu(g.conv(x, 8 if hw == 28 else 16, 16, 3, hw, 2))
    _dense(g, x, 16 * 7 * 7)
    image, embedding = _rec_io()
    return g.model([image], [embedding], "random-weight ArcFace test model"), g.macs


def full_recognizer(rng: np.random.Generator) -> tuple[onnx.ModelProto, int]:
    """IResNet-50 (w600k_r50's architecture): 3/4/14/3 blocks of 64/128/256/512, each block's
    second convolution strided, PReLU, then a 7x7x512 -> 512 dense layer (batch norms folded)."""
    g = Graph(rng)
    x = g.prelu(g.conv(INPUT, 3, 64, 3, 112), 64)
    channels, hw = 64, 112
    for width, blocks in ((64, 3), (128, 4), (256, 14), (512, 3)):
        for index in range(blocks):
            stride = 2 if index == 0 else 1
            out_hw = hw // stride
            y = g.prelu(g.conv(x, channels, width, 3, hw), width)
            y = g.conv(y, width, width, 3, out_hw, stride, gain=0.2)
            shortcut = g.conv(x, channels, width, 1, out_hw, 2) if index == 0 else x
            x = g.op("Add", [y, shortcut])
            channels, hw = width, out_hw
    _dense(g, x, 512 * 7 * 7)
    image, embedding = _rec_io()
    return g.model([image], [embedding], "random-weight IResNet-50-sized model"), g.macs


SIZES = {"tiny": (tiny_detector, tiny_recognizer), "full": (full_detector, full_recognizer)}
FILES = ("det_10g.onnx", "w600k_r50.onnx")  # buffalo_l's names


def generate(out: Path, size: str = "tiny", seed: int = SEED) -> tuple[Path, Path]:
    """Write the detector and recogniser into ``out`` under buffalo_l's file names."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, (build, name) in enumerate(zip(SIZES[size], FILES)):
        model, _ = build(np.random.default_rng(seed + index))
        path = out / name
        onnx.save(model, str(path))
        paths.append(path)
    return paths[0], paths[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for index, build in enumerate(SIZES[args.size]):
        model, macs = build(np.random.default_rng(args.seed + index))
        params = sum(int(np.prod(w.dims)) for w in model.graph.initializer)
        path = args.out / FILES[index]
        args.out.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(path))
        unit = "640x640 canvas" if index == 0 else "112x112 face"
        print(f"wrote {path}: {path.stat().st_size / 1e6:.1f} MB, {params / 1e6:.2f} M "
              f"parameters, {macs / 1e9:.2f} G multiply-adds per {unit}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
