"""sd_notify must never stall the supervisor's loop, whatever systemd does."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from workers.systemd import Notifier


def test_a_full_notify_queue_drops_messages_instead_of_blocking(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))  # bound, never read: the queue fills up
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        notifier = Notifier()
        assert notifier.watchdog_interval == 1.0
        started = time.monotonic()
        for n in range(2000):
            notifier.status(f"line {n}")
        assert time.monotonic() - started < 5
        first = receiver.recv(4096).decode()
        assert first == "STATUS=line 0"


def test_outside_systemd_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")  # without a socket it means nothing

    def no_socket(*args, **kwargs):
        raise AssertionError("a socket was opened outside systemd")

    notifier = Notifier()
    monkeypatch.setattr(socket, "socket", no_socket)
    notifier.ready("x")
    notifier.status("y")
    notifier.watchdog()
    notifier.stopping()
    assert notifier.address == ""
