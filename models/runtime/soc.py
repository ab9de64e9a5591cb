"""Which Rockchip SoC this is, where its converted models live, and what BACKEND=auto picks.

`auto` must never pick the NPU on a machine where it cannot work: a wrong guess costs a worker
that fails to load instead of a slower CPU worker. So rknn is chosen only when three things hold
(the device tree names a supported SoC, rknn-toolkit-lite2 imports, converted models exist) and
the reason is returned either way, for the log and for `mtai doctor`.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path

from models.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

DEVICE_TREE = Path("/proc/device-tree")
COMPATIBLE = DEVICE_TREE / "compatible"
# Checked in this order against the device-tree strings; "rk3588" also matches "rk3588s".
SUPPORTED_SOCS = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562")
# NPU cores addressable with core_mask; SoCs not listed have one core and take no mask.
NPU_CORES = {"rk3588": 3, "rk3576": 2}
# Same NPU, so a model built for one loads on the other (Rockchip ships one file for both).
SAME_NPU = {"rk3566": ("rk3566", "rk3568"), "rk3568": ("rk3568", "rk3566")}
RKNN_DIR_PREFIX = "rknn-"


def read_soc(compatible: Path | None = None) -> str | None:
    """The supported SoC named in the device tree, or None (x86, other boards, unreadable).

    ``compatible`` defaults to this module's COMPATIBLE, read at call time so tests can point
    it at a fake device tree.
    """
    try:
        raw = Path(compatible or COMPATIBLE).read_bytes()
    except OSError:
        return None
    names = raw.decode("ascii", "replace").lower()
    return next((soc for soc in SUPPORTED_SOCS if soc in names), None)


def read_board(model: Path = DEVICE_TREE / "model") -> str | None:
    """The board name from the device tree (e.g. 'Orange Pi 5'), for reports only."""
    try:
        return Path(model).read_bytes().rstrip(b"\0").decode("utf-8", "replace").strip() or None
    except OSError:
        return None


def npu_cores(soc: str | None) -> int:
    return NPU_CORES.get(soc or "", 1)


def rknn_root(model_dir: Path, target: str) -> Path:
    """``<model_dir>/rknn-<target>``: converted families, one subdirectory each (``ocr``...)."""
    return Path(model_dir) / f"{RKNN_DIR_PREFIX}{target}"


def converted_families(root: Path) -> list[str]:
    """Families with a converted manifest under ``root`` (sorted)."""
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST_NAME}"))


def find_rknn_root(model_dir: Path, soc: str) -> Path | None:
    """The directory of models converted for ``soc`` (or a SoC with the same NPU), if any."""
    for target in SAME_NPU.get(soc, (soc,)):
        root = rknn_root(model_dir, target)
        if converted_families(root):
            return root
    return None


def rknnlite_status() -> tuple[bool, str]:
    """(importable, version or the import error), without raising."""
    try:
        importlib.import_module("rknnlite.api")
    except Exception as exc:  # ImportError, or OSError from a missing librknnrt.so
        return False, f"{type(exc).__name__}: {exc}"
    try:
        from importlib.metadata import version

        return True, version("rknn-toolkit-lite2")
    except Exception:  # importable from a path without distribution metadata
        return True, "unknown version"


@dataclass(frozen=True)
class Choice:
    """What ``auto`` resolves to, and why (one sentence a user can act on). When the NPU is
    not chosen on a supported SoC, ``blocker`` names what is missing in a few words and ``fix``
    is the command that supplies it (the status page's headline shows both)."""

    backend: str
    reason: str
    soc: str | None = None
    root: Path | None = None
    blocker: str = ""
    fix: str = ""


def choose_backend(model_dir: Path, compatible: Path | None = None) -> Choice:
    """rknn when the SoC is supported, rknnlite imports and models were converted for it."""
    soc = read_soc(compatible)
    if soc is None:
        return Choice("onnx", f"{compatible or COMPATIBLE} names no supported Rockchip SoC "
                              f"({', '.join(SUPPORTED_SOCS)})")
    ok, detail = rknnlite_status()
    if not ok:
        fix = "pip install 'mtai-rknn[rknn]'"
        return Choice("onnx", f"{soc} found but rknn-toolkit-lite2 does not import ({detail}); "
                              f"install it: {fix}", soc,
                      blocker="rknn-toolkit-lite2 does not import", fix=fix)
    root = find_rknn_root(model_dir, soc)
    if root is None:
        return Choice("onnx", f"{soc} and rknnlite {detail} found but no converted models in "
                              f"{rknn_root(model_dir, soc)}; run `mtai convert`", soc,
                      blocker="no converted models", fix="run `mtai convert`")
    families = ", ".join(converted_families(root))
    return Choice("rknn", f"{soc}, rknnlite {detail}, converted models in {root} ({families})",
                  soc, root)


def place_family(
    model_dir: Path, family: str, backend: str, sim_target: str = "rk3588"
) -> tuple[Path, str]:
    """Where a worker loads ``family`` from on ``backend``, and on which backend.

    On the NPU backends a family converted for this SoC loads from its ``rknn-<soc>`` directory;
    a family not converted (yet) loads from the ONNX directory on onnxruntime, so converting
    OCR alone never costs the CLIP tasks. ``rknn-sim`` uses the models converted for
    ``sim_target`` (the RKNN_TARGET setting).
    """
    if backend not in ("rknn", "rknn-sim"):
        return Path(model_dir), backend
    soc = (read_soc() if backend == "rknn" else None) or sim_target
    root = find_rknn_root(model_dir, soc)
    if root is not None and (root / family / MANIFEST_NAME).is_file():
        return root, backend
    log.warning("%s: no models converted for %s in %s; it runs on the CPU (run `mtai convert`)",
                family, soc, rknn_root(model_dir, soc))
    return Path(model_dir), "onnx"
