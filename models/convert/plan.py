"""From a family's ONNX manifest to what each converted model is built with and will take.

One function per family decides, per role, the toolkit plan (input shapes, mean/std to fold in)
and the spec the converted model gets in its manifest. Both come from the same ONNX spec, so
the runtime feeds exactly what was built:

- OCR: the static shape buckets listed in the ONNX manifest (``shapes``) become the toolkit's
  ``dynamic_input``, cut into parts of at most ``PART_PIXELS`` (one file each, roles ``det``,
  ``det@1``...: models/runtime/parts.py); input stays float32 NCHW, normalised by the pipeline
  (the recogniser pads batches with zeros *after* normalising, which uint8 input cannot express).
- CLIP image: mean/std folded into the model (``(x - mean/scale) / (std/scale)`` per channel:
  the toolkit takes them in pixel units), input uint8 NHWC: the worker hands over raw pixels.
- CLIP text: token ids as they are; if the toolkit rejects an operator it stays in ONNX.
- Faces: both models with their normalisation folded in, fed uint8 NHWC; the detector at its
  one 1x3x640x640 canvas, the recogniser at ``FACE_REC_BATCH`` faces per run (the pipeline
  pads the last run with black crops).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from models.manifest import ModelSpec
from models.ocr.generations import CHARSET_ROLE, is_ocr_family
from models.runtime.artifacts import BuildPlan
from models.runtime.parts import part_file, part_role

# Input pixels (N x H x W, summed over shapes) per converted file at most: rknn-toolkit2 2.5.0
# holds about 0.1 GB per million while building (measured: 16 detector shapes of 736 x 736..1216,
# 11.5 Mpx, 1.5 GB; 32 shapes, 29 Mpx, 3.3 GB). Larger shape sets are built in parts, one at a
# time (models/runtime/parts.py): the shipped profile converts in 2.4 GB instead of some 15.
PART_PIXELS = 16_000_000
# Faces per recogniser run on the NPU: benchmarks/bench_face.py measures the cost per face of
# each batch size and the padding a photo's faces leave (BENCHMARKS.md, "Faces").
FACE_REC_BATCH = 1


class PlanError(ValueError):
    """The ONNX manifest does not say enough to build a static model."""


@dataclass(frozen=True)
class RolePlan:
    """How one role is converted; ``plan`` is None for files copied as they are (the vocab)."""

    role: str
    source: ModelSpec
    plan: BuildPlan | None
    spec: ModelSpec  # the converted model's manifest entry (sha256 filled in after export)
    may_stay_onnx: bool = False  # an unsupported operator leaves it on onnxruntime


def rknn_name(onnx_file: str) -> str:
    """``ch_PP-OCRv4_det_infer.onnx`` -> ``ch_PP-OCRv4_det_infer.rknn``; drops an ``.fp32``."""
    stem = Path(onnx_file).stem
    return f"{stem.removesuffix('.fp32')}.rknn"


def relative(source_dir: Path, file: str, converted_dir: Path) -> str:
    """Path of ``source_dir/file`` as seen from ``converted_dir`` (both under MODEL_DIR)."""
    return os.path.relpath(Path(source_dir) / file, converted_dir)


def family_plan(
    family: str, specs: dict[str, ModelSpec], sha256: dict[str, str], target: str,
    source_dir: Path, converted_dir: Path,
) -> list[RolePlan]:
    """The plans of every role of ``family`` (an OCR generation's family, ``clip``, ``face``)."""
    planners = {"ocr": _ocr_role, "clip": _clip_role, "face": _face_role}
    kind = "ocr" if is_ocr_family(family) else family
    if kind not in planners:
        raise PlanError(f"no conversion recipe for family {family!r}; known: ocr..., clip, face")
    plans = []
    for role, spec in specs.items():
        onnx = relative(source_dir, spec.file, converted_dir)
        plans += planners[kind](role, spec, onnx, sha256.get(role, spec.sha256), target)
    return plans


def _base(spec: ModelSpec, onnx: str, digest: str, target: str,
          shapes: list[list[int]] | tuple[tuple[int, ...], ...], **folded: tuple[float, ...]
          ) -> BuildPlan:
    return BuildPlan(
        onnx=onnx, onnx_sha256=digest, target=target, input_name=spec.input_name,
        shapes=tuple(tuple(int(d) for d in s) for s in shapes), **folded,
    )


def _ocr_role(role: str, spec: ModelSpec, onnx: str, digest: str, target: str) -> list[RolePlan]:
    if role == CHARSET_ROLE:
        return [RolePlan(role, spec, None, spec)]  # the dictionary: copied as it is
    if not spec.shapes:
        raise PlanError(
            f"ocr/{role}: the OCR manifest lists no static shapes for the NPU; fetch the OCR "
            "models again with this version (mtai models fetch ocr) to get them"
        )
    if any(d <= 0 for shape in spec.shapes for d in shape):
        raise PlanError(f"ocr/{role}: shapes {spec.shapes} are not all static")
    plans = []
    for index, shapes in enumerate(split_shapes(spec.shapes)):
        plan = _base(spec, onnx, digest, target, shapes)
        file = part_file(rknn_name(spec.file), index)
        converted = replace(spec, file=file, shapes=[list(s) for s in plan.shapes])
        plans.append(RolePlan(part_role(role, index), spec, plan, converted))
    return plans


def split_shapes(
    shapes: Sequence[Sequence[int]], budget: int | None = None
) -> list[list[list[int]]]:
    """Shapes in manifest order, cut into consecutive parts of at most ``budget`` (default
    ``PART_PIXELS``) input pixels (N x H x W summed; a shape over it gets a part of its own)."""
    budget = PART_PIXELS if budget is None else budget
    parts: list[list[list[int]]] = []
    used = budget
    for shape in shapes:
        pixels = math.prod(shape) // shape[1]
        if used + pixels > budget:
            parts.append([])
            used = 0
        parts[-1].append(list(shape))
        used += pixels
    return parts


def _clip_role(role: str, spec: ModelSpec, onnx: str, digest: str, target: str) -> list[RolePlan]:
    if role == "image":
        return [_clip_image(spec, onnx, digest, target)]
    if role == "text":
        plan = _base(spec, onnx, digest, target, [spec.shape])
        return [RolePlan(role, spec, plan, replace(spec, file=rknn_name(spec.file)), True)]
    return [RolePlan(role, spec, None, spec)]  # the vocab: copied as it is


def _clip_image(spec: ModelSpec, onnx: str, digest: str, target: str) -> RolePlan:
    return _folded("clip/image", "image", spec, onnx, digest, target, tuple(spec.shape))


def _folded(label: str, role: str, spec: ModelSpec, onnx: str, digest: str, target: str,
            shape: tuple[int, ...]) -> RolePlan:
    """An NCHW float model built at ``shape`` with mean/std folded in, taking uint8 NHWC."""
    if spec.layout != "NCHW" or spec.mean_std_folded or len(shape) != 4 or min(shape) <= 0:
        raise PlanError(f"{label}: expected an NCHW float model with mean/std outside, got "
                        f"{spec.layout} {spec.dtype} {list(shape)}, folded={spec.mean_std_folded}")
    recipe = spec.preprocess
    mean = tuple(m / recipe.scale for m in recipe.mean)  # in 0..255 pixel units
    std = tuple(s / recipe.scale for s in recipe.std)
    plan = _base(spec, onnx, digest, target, [shape], mean_values=mean, std_values=std)
    n, c, h, w = shape
    converted = replace(
        spec, file=rknn_name(spec.file), layout="NHWC", dtype="uint8", shape=(n, h, w, c),
        mean_std_folded=True, shapes=[[n, h, w, c]],
    )
    return RolePlan(role, spec, plan, converted)


def _face_role(role: str, spec: ModelSpec, onnx: str, digest: str, target: str) -> list[RolePlan]:
    """The detector at its canvas, the recogniser at FACE_REC_BATCH faces per run."""
    shape = tuple(spec.shape) if role == "det" else (FACE_REC_BATCH, *spec.shape[1:])
    return [_folded(f"face/{role}", role, spec, onnx, digest, target, shape)]
