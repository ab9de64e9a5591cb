"""One worker process: owns one NPU core (or a CPU share), loads its models once, says
READY, then runs one job at a time for as long as the supervisor keeps it.

Started by the supervisor with `python -m workers.worker`, never forked from a process
that already loaded a native runtime. SIGTERM finishes the current job, then exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import zmq

from protocol.settings import Settings
from protocol.wire import (
    BAD_INPUT,
    ERROR,
    HEARTBEAT,
    INTERNAL,
    READY,
    Message,
    ProtocolError,
    decode,
    decode_header,
    encode,
)
from workers import last_words
from workers.identity import worker_identity
from workers.loading import load_runner
from workers.tasks import TaskRunner

log = logging.getLogger("mtai.worker")

POLL_MS = 1000  # how often an idle worker looks up: for a stop flag, an orphaned parent, heartbeats


def serve(endpoint: str, slot: int, core: int, backend: str, settings: Settings) -> int:
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the supervisor, which decides
    parent = os.getppid()
    runner, info = load_runner(settings, backend, core)
    info.update(slot=slot, pid=os.getpid())
    me = worker_identity(slot, os.getpid())
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.IDENTITY, me)
    socket.setsockopt(zmq.LINGER, 2000)
    socket.connect(endpoint)
    socket.send_multipart(encode(Message(READY, me.decode(), result=info)))
    log.info("worker %d ready on core %d (%s)", slot, core, info)
    while not stopping and os.getppid() == parent:
        if not socket.poll(POLL_MS):
            socket.send_multipart(encode(Message(HEARTBEAT, me.decode())))
            continue
        frames = socket.recv_multipart(copy=False)
        socket.send_multipart(reply_frames([f.buffer for f in frames], runner), copy=False)
    socket.close()
    return 0


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
    args = parser.parse_args(argv)
    settings = Settings.inherited()
    logging.basicConfig(
        level=settings.log_level,
        format=f"%(asctime)s worker[{args.slot}] %(levelname)s %(message)s",
    )
    try:
        return serve(args.endpoint, args.slot, args.core, args.backend, settings)
    except Exception as exc:  # the traceback still goes to the log; the status page shows why
        last_words.leave(settings.runtime_dir, args.slot, exc)
        raise


if __name__ == "__main__":
    sys.exit(main())
