"""The load-balancing broker: ROUTER to the HTTP front, ROUTER to the workers.

Socket IO around `Dispatcher`. Every request gets exactly one answer: the worker's reply,
or an error the broker writes itself (BUSY, WORKER_LOST, TIMEOUT). The HTTP handler never
resends; retries happen here, once, when a worker dies under a job.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

import zmq

from protocol.wire import (
    BUSY,
    CANCEL,
    ERROR,
    HEARTBEAT,
    READY,
    REPLY,
    REQUEST,
    TIMEOUT,
    WORKER_LOST,
    Message,
    ProtocolError,
    decode,
    decode_header,
    encode,
)
from workers.dispatch import Dispatcher, Job
from workers.stats import FarmStats

log = logging.getLogger("mtai.broker")
# One line per answered request; never image data or keys (the broker sees neither).
job_log = logging.getLogger("mtai.jobs")

DEFAULT_DEADLINE_SECONDS = 60.0
MAX_DEADLINE_SECONDS = 3600.0
# Control tasks the broker answers itself; the callable gets the request's options.
Control = Callable[[dict[str, Any]], Any]


@dataclass
class WorkerState:
    """What the broker knows of a connected worker."""

    identity: bytes
    info: dict[str, Any]
    last_seen: float
    jobs: int = 0
    errors: int = 0
    busy_seconds: float = 0.0  # time spent on jobs: the status history's per-core use


@dataclass
class Broker:
    front: zmq.Socket
    back: zmq.Socket
    dispatch: Dispatcher
    controls: dict[str, Control] = field(default_factory=dict)
    workers: dict[bytes, WorkerState] = field(default_factory=dict)
    stats: FarmStats = field(default_factory=FarmStats)
    last_job_at: float = field(default_factory=time.monotonic)
    finished: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))

    def on_front(self) -> None:
        """A request from an HTTP handler."""
        frames = self.front.recv_multipart(copy=False)
        client, body = frames[0].bytes, frames[1:]
        try:
            request = decode([f.buffer for f in body])
        except ProtocolError as exc:
            self._answer_malformed(client, body, exc)
            return
        if request.kind != REQUEST:
            log.warning("front sent a %s message; dropped", request.kind)
            return
        if request.task == CANCEL:
            self._cancel(client, request.options.get("id"))
            return
        if request.task in self.controls:
            self._send_front(client, self._run_control(request))
            return
        now = self.last_job_at = time.monotonic()
        job = Job(request.id, client, request.task, body, now + _budget(request), queued_at=now)
        if job.deadline <= now:
            self._fail(job, BUSY, "request deadline already passed")
        elif not self.dispatch.submit(job):
            self._fail(job, BUSY, f"queue full ({self.dispatch.queue_size} jobs waiting)")

    def on_back(self) -> None:
        """READY, HEARTBEAT or a job's answer from a worker."""
        frames = self.back.recv_multipart(copy=False)
        worker, body = frames[0].bytes, frames[1:]
        try:
            header = decode_header(body[0].buffer) if body else None
        except ProtocolError as exc:
            log.warning("worker %s sent a malformed message: %s", worker, exc)
            return
        if header is None:
            return
        now = time.monotonic()
        state = self.workers.get(worker)
        if header["kind"] == READY:
            info = header.get("result") if isinstance(header.get("result"), dict) else {}
            self.workers[worker] = WorkerState(worker, info, now)
            self.dispatch.worker_idle(worker)
            log.info("worker %s ready", worker.decode(errors="replace"))
        elif state is None:
            log.warning("message from unregistered worker %s dropped", worker)
        elif header["kind"] == HEARTBEAT:
            state.last_seen = now
        elif header["kind"] in (REPLY, ERROR):
            state.last_seen = now
            job = self.dispatch.finish(worker, header["id"])
            if job is None or job.answered:
                log.info("late reply %s from %s dropped", header["id"], worker)
            else:
                error = header.get("error") if header["kind"] == ERROR else None
                code = error.get("code") if isinstance(error, dict) else None
                self._record(job, state, f"error:{code}" if header["kind"] == ERROR else "ok", now)
                self.front.send_multipart([job.client, *body], copy=False)
            self.dispatch.worker_idle(worker)

    def pump(self) -> None:
        """Answer jobs that expired in the queue, then hand jobs to idle workers."""
        now = time.monotonic()
        for job in self.dispatch.expire(now):
            self._fail(job, BUSY, "deadline passed while queued")
        for job in self.dispatch.abandon(now):
            self.stats.count(self._task_name(job.task), "timeouts")
            log.warning("job %s (%s) passed its deadline on a worker", job.id, job.task)
            self._fail(job, TIMEOUT, "the job ran past its deadline")
        for worker, job in self.dispatch.assign(now):
            try:
                self.back.send_multipart([worker, *job.frames], copy=False)
            except zmq.ZMQError:  # ROUTER_MANDATORY: the worker vanished
                self.worker_gone(worker)

    def worker_gone(self, worker: bytes, reason: str = "worker died") -> None:
        """A worker process ended or was killed: retry its job once, else report it."""
        self.workers.pop(worker, None)
        job = self.dispatch.worker_gone(worker)
        if job is None or job.answered:  # an overrun job already got its TIMEOUT answer
            return
        if self.dispatch.retry(job, time.monotonic()):
            self.stats.count(self._task_name(job.task), "retries")
            log.warning("%s under job %s (%s); retrying it", reason, job.id, job.task)
            return
        self.stats.count(self._task_name(job.task), "lost")
        self._fail(job, WORKER_LOST, f"{reason} while running this job, twice")

    def overdue(self, grace: float) -> list[bytes]:
        """Workers still on a job `grace` seconds past its deadline (already answered)."""
        return [worker for worker, _ in self.dispatch.overdue(time.monotonic(), grace)]

    def silent(self, limit: float) -> list[bytes]:
        """Idle workers that stopped heartbeating (stopped or wedged outside a job)."""
        now = time.monotonic()
        return [w for w in self.dispatch.idle if now - self.workers[w].last_seen > limit]

    def status(self) -> dict[str, Any]:
        return {
            "queue": len(self.dispatch.queue),
            "queue_size": self.dispatch.queue_size,
            "running": len(self.dispatch.running),
            "idle": len(self.dispatch.idle),
            "idle_seconds": round(time.monotonic() - self.last_job_at, 1),
            "jobs_last_minute": self._recent(60.0),
            "counters": self.stats.totals(),
            "tasks": self.stats.snapshot(),
            "workers": {
                w.identity.decode(errors="replace"): {
                    **w.info, "jobs": w.jobs, "errors": w.errors,
                    "busy": w.identity in self.dispatch.running,
                    "busy_seconds": round(w.busy_seconds, 3),
                }
                for w in self.workers.values()
            },
        }

    def _cancel(self, client: bytes, job_id: Any) -> None:
        """The front's client of a queued job has gone: the job is not worth a worker."""
        job = self.dispatch.cancel(client, job_id) if isinstance(job_id, str) else None
        if job is not None:
            self.stats.count(self._task_name(job.task), "cancelled")
            self._log_job(job, None, "cancelled", time.monotonic())

    def _run_control(self, request: Message) -> Message:
        try:
            return request.reply(self.controls[request.task](request.options))
        except Exception as exc:  # a control bug must not take the broker down
            log.exception("control %s failed", request.task)
            return request.fail("internal", str(exc))

    def _recent(self, seconds: float) -> int:
        cutoff = time.monotonic() - seconds
        while self.finished and self.finished[0] < cutoff:
            self.finished.popleft()
        return len(self.finished)

    def _task_name(self, task: str) -> str:
        """Stats only for tasks some worker offers, so no client can grow the table."""
        known = any(task in w.info.get("tasks", ()) for w in self.workers.values())
        return task if known else "other"

    def _record(self, job: Job, state: WorkerState, status: str, now: float) -> None:
        failed = status != "ok"
        self._log_job(job, state.identity, status, now)
        task = self.stats.task(self._task_name(job.task))
        started = job.started_at or now
        task.queue.observe(max(0.0, started - job.queued_at))
        task.run.observe(max(0.0, now - started))
        task.recent.add(max(0.0, now - job.queued_at))
        task.counters["jobs"] += 1
        task.counters["errors"] += failed
        state.jobs += 1
        state.errors += failed
        state.busy_seconds += max(0.0, now - started)
        self.finished.append(now)

    def _log_job(self, job: Job, worker: bytes | None, status: str, now: float) -> None:
        started = job.started_at
        job_log.info(
            "job task=%s worker=%s queue_ms=%.1f run_ms=%.1f attempts=%d status=%s",
            self._task_name(job.task), worker.decode(errors="replace") if worker else "-",
            ((started or now) - job.queued_at) * 1000, (now - started) * 1000 if started else 0.0,
            job.attempts, status,
        )

    def _fail(self, job: Job, code: str, message: str) -> None:
        running_on = next((w for w, j in self.dispatch.running.items() if j is job), None)
        self._log_job(job, running_on, code, time.monotonic())
        if code == BUSY:
            self.stats.count(self._task_name(job.task), "busy")
        self._send_front(job.client, Message(ERROR, job.id, task=job.task).fail(code, message))

    def _answer_malformed(self, client: bytes, body: list, exc: ProtocolError) -> None:
        log.warning("malformed request: %s", exc)
        try:
            request_id = decode_header(body[0].buffer)["id"] if body else None
        except ProtocolError:
            request_id = None
        if request_id:
            self._send_front(client, Message(ERROR, request_id).fail("bad_request", str(exc)))

    def _send_front(self, client: bytes, message: Message) -> None:
        self.front.send_multipart([client, *encode(message)], copy=False)


def _budget(request: Message) -> float:
    """Seconds this job may take. The wall-clock deadline on the wire is turned into a
    monotonic one on receipt, so a clock step (NTP at boot on a board without RTC) can
    neither expire every job at once nor keep a hung one alive."""
    if request.deadline is None:
        return DEFAULT_DEADLINE_SECONDS
    return min(request.deadline - time.time(), MAX_DEADLINE_SECONDS)
