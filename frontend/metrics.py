"""GET /metrics: the supervisor's counters and histograms in Prometheus text format.

The numbers live in the supervisor (one event loop sees every job); each scrape asks it
for a snapshot and prometheus_client writes the exposition format. No auth, no secrets.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from frontend.farm_state import farm_status
from protocol.client import FarmUnreachable

bp = Blueprint("metrics", __name__)
TASK_COUNTERS = {
    "jobs": "Jobs answered by a worker",
    "errors": "Jobs a worker answered with an error",
    "busy": "Requests refused because the queue was full or their deadline passed in it",
    "retries": "Jobs re-queued after their worker died",
    "lost": "Jobs whose worker died twice",
    "timeouts": "Jobs that ran past their deadline (their worker was replaced)",
    "cancelled": "Queued jobs dropped because their HTTP client had gone",
}


class FarmCollector:
    def __init__(self, status: dict[str, Any]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s = self.status
        yield _gauge("mtai_queue_depth", "Jobs waiting for a worker", s["queue"])
        yield _gauge("mtai_queue_capacity", "QUEUE_SIZE", s["queue_size"])
        yield _gauge("mtai_jobs_running", "Jobs on a worker now", s["running"])
        yield _gauge("mtai_workers_ready", "Workers that said READY", len(s["workers"]))
        yield _gauge("mtai_uptime_seconds", "Seconds since the supervisor started", s["uptime"])
        tasks = s.get("tasks", {})
        for counter, text in TASK_COUNTERS.items():
            family = CounterMetricFamily(f"mtai_{counter}", text, labels=["task"])
            for task, values in tasks.items():
                family.add_metric([task], values[counter])
            yield family
        for name, text in (("queue_seconds", "Time jobs waited for a worker"),
                           ("run_seconds", "Time jobs ran on a worker")):
            family = HistogramMetricFamily(f"mtai_{name}", text, labels=["task"])
            for task, values in tasks.items():
                family.add_metric([task], _buckets(values[name]), values[name]["sum"])
            yield family
        yield from _per_slot(s.get("slots", []))
        yield _counter("mtai_front_restarts", "Times the HTTP front was restarted",
                       s.get("front", {}).get("restarts", 0))


def _per_slot(slots: list[dict[str, Any]]) -> Iterator[Metric]:
    restarts = CounterMetricFamily("mtai_worker_restarts", "Unplanned restarts", labels=["slot"])
    recycles = CounterMetricFamily("mtai_worker_recycles", "Planned recycles", labels=["slot"])
    memory = GaugeMetricFamily("mtai_worker_uss_bytes", "Worker private memory", labels=["slot"])
    for slot in slots:
        label = [str(slot["slot"])]
        restarts.add_metric(label, slot["restarts"])
        recycles.add_metric(label, slot["recycles"])
        if slot.get("uss_bytes") is not None:
            memory.add_metric(label, slot["uss_bytes"])
    yield from (restarts, recycles, memory)


def _buckets(histogram: dict[str, Any]) -> list[tuple[str, float]]:
    """Per-bucket counts -> cumulative (le, count) pairs ending with +Inf."""
    cumulative, total = [], 0
    for bound, count in zip(histogram["buckets"], histogram["counts"]):
        total += count
        cumulative.append((repr(float(bound)), total))
    cumulative.append(("+Inf", histogram["count"]))
    return cumulative


def _gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, value=value)


def _counter(name: str, text: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, text, value=value)


@bp.get("/metrics")
def metrics() -> Response:
    try:
        status = farm_status(current_app.extensions["farm"])
    except FarmUnreachable as exc:
        return Response(f"# worker farm unreachable: {exc}\n", 503, mimetype="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FarmCollector(status))
    return Response(generate_latest(registry), 200, content_type=CONTENT_TYPE_LATEST)
