"""The supervisor's status history (workers/history.py), the NPU load it samples
(models/runtime/rknpu.py) and the latency sample it drains (workers/stats.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.runtime import rknpu
from tests.rknn_fixtures import deny_rknpu_reads
from workers.history import EVERY_SECONDS, MAX_EVENTS, SPAN_SECONDS, History, quantile
from workers.stats import Recent

# What the vendor driver prints (rknpu_debugger.c: " Core%d: " then "%2.d%%," per core on
# multi-core NPUs, "%2.d%%" alone on one-core ones; the kernel prints 0 as "0").
RK3588_LINE = "NPU load:  Core0: 12%, Core1:  0%, Core2:  3%,\n"
RK3566_LINE = "NPU load: 27%\n"


def npu_root(tmp_path: Path, line: str | None, where: str = "sys/kernel/debug/rknpu") -> Path:
    root = tmp_path / "root"
    if line is not None:
        (root / where).mkdir(parents=True)
        (root / where / "load").write_text(line)
    else:
        root.mkdir(parents=True)
    return root


@pytest.mark.parametrize(("line", "cores"), [
    (RK3588_LINE, [12, 0, 3]),
    (RK3566_LINE, [27]),
    ("NPU load:  Core0:100%, Core1: 99%, Core2:  7%,", [100, 99, 7]),
    ("NPU load:  Core0:  %, Core1:  5%,", [0, 5]),  # a C library printing 0 with "%2.d"
    ("RKNPU driver: v0.9.8", None),
    ("", None),
])
def test_the_drivers_load_line_is_parsed(line: str, cores: list[int] | None):
    assert rknpu.parse_load(line) == cores


def test_load_is_read_from_debugfs_else_procfs_else_says_why(tmp_path: Path):
    assert rknpu.load(npu_root(tmp_path / "a", RK3588_LINE)).cores == [12, 0, 3]
    assert rknpu.load(npu_root(tmp_path / "b", RK3566_LINE, "proc/rknpu")).cores == [27]
    missing = rknpu.load(npu_root(tmp_path / "c", None))
    assert missing.cores is None and "sys/kernel/debug/rknpu/load absent" in missing.why
    garbage = rknpu.load(npu_root(tmp_path / "d", "no numbers here"))
    assert garbage.cores is None and "no load line" in garbage.why


def test_unreadable_debugfs_is_reported_as_root_only(tmp_path: Path, monkeypatch):
    root = npu_root(tmp_path, RK3588_LINE)
    deny_rknpu_reads(monkeypatch)
    load = rknpu.load(root)
    assert load.cores is None and "root-only" in load.why


def status(jobs: int = 0, busy: int = 0, restarts: int = 0, recycles: int = 0,
           front_restarts: int = 0, worker_busy: float = 0.0, queue: int = 0) -> dict:
    """A supervisor status of one slot, in the shape Supervisor.status answers."""
    counters = {"jobs": jobs, "errors": 0, "busy": busy, "retries": 0, "lost": 0, "timeouts": 0}
    return {
        "queue": queue, "running": 1,
        "tasks": {"ocr": counters},
        "slots": [{"slot": 0, "pid": 10, "restarts": restarts, "recycles": recycles,
                   "crash_loop": False, "uss_bytes": 300 * 2**20, "last_exit": "code 1",
                   "last_error": "RuntimeError: init_runtime returned -1"}],
        "workers": {"w0.10": {"slot": 0, "pid": 10, "busy_seconds": worker_busy}},
        "front": {"restarts": front_restarts, "last_exit": "signal SIGKILL"},
    }


def test_a_sample_holds_the_intervals_rates_quantiles_and_use(tmp_path: Path):
    history = History(root=npu_root(tmp_path, RK3588_LINE), now=-10.0)
    history.sample(status(), {}, wall=1000.0, now=0.0)
    history.watch(7)  # a burst between two samples: the peak is kept
    history.watch(2)
    latencies = {"ocr": [0.1 * i for i in range(1, 21)]}
    sample = history.sample(status(jobs=20, busy=2, worker_busy=5.0, queue=1), latencies,
                            wall=1010.0, now=10.0)
    ocr = sample.tasks["ocr"]
    assert (ocr.jobs, ocr.refused) == (20, 2)
    assert ocr.p50 == pytest.approx(1.0) and ocr.p95 == pytest.approx(1.9)
    assert sample.queue_peak == 7 and sample.busy == (0.5,) and sample.npu == (12, 0, 3)
    snap = history.snapshot()
    assert snap["tasks"]["ocr"]["jobs_per_s"] == [0.0, 2.0]
    assert snap["tasks"]["ocr"]["p95_ms"] == [None, 1900.0]
    assert snap["workers"] == [{"slot": 0, "uss_mb": [300.0, 300.0], "busy_pct": [0.0, 50.0]}]
    assert snap["npu"] == {"cores": [[12, 12], [0, 0], [3, 3]], "why": None}
    assert history.recent() == {"seconds": 20.0, "jobs_per_s": 1.0, "busy_workers": 1,
                                "refused": 2}


def test_restarts_recycles_and_front_restarts_become_markers(tmp_path: Path):
    history = History(root=npu_root(tmp_path, None), now=-10.0)
    history.sample(status(), {}, wall=1000.0, now=0.0)
    history.sample(status(restarts=1, recycles=1, front_restarts=1), {}, wall=1010.0, now=10.0)
    events = history.snapshot()["events"]
    assert [(e["kind"], e["slot"]) for e in events] == [
        ("restart", 0), ("recycle", 0), ("front restart", None)]
    assert events[0]["detail"] == "RuntimeError: init_runtime returned -1"
    assert events[2]["detail"] == "signal SIGKILL"
    assert history.snapshot()["npu"]["cores"] == []
    assert "absent" in history.snapshot()["npu"]["why"]


def test_the_ring_is_bounded_and_since_returns_only_what_is_new(tmp_path: Path):
    history = History(root=npu_root(tmp_path, RK3566_LINE), now=-10.0)
    size = int(SPAN_SECONDS // EVERY_SECONDS)
    for i in range(size + 50):  # one hour and a bit, with a restart in every sample
        history.sample(status(jobs=i, restarts=i), {"ocr": [0.2] * 1000}, wall=1000.0 + 10 * i,
                       now=10.0 * i)
    snap = history.snapshot()
    assert len(history.samples) == size and len(snap["t"]) == size
    assert len(history.events) == MAX_EVENTS
    assert snap["t"][0] == 1000.0 + 10 * 50
    history.sample(status(jobs=size + 50), {}, wall=snap["t"][-1] + 10.04, now=10.0 * size + 500)
    snap = history.snapshot()
    assert history.snapshot(since=snap["t"][-1])["t"] == []  # t as sent (rounded): no repeat
    newer = history.snapshot(since=snap["t"][-3])
    assert newer["t"] == snap["t"][-2:] and len(newer["tasks"]["ocr"]["jobs_per_s"]) == 2
    assert all(e["t"] > snap["t"][-3] for e in newer["events"])


def test_a_full_hour_of_a_busy_farm_stays_small_on_the_wire(tmp_path: Path):
    """Five tasks, three workers, three NPU cores, every number different: the page's
    budget (tests/test_status_json.py) leaves 60 kB to a full /status.json."""
    history = History(root=npu_root(tmp_path, RK3588_LINE), now=-10.0)
    random = np.random.default_rng(0)
    tasks = ("ocr", "clip_image", "clip_text", "face", "other")
    jobs = dict.fromkeys(tasks, 0)
    for i in range(int(SPAN_SECONDS // EVERY_SECONDS)):
        for task in tasks:
            jobs[task] += int(random.integers(0, 40))
        farm = status(restarts=i // 40)
        farm["tasks"] = {t: {**farm["tasks"]["ocr"], "jobs": jobs[t], "busy": int(
            random.integers(0, 3))} for t in tasks}
        farm["slots"] = [{**farm["slots"][0], "slot": n, "restarts": i // 40,
                          "uss_bytes": int(random.integers(300, 900)) * 2**20 + 12345}
                         for n in range(3)]
        farm["workers"] = {f"w{n}.1{n}": {"slot": n, "busy_seconds": 9.0 * i + n}
                           for n in range(3)}
        latencies = {t: list(random.random(50) * 2) for t in tasks}
        history.sample(farm, latencies, wall=1.8e9 + 10 * i + float(random.random()),
                       now=10.0 * i)
    size = len(json.dumps(history.snapshot(), separators=(",", ":")))  # as Flask sends it
    assert size < 60_000, size


def test_recent_latencies_are_a_bounded_uniform_sample():
    recent = Recent(capacity=256)
    for i in range(100_000):
        recent.add(i / 100_000)
    values = recent.drain()
    assert len(values) == 256 and recent.drain() == []
    assert 0.35 < quantile(sorted(values), 0.5) < 0.65  # uniform over 0..1: median near 0.5
    assert quantile([], 0.5) is None and quantile([3.0], 0.95) == 3.0
