"""What was built into each converted model, recorded next to it so nothing has to be guessed.

``mtai convert`` writes, per family, ``<model_dir>/rknn-<target>/<family>/``:

- ``manifest.json``: the usual manifest, describing what the *converted* file takes (e.g. uint8
  NHWC with mean/std folded for the CLIP image tower, the static shape buckets for OCR). The
  pipelines read it exactly as they read the ONNX manifest.
- ``build.json`` (this module): per model, the ONNX source and its sha256, the toolkit options
  (input shapes, mean/std values), the source model's metadata (the OCR character list: a
  .rknn file carries no ONNX metadata) and the self-check result.

The device backend reads the manifest (static shapes, layout) and the metadata; the simulator
backend rebuilds the model from the recorded plan, because rknn-toolkit2 cannot simulate a
.rknn file; doctor reads the toolkit version to compare it with librknnrt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.manifest import MANIFEST_NAME, Manifest, ManifestError, ModelSpec, write_atomic

BUILD_NAME = "build.json"
BUILD_FORMAT = 1


@dataclass(frozen=True)
class BuildPlan:
    """Everything rknn-toolkit2 needs to build one model; equal plans build equal models."""

    onnx: str  # source ONNX, relative to the family directory of the converted model
    onnx_sha256: str
    target: str  # rk3588, rk3576, ...
    input_name: str
    shapes: tuple[tuple[int, ...], ...]  # one: static input; several: dynamic_input buckets
    mean_values: tuple[float, ...] | None = None  # per channel, in 0..255 pixel units
    std_values: tuple[float, ...] | None = None
    # built from the graph as onnxslim simplifies it (same computation, shape arithmetic and
    # constant subgraphs folded): rknn-toolkit2 2.5.0 crashes on the raw PP-OCRv6 recognisers
    simplify: bool = False

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class BuildEntry:
    """One role of a converted family: its file, how it was built, what its source said."""

    file: str  # the .rknn file, or the source .onnx when the model stayed on the CPU
    plan: BuildPlan
    metadata: dict[str, str] = field(default_factory=dict)
    kept_onnx: str = ""  # non-empty: why this model was not converted (runs on onnxruntime)
    check: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BuildRecord:
    family: str
    target: str
    toolkit: str  # rknn-toolkit2 version that built the files
    models: dict[str, BuildEntry]
    format: int = BUILD_FORMAT

    def save(self, path: Path) -> None:
        text = json.dumps(asdict(self), indent=2, ensure_ascii=False) + "\n"
        write_atomic(Path(path), text.encode("utf-8"))

    @classmethod
    def load(cls, path: Path) -> BuildRecord:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            if raw.get("format") != BUILD_FORMAT:
                raise ManifestError(f"{path}: unsupported build record format {raw.get('format')}")
            models = {role: _entry(e) for role, e in raw["models"].items()}
            return cls(raw["family"], raw["target"], raw["toolkit"], models)
        except FileNotFoundError as exc:
            raise ManifestError(f"{path}: missing; convert again (mtai convert)") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ManifestError(f"{path}: malformed build record ({exc!r})") from exc

    def role_of(self, file: str) -> str:
        for role, entry in self.models.items():
            if entry.file == file:
                return role
        raise ManifestError(f"{BUILD_NAME} of {self.family} lists no model file {file!r}")


def _entry(raw: dict[str, Any]) -> BuildEntry:
    plan = dict(raw["plan"])
    plan["shapes"] = tuple(tuple(int(d) for d in s) for s in plan["shapes"])
    for key in ("mean_values", "std_values"):
        plan[key] = tuple(float(v) for v in plan[key]) if plan.get(key) is not None else None
    return BuildEntry(
        file=raw["file"], plan=BuildPlan(**plan), metadata=dict(raw.get("metadata", {})),
        kept_onnx=raw.get("kept_onnx", ""), check=dict(raw.get("check", {})),
        warnings=list(raw.get("warnings", [])),
    )


@dataclass(frozen=True)
class ConvertedModel:
    """A converted model file with its manifest spec and its build entry."""

    path: Path
    spec: ModelSpec
    entry: BuildEntry
    record: BuildRecord

    @property
    def source_onnx(self) -> Path:
        return self.path.parent / self.entry.plan.onnx

    def static_shapes(self) -> list[tuple[int, ...]]:
        """The input shapes the model was built for: the only ones it can run."""
        shapes = [tuple(int(d) for d in s) for s in (self.spec.shapes or [self.spec.shape])]
        if any(d < 0 for s in shapes for d in s):
            raise ManifestError(
                f"{self.path}: manifest gives a dynamic input shape {shapes}; an RKNN model "
                "needs static shapes (convert again)"
            )
        return shapes


def converted_model(path: Path) -> ConvertedModel:
    """Read the manifest and build record beside ``path`` and find the entry of that file."""
    path = Path(path)
    manifest = Manifest.load(path.parent / MANIFEST_NAME)
    record = BuildRecord.load(path.parent / BUILD_NAME)
    role = record.role_of(path.name)
    if role not in manifest.models or manifest.models[role].file != path.name:
        raise ManifestError(f"{path.parent}: manifest and {BUILD_NAME} disagree on {role}")
    return ConvertedModel(path, manifest.models[role], record.models[role], record)
