"""sd_notify without libsystemd: one datagram to $NOTIFY_SOCKET per state change.

READY=1 once the workers are up, WATCHDOG=1 from the event loop (so a wedged loop gets
the service restarted), STATUS= a line `systemctl status` shows. Outside systemd every
call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("mtai.systemd")


class Notifier:
    def __init__(self) -> None:
        # NOTIFY_SOCKET and WATCHDOG_USEC are set by systemd for Type=notify units.
        address = os.environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = int(os.environ.get("WATCHDOG_USEC", "0") or 0)
        self.watchdog_interval = usec / 2e6 if usec else 0.0
        self._last_ping = 0.0
        self._last_status = ""

    def send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.setblocking(False)  # a full notify queue must never stall the event loop
                sock.sendto(message.encode(), self.address)
        except BlockingIOError:
            log.debug("sd_notify queue full; dropped %r", message)
        except OSError as exc:
            log.warning("sd_notify %r failed: %s", message, exc)

    def ready(self, status: str) -> None:
        self.send(f"READY=1\nSTATUS={status}")
        self._last_status = status

    def status(self, status: str) -> None:
        if status != self._last_status:
            self.send(f"STATUS={status}")
            self._last_status = status

    def watchdog(self) -> None:
        """Ping at half the interval systemd asked for; call it every loop turn."""
        now = time.monotonic()
        if self.watchdog_interval and now - self._last_ping >= self.watchdog_interval:
            self.send("WATCHDOG=1")
            self._last_ping = now

    def stopping(self) -> None:
        self.send("STOPPING=1")
