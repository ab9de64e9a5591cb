"""Hostile HTTP connections from this host, for the slow-client test and benchmark: headers
trickled a byte every few seconds, a body that stops after a few bytes, a Content-Length
longer than the body. One thread drives them all and records when the server closes each."""

from __future__ import annotations

import errno
import socket
import statistics
import threading
import time
from dataclasses import dataclass, field

KINDS = ("trickle", "stall", "short")
TRICKLE_SECONDS = 3.0


@dataclass
class Hostile:
    """One hostile connection and what happened to it."""

    kind: str
    sock: socket.socket
    opened: float
    pending: bytes  # what a trickler has still to send, one byte at a time
    next_send: float = 0.0
    closed_after: float | None = None  # seconds from opening until the server closed it
    answer: bytes = b""  # what the server said before closing, if anything


def request_head(kind: str, host: str) -> tuple[bytes, bytes]:
    """(what to send at once, what to trickle)."""
    boundary = "b0undary"
    if kind == "trickle":
        head = (f"POST /ocr HTTP/1.1\r\nHost: {host}\r\napi-key: nobody\r\n"
                "Content-Length: 100\r\n\r\n")
        return b"", head.encode()
    head = (f"POST /predict HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n")
    if kind == "stall":
        return (head + "Content-Length: 100000\r\n\r\n").encode() + b"--b0un", b""
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; "
            "filename=\"blob\"\r\n\r\n")
    return (head + "Content-Length: 5000\r\n\r\n" + body).encode() + b"x" * 500, b""


@dataclass
class Attack:
    """N hostile connections driven by one thread; records when the server closes each."""

    host: str
    port: int
    count: int
    conns: list[Hostile] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    failed_to_open: int = 0

    def open(self) -> None:
        for index in range(self.count):
            kind = KINDS[index % len(KINDS)]
            try:
                sock = socket.create_connection((self.host, self.port), timeout=10)
            except OSError:
                self.failed_to_open += 1
                continue
            now = time.monotonic()
            first, trickle = request_head(kind, self.host)
            if first:
                sock.sendall(first)
            sock.setblocking(False)
            self.conns.append(Hostile(kind, sock, now, trickle, now))

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for conn in self.conns:
                if conn.closed_after is not None:
                    continue
                self._watch(conn, now)
                if conn.closed_after is None and conn.pending and now >= conn.next_send:
                    try:
                        conn.sock.send(conn.pending[:1])
                        conn.pending = conn.pending[1:]
                    except BlockingIOError:
                        pass
                    except OSError:
                        conn.closed_after = now - conn.opened
                    conn.next_send = now + TRICKLE_SECONDS
            self.stop.wait(0.25)

    def _watch(self, conn: Hostile, now: float) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EPIPE):
                conn.closed_after = now - conn.opened
            return
        if data:
            conn.answer += data[:200]
        else:
            conn.closed_after = now - conn.opened

    def start(self) -> threading.Thread:
        """Open the connections, then drive them from a thread until ``close``."""
        self.open()
        driver = threading.Thread(target=self.run, name="hostile-clients", daemon=True)
        driver.start()
        return driver

    def close(self) -> None:
        self.stop.set()
        for conn in self.conns:
            conn.sock.close()

    def of_kind(self, kind: str) -> list[Hostile]:
        return [c for c in self.conns if c.kind == kind]

    def summary(self, kind: str) -> str:
        mine = self.of_kind(kind)
        closed = sorted(c.closed_after for c in mine if c.closed_after is not None)
        status = {c.answer.split(b"\r\n", 1)[0].decode(errors="replace") for c in mine
                  if c.closed_after is not None and c.answer}
        median = statistics.median(closed) if closed else 0.0
        when = (f", after {closed[0]:.0f}-{closed[-1]:.0f} s (median {median:.0f})"
                if closed else "")
        said = f", answered {sorted(status)}" if status else ""
        return f"{kind}: {len(closed)} of {len(mine)} closed by the server{when}{said}"
