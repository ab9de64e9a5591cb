"""Convert several families for several targets and report: `mtai convert`, `make convert`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from models.convert.convert import (
    ConversionError,
    FamilyReport,
    Samples,
    available_families,
    convert_family,
)
from models.manifest import ManifestError, ModelIntegrityError, ModelNotInstalled

Progress = Callable[[str], None]


def terminal_progress(stream: TextIO | None = None) -> Progress:
    """Print to the terminal even while the toolkit's output is redirected to its log.

    The toolkit's chatter is silenced by pointing file descriptors 1 and 2 at a log file; a
    duplicate of the original stdout taken here keeps our progress lines visible meanwhile.
    """
    if stream is None:
        sys.stdout.flush()
        stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8")
    out = stream

    def say(message: str) -> None:
        out.write(message + "\n")
        out.flush()

    return say


def convert_models(
    model_dir: Path, families: Sequence[str], targets: Sequence[str],
    sample_dirs: Samples | None = None, progress: Progress | None = None,
) -> int:
    """Convert each family for each target; 0 when all were written, 1 otherwise."""
    say = progress or terminal_progress()
    chosen = list(families) or available_families(model_dir)
    if not chosen:
        say(f"mtai convert: no ONNX models in {model_dir}; fetch them first (mtai models fetch)")
        return 1
    reports: list[FamilyReport] = []
    failures: list[str] = []
    for target in targets:
        for family in chosen:
            started = time.monotonic()
            say(f"== {family} for {target} ==")
            try:
                reports.append(convert_family(model_dir, family, target, progress=say,
                                              sample_dirs=sample_dirs or Samples()))
            except (ConversionError, ModelNotInstalled, ModelIntegrityError, ManifestError) as exc:
                failures.append(f"{family} for {target}: {exc}")
                say(f"mtai convert: {exc}")
            say(f"({family} for {target}: {time.monotonic() - started:.1f} s)")
    for report in reports:
        say(_summary(report))
    for failure in failures:
        say(f"NOT CONVERTED {failure.splitlines()[0]}")
    return 1 if failures else 0


def _summary(report: FamilyReport) -> str:
    built = ", ".join(f"{role} {seconds:.1f} s" for role, seconds in report.build_seconds.items())
    lines = [f"converted {report.family} for {report.target} -> {report.directory} ({built})"]
    lines += [f"  check {result.summary()}" for result in report.checks]
    lines += [f"  {role} stays on the CPU: {note}" for role, note in report.kept_onnx.items()]
    return "\n".join(lines)
