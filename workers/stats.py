"""Counters and latency histograms the supervisor keeps, per task and per worker.

Kept as plain numbers in the single-threaded supervisor; the front turns a snapshot into
Prometheus text (/metrics), so no metrics library runs inside the event loop. Besides the
histograms (since start), each task keeps a bounded sample of its recent latencies, which the
status history (workers/history.py) drains into p50/p95 per interval.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import Any

# Seconds; covers a queued CLIP text query (ms) up to a job at its deadline (a minute).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
COUNTERS = ("jobs", "errors", "busy", "retries", "lost", "timeouts", "cancelled")


@dataclass
class Histogram:
    """Per-bucket counts (not cumulative) plus one overflow bucket; sum and count."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1

    def snapshot(self) -> dict[str, Any]:
        return {"buckets": list(BUCKETS), "counts": list(self.counts),
                "sum": round(self.total, 6), "count": self.count}


@dataclass
class Recent:
    """A uniform random sample (Algorithm R) of the values added since the last drain: the
    quantiles of an interval at fixed memory, however many jobs finish in it."""

    capacity: int = 256
    values: list[float] = field(default_factory=list)
    seen: int = 0

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.capacity:
            self.values.append(value)
            return
        slot = random.randrange(self.seen)
        if slot < self.capacity:
            self.values[slot] = value

    def drain(self) -> list[float]:
        values, self.values, self.seen = self.values, [], 0
        return values


@dataclass
class TaskStats:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    queue: Histogram = field(default_factory=Histogram)
    run: Histogram = field(default_factory=Histogram)
    recent: Recent = field(default_factory=Recent)  # queue + run seconds, since the last drain


@dataclass
class FarmStats:
    tasks: dict[str, TaskStats] = field(default_factory=dict)

    def count(self, task: str, counter: str) -> None:
        self.task(task).counters[counter] += 1

    def task(self, name: str) -> TaskStats:
        return self.tasks.setdefault(name, TaskStats())

    def drain_recent(self) -> dict[str, list[float]]:
        """Each task's latency sample since the last call (the history's interval)."""
        return {name: t.recent.drain() for name, t in self.tasks.items()}

    def totals(self) -> dict[str, int]:
        return {c: sum(t.counters[c] for t in self.tasks.values()) for c in COUNTERS}

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {**t.counters, "queue_seconds": t.queue.snapshot(),
                   "run_seconds": t.run.snapshot()}
            for name, t in self.tasks.items()
        }
