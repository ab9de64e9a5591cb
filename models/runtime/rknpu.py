"""What Rockchip's RKNPU kernel driver says about itself: its version and each core's load.

The vendor driver (the BSP kernels Armbian ships for RK3588 boards) writes both into
debugfs, ``/sys/kernel/debug/rknpu/{version,load}``, and into ``/proc/rknpu/`` when the kernel
was built with its procfs option. debugfs is readable by root only, so a service running as
its own user usually sees the procfs copy or nothing; callers get the reason either way.

The load line is the share of the driver's last sampling window each core spent busy, as the
driver prints it: ``NPU load:  Core0:  3%, Core1:  0%, Core2:  0%,`` on multi-core NPUs and
``NPU load: 12%`` on single-core ones (RK3566/RK3568/RK3562).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# Relative to the filesystem root, so tests can point a fake /sys and /proc tree at it.
DEBUGFS = Path("sys/kernel/debug/rknpu")
PROCFS = Path("proc/rknpu")
_CORE = re.compile(r"Core(\d+):\s*(\d*)\s*%")
_SINGLE = re.compile(r"NPU load:\s*(\d+)\s*%")


@dataclass(frozen=True)
class Reading:
    """A driver file's text, or why there is none (``path`` is the debugfs file either way);
    ``denied``: it is there but this user may not read it."""

    path: Path
    text: str | None
    why: str | None = None
    denied: bool = False


def read(name: str, root: Path = Path("/")) -> Reading:
    """``name`` (``version`` or ``load``) from debugfs, else from procfs. The reason given
    when neither is readable is debugfs's: it is where the driver always writes."""
    debug = Path(root) / DEBUGFS / name
    first = _read(debug)
    if first.text is not None:
        return first
    second = _read(Path(root) / PROCFS / name)
    return second if second.text is not None else first


def parse_load(text: str) -> list[int] | None:
    """Per-core load in percent, core 0 first; None when ``text`` is not the driver's line."""
    cores = {int(core): int(value or 0) for core, value in _CORE.findall(text)}
    if cores:
        return [min(100, cores.get(i, 0)) for i in range(max(cores) + 1)]
    single = _SINGLE.search(text)
    return [min(100, int(single.group(1)))] if single else None


@dataclass(frozen=True)
class Load:
    """Per-core NPU load, or why it cannot be read here."""

    cores: list[int] | None
    why: str | None = None

    def line(self) -> str:
        if self.cores is None:
            return f"not available: {self.why}"
        return ", ".join(f"Core{i}: {value}%" for i, value in enumerate(self.cores))


def load(root: Path = Path("/")) -> Load:
    reading = read("load", root)
    if reading.text is None:
        return Load(None, f"{reading.path} {reading.why}")
    cores = parse_load(reading.text)
    if cores is None:
        return Load(None, f"{reading.path} holds no load line ({reading.text[:80]!r})")
    return Load(cores)


def _read(path: Path) -> Reading:
    try:
        raw = path.read_bytes()  # one short line; a seq_file reads to its end at once
    except PermissionError:
        return Reading(path, None, "not readable (debugfs is root-only)", denied=True)
    except OSError as exc:
        return Reading(path, None, f"absent ({exc.strerror or exc})")
    return Reading(path, raw.decode("utf-8", "replace").strip())
