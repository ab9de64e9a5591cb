"""The last hour of the farm, for the status page's charts: a bounded ring of samples.

The supervisor takes a sample every EVERY_SECONDS from its loop. A sample never blocks the
loop: it reads numbers the broker already keeps (counters, each task's latency sample, each
worker's busy time), the USS figures housekeeping cached, and one short line from the RKNPU
driver (a kernel seq_file, answered at once). Memory is fixed: SPAN_SECONDS / EVERY_SECONDS
samples, each holding a few numbers per task (only tasks some worker offers, plus "other":
the broker bounds them), per worker slot and per NPU core, and at most MAX_EVENTS restart and
recycle markers.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.runtime import rknpu

SPAN_SECONDS = 3600.0
EVERY_SECONDS = 10.0
MAX_EVENTS = 200
RECENT_SECONDS = 60.0  # the window of the headline's pace and of its overload warning


@dataclass(frozen=True)
class TaskSample:
    jobs: int
    errors: int
    refused: int  # answered BUSY: queue full, or the deadline passed while queued
    p50: float | None  # seconds from the broker's queue to the answer (queue + run)
    p95: float | None


@dataclass(frozen=True)
class Sample:
    t: float  # wall-clock seconds
    seconds: float  # length of the interval it covers
    tasks: dict[str, TaskSample]
    queue_peak: int
    running: int
    uss: tuple[int | None, ...]  # per worker slot, bytes
    busy: tuple[float | None, ...]  # per slot, share of the interval spent on jobs
    npu: tuple[int, ...] | None  # per NPU core, percent, as the driver reports it


@dataclass(frozen=True)
class Event:
    t: float
    kind: str  # "restart", "recycle" or "front restart"
    slot: int | None
    detail: str


class History:
    def __init__(self, every: float = EVERY_SECONDS, span: float = SPAN_SECONDS,
                 root: Path = Path("/"), now: float | None = None) -> None:
        self.every = every
        self.span = span
        self.root = root  # where /sys and /proc are (tests point it at a fake tree)
        self.samples: deque[Sample] = deque(maxlen=max(1, int(span // every)))
        self.events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self.npu_why: str | None = None
        self.queue_peak = 0
        self.last_at = time.monotonic() if now is None else now  # the first interval's start
        self.next_at = self.last_at + every
        self._counters: dict[str, tuple[int, int, int]] = {}
        self._slots: dict[int, tuple[int, int]] = {}
        self._front_restarts = 0
        self._busy: dict[str, float] = {}

    def watch(self, queue_depth: int) -> None:
        """Every loop turn: the peak queue depth of the interval (a scan fills it in bursts)."""
        self.queue_peak = max(self.queue_peak, queue_depth)

    def due(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.next_at

    def sample(self, status: dict[str, Any], latencies: dict[str, list[float]],
               wall: float | None = None, now: float | None = None) -> Sample:
        """Record the interval since the last sample from the supervisor's ``status`` and the
        broker's drained latency samples; ``wall``/``now`` (wall and monotonic) for tests."""
        now = time.monotonic() if now is None else now
        wall = time.time() if wall is None else wall
        seconds = max(1e-3, now - self.last_at)
        self.last_at, self.next_at = now, now + self.every
        slots = status.get("slots", [])
        self._note_events(slots, status.get("front", {}), wall)
        load = rknpu.load(self.root)
        self.npu_why = load.why
        sample = Sample(
            t=wall, seconds=seconds, tasks=self._tasks(status.get("tasks", {}), latencies),
            queue_peak=max(self.queue_peak, status.get("queue", 0)),
            running=status.get("running", 0),
            uss=tuple(s.get("uss_bytes") for s in slots),
            busy=self._busy_shares(status.get("workers", {}), len(slots), seconds),
            npu=tuple(load.cores) if load.cores is not None else None,
        )
        self.queue_peak = status.get("queue", 0)
        self.samples.append(sample)
        return sample

    def _tasks(self, tasks: dict[str, Any], latencies: dict[str, list[float]]
               ) -> dict[str, TaskSample]:
        out = {}
        for name, values in tasks.items():
            current = (values["jobs"], values["errors"], values["busy"])
            before = self._counters.get(name, (0, 0, 0))
            self._counters[name] = current
            jobs, errors, refused = (max(0, c - b) for c, b in zip(current, before))
            times = sorted(latencies.get(name, ()))
            out[name] = TaskSample(jobs, errors, refused, quantile(times, 0.5),
                                   quantile(times, 0.95))
        return out

    def _busy_shares(self, workers: dict[str, Any], slots: int, seconds: float
                     ) -> tuple[float | None, ...]:
        """Each slot's time on jobs in this interval (a worker that is not ready: None)."""
        shares: list[float | None] = [None] * slots
        seen = {}
        for identity, worker in workers.items():
            slot, busy = worker.get("slot"), float(worker.get("busy_seconds", 0.0))
            seen[identity] = busy
            if isinstance(slot, int) and 0 <= slot < slots:
                spent = max(0.0, busy - self._busy.get(identity, 0.0))
                shares[slot] = min(1.0, (shares[slot] or 0.0) + spent / seconds)
        self._busy = seen
        return tuple(shares)

    def _note_events(self, slots: list[dict[str, Any]], front: dict[str, Any],
                     wall: float) -> None:
        for slot in slots:
            number = slot["slot"]
            restarts, recycles = slot.get("restarts", 0), slot.get("recycles", 0)
            before_restarts, before_recycles = self._slots.get(number, (0, 0))
            self._slots[number] = (restarts, recycles)
            why = slot.get("last_error") or slot.get("last_exit") or ""
            for _ in range(min(3, restarts - before_restarts)):
                self.events.append(Event(wall, "restart", number, why))
            if recycles > before_recycles:
                self.events.append(Event(wall, "recycle", number,
                                         f"{recycles - before_recycles} recycled"))
        restarts = front.get("restarts", 0)
        if restarts > self._front_restarts:
            self.events.append(Event(wall, "front restart", None, front.get("last_exit") or ""))
        self._front_restarts = restarts

    # -- reading ---------------------------------------------------------------------------
    def recent(self, seconds: float = RECENT_SECONDS) -> dict[str, Any]:
        """Pace over the last ``seconds``: jobs/s, workers that ran jobs, requests refused."""
        end = self.samples[-1].t if self.samples else 0.0
        window = [s for s in self.samples if s.t > end - seconds]
        covered = sum(s.seconds for s in window)
        jobs = sum(t.jobs for s in window for t in s.tasks.values())
        refused = sum(t.refused for s in window for t in s.tasks.values())
        slots = max((len(s.busy) for s in window), default=0)
        busy = sum(any((s.busy[i] or 0) > 0 for s in window if i < len(s.busy))
                   for i in range(slots))
        return {"seconds": round(covered, 1), "jobs_per_s": round(jobs / covered, 3)
                if covered else 0.0, "busy_workers": busy, "refused": refused}

    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        """Columns for the charts: one list per series, aligned with ``t``; None is a gap.
        ``since``: only what came after that wall-clock time (a page refreshing its charts)."""
        after = since if isinstance(since, (int, float)) and not isinstance(since, bool) \
            else float("-inf")
        # compared as sent (rounded): a page passing back its last ``t`` gets no repeat
        samples = [s for s in self.samples if round(s.t, 1) > after]
        names = sorted({name for s in samples for name in s.tasks})
        slots = max((len(s.uss) for s in samples), default=0)
        cores = max((len(s.npu) for s in samples if s.npu), default=0)

        def task_column(name: str, pick: Any) -> list:
            return [pick(s.tasks[name], s) if name in s.tasks else None for s in samples]

        return {
            "every": self.every, "span": self.span,
            "t": [round(s.t, 1) for s in samples],
            "tasks": {name: {
                "jobs_per_s": task_column(name, lambda t, s: round(t.jobs / s.seconds, 2)),
                "errors": task_column(name, lambda t, s: t.errors),
                "refused": task_column(name, lambda t, s: t.refused),
                "p50_ms": task_column(name, lambda t, s: _ms(t.p50)),
                "p95_ms": task_column(name, lambda t, s: _ms(t.p95)),
            } for name in names},
            "queue": [s.queue_peak for s in samples],
            "running": [s.running for s in samples],
            "workers": [{
                "slot": slot,
                "uss_mb": [_mb(s.uss[slot]) if slot < len(s.uss) else None for s in samples],
                "busy_pct": [_pct(s.busy[slot]) if slot < len(s.busy) else None
                             for s in samples],
            } for slot in range(slots)],
            "npu": {
                "cores": [[s.npu[core] if s.npu and core < len(s.npu) else None
                           for s in samples] for core in range(cores)],
                "why": self.npu_why,
            },
            "events": [{"t": round(e.t, 1), "kind": e.kind, "slot": e.slot,
                        "detail": e.detail} for e in self.events if round(e.t, 1) > after],
        }


def quantile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank quantile of an ascending list; None when it is empty."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _ms(seconds: float | None) -> float | int | None:
    """Milliseconds to three significant figures or so: what a chart shows, and a full hour
    of columns stays small."""
    if seconds is None:
        return None
    ms = seconds * 1000
    return round(ms) if ms >= 100 else round(ms, 1) if ms >= 10 else round(ms, 2)


def _mb(value: int | None) -> int | None:
    return None if value is None else round(value / 2**20)


def _pct(share: float | None) -> int | None:
    return None if share is None else round(share * 100)
