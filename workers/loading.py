"""Load the models a worker owns, once, before it says READY.

A model that is not installed (or fails verification) is not a crash: the worker serves
what it has and answers the other tasks with the command that installs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from models.clip import ClipModels
from models.face import FacePipeline
from models.manifest import MANIFEST_NAME, Manifest, ManifestError, ModelIntegrityError, family_dir
from models.ocr.generations import family_name, generation
from models.ocr.pipeline import OcrPipeline
from models.runtime.soc import place_family
from protocol.settings import Settings
from workers.tasks import (
    TaskRunner,
    clip_image_handler,
    clip_text_handler,
    face_handler,
    ocr_handler,
    sleep_handler,
)

log = logging.getLogger(__name__)


def load_runner(
    settings: Settings, backend: str, core: int
) -> tuple[TaskRunner, dict[str, Any]]:
    """Build the task table for a worker on NPU core ``core`` with the resolved ``backend``;
    also return what this worker reports in READY."""
    model_dir = settings.model_dir
    threads = settings.threads_per_worker
    runner = TaskRunner(handlers={"sleep": sleep_handler})
    device = {"rknn": f"npu core {core}", "rknn-sim": "rknn-toolkit2 simulator (x86)"}.get(
        backend, f"cpu, {threads or 'all'} threads")
    target = settings.rknn_target
    ocr_family = family_name(settings.ocr_model, settings.ocr_lang)  # OCR_MODEL, OCR_LANG
    ocr_dir, ocr_backend = place_family(model_dir, ocr_family, backend, target)  # NPU: converted
    clip_dir, clip_backend = place_family(model_dir, "clip", backend, target)
    face_dir, face_backend = place_family(model_dir, "face", backend, target)
    info: dict[str, Any] = {"backend": backend, "core": core, "device": device, "models": {}}
    versions = info["versions"] = {"sleep": ""}  # task -> model version (workers/capabilities.py)
    started = time.monotonic()

    ocr = _load("ocr", lambda: OcrPipeline.load(ocr_dir, threads=threads, backend=ocr_backend,
                                                 core=core, family=ocr_family),
                runner, model_dir, f" --ocr-model {settings.ocr_model}")
    if ocr is not None:
        ocr(np.full((64, 256, 3), 255, dtype=np.uint8))  # warm-up: arenas before READY
        runner.handlers["ocr"] = ocr_handler(ocr)
        lang = f", {settings.ocr_lang} recogniser" if settings.ocr_lang else ""
        info["models"]["ocr"] = generation(settings.ocr_model).title + lang
        info["ocr_model"] = settings.ocr_model
        # the family directory in use: one generation (and language) never mixes with another
        versions.update(dict.fromkeys(FAMILY_TASKS["ocr"], model_version(model_dir, ocr_family)))

    clip = _load("clip", lambda: ClipModels.load(
        clip_dir, backend=clip_backend, threads=threads, core=core,
        load_text=settings.auto_load_txt_modal, bgr_compat=settings.clip_bgr_compat,
    ), runner, model_dir)
    if clip is not None:
        clip.image(np.zeros((*clip.image.size, 3), np.uint8))
        runner.handlers["clip_image"] = clip_image_handler(clip)
        runner.handlers["clip_text"] = clip_text_handler(clip)
        compat = " (BGR compat)" if clip.image.bgr_compat else ""
        info["models"]["clip"] = f"Chinese-CLIP ViT-B-16{compat}"
        info["clip_text"] = "loaded" if clip.text_loaded else "loads on first query"
        version = model_version(model_dir, "clip") + ("+bgr" if clip.image.bgr_compat else "")
        versions.update(dict.fromkeys(FAMILY_TASKS["clip"], version))

    face = _load("face", lambda: FacePipeline.load(
        face_dir, backend=face_backend, threads=threads, core=core, pack=settings.face_model,
    ), runner, model_dir)
    if face is not None:
        face(np.zeros((64, 64, 3), np.uint8))  # warm-up: the detector, then the recogniser
        face.recognizer(np.zeros((1, 112, 112, 3), np.uint8))
        runner.handlers["face"] = face_handler(face, settings.face_min_score)
        info["models"]["face"] = f"InsightFace {face.pack.name} ({face.pack.detector} + ArcFace)"
        info["face"] = {"pack": face.pack.name, "detector": face.pack.detector,
                        "min_score": settings.face_min_score}
        version = f"{model_version(model_dir, 'face')}+min{settings.face_min_score:g}"
        versions.update(dict.fromkeys(FAMILY_TASKS["face"], version))
    info["load_seconds"] = round(time.monotonic() - started, 2)
    info["tasks"] = sorted({*runner.handlers, *runner.missing})
    return runner, info


FAMILY_TASKS = {"ocr": ("ocr",), "clip": ("clip_image", "clip_text"), "face": ("face",)}


def model_version(model_dir: Any, family: str) -> str:
    """``<family>-<digest>``: a digest of the SHA-256 of every source model file the family's
    manifest pins. Two workers with the same version run the same weights (an NPU conversion of
    those weights counts as the same model); the broker never mixes two versions in one task."""
    manifest = Manifest.load(family_dir(model_dir, family) / MANIFEST_NAME)
    pinned = sorted((role, spec.sha256) for role, spec in manifest.models.items())
    return f"{family}-{hashlib.sha256(json.dumps(pinned).encode()).hexdigest()[:12]}"


def _load(family: str, load: Callable[[], Any], runner: TaskRunner, model_dir: Any,
          fetch: str = "") -> Any:
    """Run a loader; on absent or damaged files record why the family's tasks are missing.

    The reason goes to clients that may hold no API key (Immich's routes are open), so it names
    no file or directory; the log line beside it does. ``fetch``: the options of the fetch
    command that installs what is missing (the OCR model).
    """
    try:
        return load()
    except FileNotFoundError as exc:
        log.warning("%s models not installed in %s: %s", family, model_dir, exc)
        reason = f"the {family.upper()} model is not installed"
    except (ModelIntegrityError, ManifestError) as exc:
        log.error("%s models in %s failed verification: %s", family, model_dir, exc)
        reason = f"the {family.upper()} model files are damaged (see the service log)"
    for task in FAMILY_TASKS[family]:
        runner.missing[task] = f"{reason}; run `mtai models fetch {family}{fetch}`"
    return None
