"""Load the models a worker owns, once, before it says READY.

A model that is not installed (or fails verification) is not a crash: the worker serves
what it has and answers the other tasks with the command that installs them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from models.clip import ClipModels
from models.manifest import ManifestError, ModelIntegrityError, default_model_dir
from models.ocr.pipeline import OcrPipeline
from models.runtime.soc import place_family
from workers.tasks import (
    TaskRunner,
    clip_image_handler,
    clip_text_handler,
    ocr_handler,
    sleep_handler,
)

log = logging.getLogger(__name__)


def _switch(name: str) -> bool:
    return os.environ.get(name, "off").strip().lower() in ("on", "1", "true", "yes")


def load_runner(backend: str, threads: int | None, core: int) -> tuple[TaskRunner, dict[str, Any]]:
    """Build the task table; also return what this worker reports in READY."""
    model_dir = default_model_dir()
    runner = TaskRunner(handlers={"sleep": sleep_handler})
    device = {"rknn": f"npu core {core}", "rknn-sim": "rknn-toolkit2 simulator (x86)"}.get(
        backend, f"cpu, {threads or 'all'} threads")
    ocr_dir, ocr_backend = place_family(model_dir, "ocr", backend)  # NPU: converted copy if any
    clip_dir, clip_backend = place_family(model_dir, "clip", backend)
    info: dict[str, Any] = {"backend": backend, "core": core, "device": device, "models": {}}
    started = time.monotonic()

    ocr = _load("ocr", lambda: OcrPipeline.load(ocr_dir, threads=threads, backend=ocr_backend,
                                                 core=core), runner, model_dir)
    if ocr is not None:
        ocr(np.full((64, 256, 3), 255, dtype=np.uint8))  # warm-up: arenas before READY
        runner.handlers["ocr"] = ocr_handler(ocr)
        info["models"]["ocr"] = "PP-OCRv4 (det/cls/rec)"

    clip = _load("clip", lambda: ClipModels.load(
        clip_dir, backend=clip_backend, threads=threads, core=core,
        load_text=_switch("AUTO_LOAD_TXT_MODAL"),  # AUTO_LOAD_TXT_MODAL=on: text model at start
        bgr_compat=_switch("CLIP_BGR_COMPAT"),  # CLIP_BGR_COMPAT=on: official R/B swap
    ), runner, model_dir)
    if clip is not None:
        clip.image(np.zeros((224, 224, 3), np.uint8))
        runner.handlers["clip_image"] = clip_image_handler(clip)
        runner.handlers["clip_text"] = clip_text_handler(clip)
        compat = " (BGR compat)" if clip.image.bgr_compat else ""
        info["models"]["clip"] = f"Chinese-CLIP ViT-B-16{compat}"
        info["clip_text"] = "loaded" if clip.text_loaded else "loads on first query"
    info["load_seconds"] = round(time.monotonic() - started, 2)
    info["tasks"] = sorted({*runner.handlers, *runner.missing})
    return runner, info


FAMILY_TASKS = {"ocr": ("ocr",), "clip": ("clip_image", "clip_text")}


def _load(family: str, load: Callable[[], Any], runner: TaskRunner, model_dir: Any) -> Any:
    """Run a loader; on absent or damaged files record why the family's tasks are missing."""
    try:
        return load()
    except FileNotFoundError as exc:
        log.warning("%s models not installed in %s: %s", family, model_dir, exc)
        reason = f"the {family.upper()} model is not installed in {model_dir}"
    except (ModelIntegrityError, ManifestError) as exc:
        log.error("%s models in %s failed verification: %s", family, model_dir, exc)
        reason = f"the {family.upper()} model files are damaged ({exc})"
    for task in FAMILY_TASKS[family]:
        runner.missing[task] = f"{reason}; run `mtai models fetch {family}`"
    return None
