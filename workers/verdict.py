"""The status page's headline: one line saying whether the NPU works and what to do about it.

It is `mtai doctor`'s judgement over the same checks (``models.doctor.headline`` of the
machine's ``system_findings`` and the service's ``judge``): the first problem, else the first
warning, each with its fix. When nothing is wrong it says what the farm is doing instead
("3 NPU cores busy, 2.8 jobs/s"), so an owner sees at a glance whether the NPU is really used.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from models.doctor import OK, PROBLEM, Finding, headline, system_findings
from protocol.settings import Settings
from workers.last_words import without_paths
from workers.probe import judge

REFRESH_SECONDS = 300.0  # the machine's findings change when someone converts or installs


@dataclass(frozen=True)
class Verdict:
    level: str  # "ok", "warn" or "problem"
    text: str
    fix: str = ""


def verdict(findings: list[Finding], status: dict[str, Any]) -> Verdict:
    worst = headline(findings)
    if worst is not None:
        return Verdict("problem" if worst.status == PROBLEM else "warn", worst.summary(),
                       worst.fix)
    return Verdict("ok", running_line(findings, status))


def running_line(findings: list[Finding], status: dict[str, Any]) -> str:
    """What a healthy farm is doing, in the words an owner checks: NPU or CPU, and pace."""
    workers = list(status.get("workers", {}).values())
    recent = status.get("recent") or {}
    rate = status.get("jobs_last_minute", 0) / 60  # live, unlike the 10 s samples
    pace = f"{rate:.1f} jobs/s" if rate >= 0.05 else "idle"
    backend = status.get("backend")
    if backend == "rknn":
        cores = sum(str(w.get("device", "")).startswith("npu") for w in workers)
        busy = max(recent.get("busy_workers", 0), sum(bool(w.get("busy")) for w in workers))
        if pace == "idle" or not busy:
            return f"{cores} NPU core{_s(cores)} ready, {pace}"
        return f"{busy} NPU core{_s(busy)} busy, {pace}"
    count = f"{len(workers)} worker{_s(len(workers))}"
    if backend == "rknn-sim":
        return f"running on the rknn-toolkit2 simulator (x86 tests): {count}, {pace}"
    board = any(f.topic == "SoC" and f.status == OK for f in findings)
    why = "BACKEND is set to it" if board else "no Rockchip NPU on this machine"
    return f"running on the CPU (onnxruntime; {why}): {count}, {pace}"


def _s(count: int) -> str:
    return "" if count == 1 else "s"


class Health:
    """The headline and the findings behind it, for the supervisor's status. The machine's
    findings read a few small files and try to import rknnlite: cheap, but not worth redoing
    for every status request, so they are kept until a worker starts (the moment BACKEND=auto
    is decided again) or REFRESH_SECONDS pass."""

    def __init__(self, settings: Settings, root: Path = Path("/")) -> None:
        self.settings = settings
        self.root = root
        self.refresh_at = 0.0
        self.system: list[Finding] = []

    def stale(self) -> None:
        self.refresh_at = 0.0

    def report(self, status: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        if now >= self.refresh_at:
            self.system = system_findings(self.settings.model_dir, self.root,
                                          self.settings.backend, privileged=os.geteuid() == 0)
            self.refresh_at = now + REFRESH_SECONDS
        findings = [*judge(status), *self.system]
        # The page showing these needs no key: no paths of this machine in them (the
        # journal and `mtai doctor` have the full text).
        shown = [replace(f, detail=without_paths(f.detail), fix=without_paths(f.fix),
                         headline=without_paths(f.headline)) for f in findings]
        judged = verdict(shown, status)
        return {"verdict": asdict(judged), "findings": [asdict(f) for f in shown]}
