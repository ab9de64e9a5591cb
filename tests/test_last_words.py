"""A dying worker's error reaches the status page (or a node's systemd status):
workers/last_words.py and real crash loops of supervisors run in this process."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from protocol.settings import Settings
from tests.service import free_port
from workers import last_words
from workers.node import NodeSupervisor
from workers.supervisor import Supervisor


def test_last_words_are_one_line_without_paths_and_taken_once(tmp_path: Path):
    error = OSError(2, "No such file or directory: '/var/lib/mtai/models/rknn-rk3588/ocr/x.rknn'")
    text = last_words.describe(error)
    assert text.startswith("FileNotFoundError: [Errno 2]") and "/var/lib" not in text
    assert "…/x.rknn" in text
    assert len(last_words.describe(RuntimeError("x" * 5000))) == last_words.MAX_CHARS
    last_words.leave(tmp_path, 2, RuntimeError("init_runtime returned -1\nsecond line"))
    assert last_words.take(tmp_path, 2, os.getpid() + 1) is None  # another supervisor's worker
    assert (last_words.take(tmp_path, 2, os.getpid())
            == "RuntimeError: init_runtime returned -1 second line")
    assert last_words.take(tmp_path, 2, os.getpid()) is None
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


@pytest.mark.service
def test_a_node_worker_in_a_crash_loop_is_in_the_nodes_log_and_status(tmp_path: Path, caplog):
    """`mtai node`'s workers die where the main board cannot see them (before READY): the
    node logs each one's error and its systemd status names the crash loop's cause."""
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path / "models"), "WORKERS": "1",
                                  "RUNTIME_DIR": str(tmp_path / "run"), "CPU_THREADS": "1",
                                  "NODE_KEYS": str(tmp_path / "keys"),
                                  "NODE_CONNECT": "tcp://127.0.0.1:9",
                                  "NODE_SERVER_KEY": "x" * 40})
    node = NodeSupervisor(settings)
    node.prepare()
    child = node.workers[0]
    real_argv = node._worker_argv(0)
    bad = real_argv[:]
    bad[bad.index("--endpoint") + 1] = "nosuchtransport://x"
    end = time.monotonic() + 60
    try:
        with caplog.at_level("ERROR", logger="mtai.node"):
            while not child.crash_loop and time.monotonic() < end:
                node.reap(0, child)
                if child.due():
                    child.argv = bad
                    child.start()
                time.sleep(0.05)
        assert child.crash_loop, child.last_exit
        assert node.last_errors[0].startswith("ZMQError: "), node.last_errors
        assert f"died of {node.last_errors[0]}" in caplog.text
        assert node.status_line() == (f"worker 0 in a crash loop: {node.last_errors[0]} "
                                      "(journalctl -u mtai-node has its traceback)")
    finally:
        child.stopping = True
        child.signal(9)
        if child.process is not None:
            child.process.wait()
