"""A dying worker's error reaches the status page: workers/last_words.py and a real crash
loop in a supervisor run in this process."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from protocol.settings import Settings
from tests.service import free_port
from workers import last_words
from workers.supervisor import Supervisor


def test_last_words_are_one_line_without_paths_and_taken_once(tmp_path: Path):
    error = OSError(2, "No such file or directory: '/var/lib/mtai/models/rknn-rk3588/ocr/x.rknn'")
    text = last_words.describe(error)
    assert text.startswith("FileNotFoundError: [Errno 2]") and "/var/lib" not in text
    assert "…/x.rknn" in text
    assert len(last_words.describe(RuntimeError("x" * 5000))) == last_words.MAX_CHARS
    last_words.leave(tmp_path, 2, RuntimeError("init_runtime returned -1\nsecond line"))
    assert last_words.take(tmp_path, 2) == "RuntimeError: init_runtime returned -1 second line"
    assert last_words.take(tmp_path, 2) is None
    last_words.leave(tmp_path / "gone", 0, RuntimeError("x"))  # never raises


@pytest.mark.service
def test_a_worker_in_a_crash_loop_is_the_headline_with_its_error(tmp_path: Path):
    """Real worker processes that load (no models here: quick) and then die on an endpoint
    ZeroMQ refuses: the supervisor backs off, and its status names the error."""
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path / "models"), "WORKERS": "1",
                                  "RUNTIME_DIR": str(tmp_path / "run"), "CPU_THREADS": "1",
                                  "HTTP_PORT": str(free_port())})
    supervisor = Supervisor(settings)
    real_argv = supervisor._worker_argv

    def bad_endpoint(slot: int) -> list[str]:
        argv = real_argv(slot)
        argv[argv.index("--endpoint") + 1] = "nosuchtransport://x"
        return argv

    supervisor._worker_argv = bad_endpoint
    supervisor.workers[0].argv = bad_endpoint(0)
    supervisor._front_argv = lambda: [sys.executable, "-c", "import time; time.sleep(60)"]
    assert supervisor.start()
    try:
        end = time.monotonic() + 60
        while not supervisor.workers[0].crash_loop and time.monotonic() < end:
            supervisor.tick()
        status = supervisor.status({"history": True})
        slot = status["slots"][0]
        assert slot["crash_loop"], slot
        assert slot["last_error"].startswith("ZMQError: "), slot
        verdict = status["health"]["verdict"]
        assert verdict["level"] == "problem"
        assert verdict["text"] == f"worker 0 in a crash loop: {slot['last_error']}"
        assert "journalctl -u mtai" in verdict["fix"]
        assert "history" in status and isinstance(status["history"]["t"], list)
    finally:
        supervisor.halt()
