"""Load the models a worker owns, once, before it says READY.

A model that is not installed is not a crash: the worker serves what it has and
answers the other tasks with the command that installs them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from models.manifest import ModelIntegrityError, default_model_dir
from models.ocr.pipeline import OcrPipeline
from workers.tasks import TaskRunner, ocr_handler, sleep_handler

log = logging.getLogger(__name__)


def load_runner(backend: str, threads: int | None, core: int) -> tuple[TaskRunner, dict[str, Any]]:
    """Build the task table; also return what this worker reports in READY."""
    model_dir = default_model_dir()
    runner = TaskRunner(handlers={"sleep": sleep_handler})
    device = f"npu core {core}" if backend == "rknn" else f"cpu, {threads or 'all'} threads"
    info: dict[str, Any] = {"backend": backend, "core": core, "device": device, "models": {}}
    started = time.monotonic()
    try:
        ocr = OcrPipeline.load(model_dir, threads=threads, backend=backend)
    except FileNotFoundError as exc:
        log.warning("OCR models not installed in %s: %s", model_dir, exc)
        runner.missing["ocr"] = (
            f"OCR models are not installed in {model_dir}; run `mtai models fetch ocr`"
        )
    except ModelIntegrityError as exc:
        log.error("OCR models in %s failed verification: %s", model_dir, exc)
        runner.missing["ocr"] = f"OCR model files are damaged ({exc}); run `mtai models fetch ocr`"
    else:
        _warm_up(ocr)
        runner.handlers["ocr"] = ocr_handler(ocr)
        info["models"]["ocr"] = "PP-OCRv4 (det/cls/rec)"
    runner.missing.setdefault("clip_image", "the CLIP model is not installed")
    runner.missing.setdefault("clip_text", "the CLIP model is not installed")
    info["load_seconds"] = round(time.monotonic() - started, 2)
    info["tasks"] = sorted({*runner.handlers, *runner.missing})
    return runner, info


def _warm_up(ocr: OcrPipeline) -> None:
    """First inference allocates arenas; pay that before READY, not on a user's request."""
    ocr(np.full((64, 256, 3), 255, dtype=np.uint8))
