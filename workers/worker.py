"""One worker process: owns one NPU core (or a CPU share), loads its models once, says
READY, then runs one job at a time for as long as its supervisor keeps it.

Started by a supervisor with `python -m workers.worker`, never forked from a process that
already loaded a native runtime: by `mtai serve` (broker over ipc://) or by `mtai node` on
another machine (the main board's broker over tcp:// with CURVE). The job runs in a thread of
its own while the main thread keeps the socket: it answers the broker's heartbeats during long
jobs, so a silent worker really is a dead (or cut-off) one. SIGTERM finishes the current job,
then exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket as sockets
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from protocol.settings import Settings
from protocol.wire import (
    BAD_INPUT,
    BUSY,
    ERROR,
    INTERNAL,
    Message,
    ProtocolError,
    decode,
    decode_header,
    encode,
)
from workers import last_words
from workers.identity import node_worker_identity, worker_identity
from workers.keys import ensure_keypair
from workers.link import Abandoned, Curve, Link
from workers.loading import load_runner
from workers.tasks import TaskRunner

log = logging.getLogger("mtai.worker")

POLL_MS = 1000  # how often an idle worker looks up: for a stop flag, an orphaned parent, the broker
EXIT_ABANDONED = 3  # the broker gave up on our job: exit so the supervisor starts a fresh worker


class JobThread:
    """One thread that loads the models and then runs one job at a time, off the main thread,
    waking the main loop when a job is done. Loading happens in the same thread as every
    inference, so a runtime that ties its context to the thread that made it (an NPU driver)
    sees one thread only."""

    def __init__(self) -> None:
        self.runner = TaskRunner()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="job")  # its one thread is reused
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.future: Future | None = None

    @property
    def busy(self) -> bool:
        return self.future is not None

    def load(self, settings: Settings, backend: str, core: int) -> dict[str, Any]:
        """Load the models in the job thread; returns what the worker announces at READY."""
        self.runner, info = self.pool.submit(load_runner, settings, backend, core).result()
        return info

    def start(self, frames: list) -> None:
        self.future = self.pool.submit(reply_frames, [f.buffer for f in frames], self.runner)
        self.future.add_done_callback(lambda _: os.write(self.wake_w, b"."))

    def finished(self) -> list | None:
        """The reply frames once the job is done, else None."""
        if self.future is None or not self.future.done():
            return None
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_r, 64)
        future, self.future = self.future, None
        return future.result()  # reply_frames answers every failure itself


def serve(endpoint: str, slot: int, core: int, backend: str, settings: Settings,
          server_key: str | None = None) -> int:
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which decides
    parent = os.getppid()
    jobs = JobThread()
    info = jobs.load(settings, backend, core)
    info.update(slot=slot, pid=os.getpid())
    curve = None
    if endpoint.startswith("tcp://"):
        public, secret = ensure_keypair(settings.node_keys)
        curve = Curve((server_key or "").encode(), public, secret)
        info["node"] = {"hostname": sockets.gethostname(), "workers": settings.workers}
        me = node_worker_identity(slot, os.getpid())
    else:
        me = worker_identity(slot, os.getpid())
    link = Link(endpoint, me, info, curve, extra_fds=(jobs.wake_r,))
    link.open()
    log.info("worker %d ready on core %d (%s)", slot, core, info)
    try:
        while (not stopping or jobs.busy) and os.getppid() == parent:
            link.tick(idle=not jobs.busy and not stopping)
            events = dict(link.poller.poll(POLL_MS))
            request = link.handle(events)
            if request is not None:
                if jobs.busy:  # the broker gives one job at a time; never drop one silently
                    link.send(refusal(request, "this worker is busy"))
                else:
                    jobs.start(request)
            done = jobs.finished()
            if done is not None:
                link.send(done)
    except Abandoned as exc:
        log.error("the broker gave up on this worker's job (%s); restarting the worker", exc)
        logging.shutdown()
        os._exit(EXIT_ABANDONED)  # the job thread may be stuck in a native call: do not join it
    link.close(linger=2000)
    return 0


def refusal(frames: list, why: str) -> list:
    request_id = decode_header(frames[0].buffer)["id"]
    return encode(Message(ERROR, request_id).fail(BUSY, why))


def reply_frames(frames: list, runner: TaskRunner) -> list:
    """The encoded answer; one that cannot be encoded (a NaN score, a giant message) becomes
    an error reply, so the same input cannot go on to kill the retry's worker too."""
    reply = answer(frames, runner)
    try:
        return encode(reply)
    except ProtocolError as exc:
        log.error("reply to %s cannot be sent: %s", reply.id, exc)
        return encode(Message(ERROR, reply.id).fail(INTERNAL, f"unsendable result: {exc}"[:500]))


def answer(frames: list, runner: TaskRunner) -> Message:
    """Run one job; a job whose arrays do not decode is refused by id, never dropped."""
    try:
        return runner.run(decode(frames))
    except ProtocolError as exc:
        request_id = decode_header(frames[0])["id"]  # the broker validated the header
        return Message(ERROR, request_id).fail(BAD_INPUT, str(exc))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.worker")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--slot", type=int, required=True)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--backend", default="onnx", help="resolved by the supervisor")
    parser.add_argument("--server-key", default=None, help="the broker's CURVE key (tcp://)")
    args = parser.parse_args(argv)
    if args.endpoint.startswith("tcp://") and not args.server_key:
        parser.error("a tcp:// endpoint needs --server-key (the broker's CURVE public key)")
    settings = Settings.inherited()
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s worker[{args.slot}] %(levelname)s %(message)s",
    )
    try:
        return serve(args.endpoint, args.slot, args.core, args.backend, settings,
                     args.server_key)
    except Exception as exc:  # the traceback still goes to the log; the status page shows why
        last_words.leave(settings.runtime_dir, args.slot, exc)
        raise


if __name__ == "__main__":
    sys.exit(main())
