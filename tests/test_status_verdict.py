"""The status page's headline (workers/verdict.py): `mtai doctor`'s checks on fake boards
plus the farm's state, as one line with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.settings import Settings
from tests import fake_rknnlite
from tests.clip_fixtures import install_tiny
from tests.rknn_fixtures import board, deny_rknpu_reads, fake_convert
from workers.cli import main
from workers.verdict import Health

ERROR = "RuntimeError: init_runtime returned -1"


def farm(backend: str = "rknn", ready: int = 3, rate: float = 0.0, busy: int = 0,
         refused: int = 0, looping: int | None = None, queue: int = 0) -> dict:
    """A supervisor status (Supervisor.status's shape) of three slots."""
    device = {"rknn": "npu core {}", "onnx": "cpu, 2 threads"}[backend]
    return {
        "backend": backend, "queue": queue, "queue_size": 64, "recycling": False,
        "workers": {f"w{i}.{100 + i}": {"slot": i, "pid": 100 + i, "device": device.format(i)}
                    for i in range(ready)},
        "slots": [{"slot": i, "pid": 100 + i, "crash_loop": i == looping,
                   "last_exit": "code 1", "last_error": ERROR if i == looping else None}
                  for i in range(3)],
        "front": {"serving": 1, "restarts": 0, "crash_loop": False},
        "jobs_last_minute": round(rate * 60),
        "recent": {"seconds": 60.0, "jobs_per_s": rate, "busy_workers": busy,
                   "refused": refused},
    }


@pytest.fixture()
def rk3588(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A fake RK3588 board (rknnlite importable) and a model directory, not converted."""
    fake_rknnlite.install(monkeypatch)
    models = tmp_path / "models"
    install_tiny(models)
    return board(tmp_path / "root"), models


def health(models: Path, root: Path, backend: str = "auto") -> Health:
    return Health(Settings.from_env({"MODEL_DIR": str(models), "BACKEND": backend}), root)


def test_an_rk3588_left_on_the_cpu_says_why_and_how_to_fix_it(rk3588):
    root, models = rk3588
    verdict = health(models, root).report(farm("onnx"))["verdict"]
    assert verdict == {"level": "problem", "fix": "run `mtai convert`",
                       "text": "running on the CPU although this is an RK3588: "
                               "no converted models"}


def test_doctor_ends_with_the_same_headline(rk3588, monkeypatch, capsys):
    root, models = rk3588
    monkeypatch.setenv("MODEL_DIR", str(models))
    monkeypatch.setenv("RUNTIME_DIR", str(models / "no-service"))
    assert main(["doctor", "--root", str(root)]) == 1
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last == ("1 problem found; first: running on the CPU although this is an RK3588: "
                    "no converted models (fix: run `mtai convert`)")


def test_a_working_npu_farm_says_how_busy_its_cores_are(rk3588):
    root, models = rk3588
    fake_convert(models, "clip")
    check = health(models, root)
    assert check.report(farm(rate=2.84, busy=3))["verdict"] == {
        "level": "ok", "text": "3 NPU cores busy, 2.8 jobs/s", "fix": ""}
    assert check.report(farm())["verdict"]["text"] == "3 NPU cores ready, idle"


def test_a_crash_loop_comes_first_with_its_last_error(rk3588):
    root, models = rk3588
    report = health(models, root).report(farm("onnx", ready=2, looping=1))
    assert report["verdict"]["level"] == "problem"
    assert report["verdict"]["text"] == f"worker 1 in a crash loop: {ERROR}"
    assert "journalctl -u mtai" in report["verdict"]["fix"]
    topics = [f["topic"] for f in report["findings"] if f["status"] == "PROBLEM"]
    assert topics == ["workers", "BACKEND=auto"]  # both reported; the crash loop leads


def test_overload_and_a_filling_queue_are_warnings(rk3588):
    root, models = rk3588
    fake_convert(models, "clip")
    check = health(models, root)
    refused = check.report(farm(rate=3.0, busy=3, refused=12))["verdict"]
    assert refused["level"] == "warn" and "12 requests refused (503)" in refused["text"]
    assert "QUEUE_SIZE" in refused["fix"]
    backing = check.report(farm(rate=3.0, busy=3, queue=40))["verdict"]
    assert backing["text"] == "queue backing up: 40 of 64 jobs waiting"
    starting = check.report(farm(ready=1))["verdict"]
    assert starting["level"] == "warn" and starting["text"].startswith("1 of 3 workers ready")


def test_a_pc_without_npu_says_it_runs_on_the_cpu(tmp_path: Path):
    root = tmp_path / "root"
    (root / "proc").mkdir(parents=True)
    verdict = health(tmp_path / "models", root).report(farm("onnx", rate=1.25))["verdict"]
    assert verdict == {"level": "ok", "fix": "", "text": "running on the CPU (onnxruntime; "
                       "no Rockchip NPU on this machine): 3 workers, 1.2 jobs/s"}


def test_debugfs_closed_to_the_service_user_is_no_warning(rk3588, monkeypatch):
    root, models = rk3588
    fake_convert(models, "clip")
    (root / "sys/kernel/debug/rknpu/version").unlink()  # as if unreadable: absent is a warn
    deny_rknpu_reads(monkeypatch)
    monkeypatch.setattr("workers.verdict.os.geteuid", lambda: 998)  # the unit's user
    report = health(models, root).report(farm(rate=1.0, busy=1))
    assert report["verdict"]["text"] == "1 NPU core busy, 1.0 jobs/s"
    (driver,) = [f for f in report["findings"] if f["topic"] == "NPU driver"]
    assert driver["status"] == "info" and "root-only" in driver["detail"]


def test_the_keyless_page_shows_no_path_of_this_machine(rk3588):
    """Doctor's findings name files and directories (the journal and `mtai doctor` keep
    them); what /status.json carries has them cut to their last part."""
    root, models = rk3588
    report = health(models, root).report(farm("onnx", looping=1))
    texts = [report["verdict"]["text"], report["verdict"]["fix"]]
    texts += [f[key] for f in report["findings"] for key in ("detail", "fix", "headline")]
    assert any("…/" in text for text in texts), texts  # there were paths to cut
    for text in texts:
        assert str(models) not in text and str(root) not in text, text
