"""Counters and latency histograms the supervisor keeps, per task and per worker.

Kept as plain numbers in the single-threaded supervisor; the front turns a snapshot into
Prometheus text (/metrics), so no metrics library runs inside the event loop.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

# Seconds; covers a queued CLIP text query (ms) up to a job at its deadline (a minute).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
COUNTERS = ("jobs", "errors", "busy", "retries", "lost", "timeouts")


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
class TaskStats:
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    queue: Histogram = field(default_factory=Histogram)
    run: Histogram = field(default_factory=Histogram)


@dataclass
class FarmStats:
    tasks: dict[str, TaskStats] = field(default_factory=dict)

    def count(self, task: str, counter: str) -> None:
        self.task(task).counters[counter] += 1

    def task(self, name: str) -> TaskStats:
        return self.tasks.setdefault(name, TaskStats())

    def totals(self) -> dict[str, int]:
        return {c: sum(t.counters[c] for t in self.tasks.values()) for c in COUNTERS}

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {**t.counters, "queue_seconds": t.queue.snapshot(),
                   "run_seconds": t.run.snapshot()}
            for name, t in self.tasks.items()
        }
