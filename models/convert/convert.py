"""`mtai convert`: ONNX families in MODEL_DIR to RKNN, checked in the simulator, then published.

Layout: ``<model_dir>/rknn-<target>/<family>/`` holds the .rknn files, their ``manifest.json``
(what each converted model takes), ``build.json`` (how it was built, the check's figures) and
``convert.log`` (the toolkit's own output) and copies of other files the family needs (the CLIP
vocab), so the directory can be copied to a board as it is. A model the toolkit cannot convert
(an unsupported operator; the CLIP text tower may be one) is referenced in place as
``../../<family>/<file>`` and runs on onnxruntime: the board then needs that family's ONNX too.

Everything is built in a staging directory beside the ONNX families, checked there through the
real pipelines on the simulator, and only moved into place when every check passes: a failed
conversion leaves the previous converted family (or none) untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from models.convert import check, samples, toolkit
from models.convert.plan import PlanError, RolePlan, family_plan
from models.manifest import MANIFEST_NAME, Manifest, family_dir, sha256_file
from models.ocr.detect import det_input_size
from models.ocr.generations import GENERATIONS, LANG_RECOGNISERS, is_ocr_family
from models.runtime.artifacts import BUILD_NAME, BuildEntry, BuildRecord
from models.runtime.parts import ShapeRouter, base_role
from models.runtime.soc import SUPPORTED_SOCS, rknn_root

if TYPE_CHECKING:
    from models.ocr.pipeline import OcrPipeline

FAMILIES = (*(g.family for g in GENERATIONS.values()), "clip", "face")
TARGETS = SUPPORTED_SOCS
LOG_NAME = "convert.log"
Progress = Callable[[str], None]


class ConversionError(RuntimeError):
    """Nothing was written for this family; the message says why."""


@dataclass
class FamilyReport:
    family: str
    target: str
    directory: Path
    toolkit: str
    build_seconds: dict[str, float] = field(default_factory=dict)
    kept_onnx: dict[str, str] = field(default_factory=dict)
    checks: list[check.CheckResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Samples:
    """Where the self-check's inputs come from (None: generated ones)."""

    ocr: Path | None = None
    clip: Path | None = None
    face: Path | None = None


def available_families(model_dir: Path) -> list[str]:
    """Families with an ONNX manifest in ``model_dir`` (what `make convert` converts): every
    OCR generation installed (and its language variants), CLIP and faces."""
    langs = [f"{g.family}-{lang}" for g in GENERATIONS.values() for lang in LANG_RECOGNISERS]
    return [f for f in (*FAMILIES, *langs) if (family_dir(model_dir, f) / MANIFEST_NAME).is_file()]


def convert_family(
    model_dir: Path, family: str, target: str = "rk3588", *, sample_dirs: Samples | None = None,
    progress: Progress = print, release: bool = True,
) -> FamilyReport:
    """Convert, check and publish one family for one target; ConversionError if not written.

    ``release=False`` keeps this process's builds for later ``rknn-sim`` sessions (tests; the
    parts of a model converted in parts are rebuilt when a session needs them).
    """
    if target not in TARGETS:
        raise ConversionError(f"unsupported target {target!r}; choose from {', '.join(TARGETS)}")
    try:
        version, warnings = toolkit.toolkit_version()
    except toolkit.ToolkitError as exc:
        raise ConversionError(str(exc)) from exc
    source = family_dir(model_dir, family)
    manifest = Manifest.load(source / MANIFEST_NAME)
    manifest.verify(source)
    staging = Path(tempfile.mkdtemp(prefix=f".rknn-staging-{target}-", dir=model_dir))
    stage = staging / family
    stage.mkdir()
    report = FamilyReport(family, target, rknn_root(model_dir, target) / family, version,
                          warnings=list(warnings))
    for line in warnings:
        progress(f"warning: {line}")
    try:
        try:
            plans = family_plan(family, manifest.models, {}, target, source, stage)
        except PlanError as exc:
            raise ConversionError(str(exc)) from exc
        record = _build_all(plans, family, target, version, source, stage, report, progress)
        record.save(stage / BUILD_NAME)
        report.checks, idle = _self_check(family, model_dir, staging, record,
                                          sample_dirs or Samples(), progress)
        failed = [c for c in report.checks if not c.passed]
        if failed:
            raise ConversionError(
                f"{family} for {target}: self-check failed, nothing written:\n  "
                + "\n  ".join(c.summary() for c in failed)
            )
        _with_checks(record, report.checks, idle).save(stage / BUILD_NAME)
        _publish(stage, report.directory)
        progress(f"{family} for {target}: written to {report.directory}")
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if release:
            toolkit.forget()


def _build_all(plans: list[RolePlan], family: str, target: str, version: str, source: Path,
               stage: Path, report: FamilyReport, progress: Progress) -> BuildRecord:
    """Build and export every role into ``stage``; write its manifest; return the record."""
    specs, entries = {}, {}
    parted = {base_role(p.role) for p in plans if p.role != base_role(p.role)}
    for item in plans:
        if item.plan is None:  # not a model (the CLIP vocab): copied, so the directory is whole
            shutil.copyfile(source / item.source.file, stage / item.spec.file)
            specs[item.role] = item.spec
            continue
        shapes = len(item.plan.shapes)
        progress(f"{family}/{item.role}: building {item.spec.file} for {target} (fp16, "
                 f"{shapes} input shape{'s' if shapes > 1 else ''})")
        onnx_path = source / item.source.file
        try:
            built, item = _build_role(item, onnx_path, stage, family, progress)
        except toolkit.UnsupportedOperator as exc:
            if not item.may_stay_onnx:
                raise ConversionError(f"{family}/{item.role}: {exc}; nothing written") from exc
            note = f"{exc}; it stays in ONNX and runs on the CPU"
            progress(f"{family}/{item.role}: {note}")
            report.kept_onnx[item.role] = note
            specs[item.role] = replace(item.source, file=item.plan.onnx)
            entries[item.role] = BuildEntry(file=item.plan.onnx, plan=item.plan, kept_onnx=note)
            continue
        except toolkit.ToolkitError as exc:
            raise ConversionError(f"{family}/{item.role}: {exc}") from exc
        target_file = stage / item.spec.file
        try:
            toolkit.export(built, target_file, stage / LOG_NAME)
        except toolkit.ToolkitError as exc:
            raise ConversionError(f"{family}/{item.role}: {exc}") from exc
        if base_role(item.role) in parted:  # one part in memory at a time; the check rebuilds
            toolkit.forget(item.plan)
        report.build_seconds[item.role] = built.seconds
        size = target_file.stat().st_size / 1e6
        progress(f"{family}/{item.role}: built in {built.seconds:.1f} s ({size:.1f} MB)")
        if built.cpu_operators:
            progress(f"{family}/{item.role}: no NPU kernel, run on the CPU by the runtime: "
                     f"{', '.join(built.cpu_operators)}")
        origin = (f"convert:{item.plan.onnx} sha256:{item.plan.onnx_sha256} "
                  f"rknn-toolkit2=={version} {target} fp16")
        specs[item.role] = replace(item.spec, sha256=sha256_file(target_file), source=origin)
        entries[item.role] = BuildEntry(
            file=item.spec.file, plan=item.plan, metadata=_onnx_metadata(onnx_path),
            warnings=[f"CPU fallback: {op}" for op in built.cpu_operators],
        )
    Manifest(family=family, models=specs).save(stage / MANIFEST_NAME)
    return BuildRecord(family=family, target=target, toolkit=version, models=entries)


def _build_role(item: RolePlan, onnx_path: Path, stage: Path, family: str,
                progress: Progress) -> tuple[toolkit.Built, RolePlan]:
    """Build one role; an OCR model the toolkit fails on as it is gets a second try from the
    onnxslim-simplified graph (rknn-toolkit2 2.5.0 crashes in a fusion pass on the raw PP-OCRv6
    recognisers), recorded in its plan so the simulator rebuilds the same."""
    label = f"{family}/{item.role}"
    try:
        with _ticking(progress, label):
            return toolkit.build(item.plan, onnx_path, stage / LOG_NAME), item
    except toolkit.UnsupportedOperator:
        raise
    except toolkit.ToolkitError as exc:
        if not is_ocr_family(family) or item.plan is None or item.plan.simplify:
            raise
        progress(f"{label}: the toolkit failed on the graph as it is ({str(exc).splitlines()[0]}"
                 "); retrying on the onnxslim-simplified graph")
    plan = replace(item.plan, simplify=True)
    item = replace(item, plan=plan)
    with _ticking(progress, label):
        return toolkit.build(plan, onnx_path, stage / LOG_NAME), item


def _onnx_metadata(path: Path) -> dict[str, str]:
    """The ONNX custom metadata (the OCR recogniser's character list lives there)."""
    import onnx  # a dependency of rknn-toolkit2, present wherever conversion runs

    model = onnx.load(str(path), load_external_data=False)
    return {prop.key: prop.value for prop in model.metadata_props}


def _self_check(family: str, model_dir: Path, staging: Path, record: BuildRecord,
                sample_dirs: Samples, progress: Progress
                ) -> tuple[list[check.CheckResult], list[str]]:
    """The checks' results, and the parts no sample needed (built, never run)."""
    converted = [role for role, e in record.models.items() if not e.kept_onnx]
    if not converted:
        return [], []
    try:
        if is_ocr_family(family):
            items, origin = samples.ocr_samples(sample_dirs.ocr)
            # in detector-size order, so a detector converted in parts is rebuilt in the
            # simulator mostly one part after the other (models/runtime/parts.py)
            items = sorted(items, key=lambda item: det_input_size(*item[1].shape[:2]))
            progress(f"{family}: self-check, simulator against onnxruntime on {origin}")
            reference, candidate = check.load_ocr_pair(model_dir, staging, family)
            result = check.check_ocr(reference, candidate, items, progress)
            idle = _parts_not_run(candidate, record)
            if idle:
                progress(f"{family}: no sample needed a shape of {', '.join(idle)}: built from "
                         "the same plans as the parts checked, not run")
            return [result], idle
        if family == "face":
            photos, origin = samples.face_samples(sample_dirs.face)
            progress(f"{family}: self-check, simulator against onnxruntime on {origin}")
            reference, candidate = check.load_face_pair(model_dir, staging)
            return check.check_faces(reference, candidate, photos, progress), []
        photos, origin = samples.clip_samples(sample_dirs.clip)
        progress(f"{family}: self-check, simulator against onnxruntime on {origin}")
        reference, candidate = check.load_clip_pair(model_dir, staging)
        results = [check.check_vectors("image", reference.image, candidate.image, photos,
                                       progress)]
        if "text" in converted:
            texts = [(text, text) for text in samples.CLIP_TEXTS]
            results.append(check.check_vectors(
                "text", reference.text(), candidate.text(), texts, progress))
        return results, []
    except (toolkit.ToolkitError, ValueError) as exc:
        raise ConversionError(f"{family}: the self-check could not run: {exc}") from exc


def _parts_not_run(pipeline: OcrPipeline, record: BuildRecord) -> list[str]:
    """Roles of the parts the check's pipeline never opened (no sample needed their shapes)."""
    idle = []
    for model in (pipeline.detector, pipeline.classifier, pipeline.recognizer):
        router = model.session
        if isinstance(router, ShapeRouter):
            idle += [record.role_of(file) for i, (file, _) in enumerate(router.parts)
                     if i not in router.used]
    return sorted(idle)


def _with_checks(record: BuildRecord, results: list[check.CheckResult],
                 idle: Sequence[str] = ()) -> BuildRecord:
    """The record with each check's figures on the roles it covers; ``idle`` parts get them
    marked ``"run": false``."""
    models = dict(record.models)
    for result in results:
        covered = result.role.split("+")
        for role in models:
            if base_role(role) in covered:
                figures = {**result.as_json(), "run": role not in idle}
                models[role] = replace(models[role], check=figures)
    return replace(record, models=models)


def _publish(stage: Path, destination: Path) -> None:
    """Swap the checked family into place with renames (the old copy is removed after)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    old = destination.with_name(f".{destination.name}.old-{os.getpid()}")
    if destination.exists():
        os.replace(destination, old)
    os.replace(stage, destination)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def _ticking(progress: Progress, label: str, every: float = 30.0) -> Iterator[None]:
    """Say 'still building' every ``every`` seconds: a large model builds for minutes."""
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        while not done.wait(every):
            progress(f"{label}: still building ({time.monotonic() - started:.0f} s)")

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
