"""The broker's bookkeeping, free of sockets so every rule can be unit-tested.

Least-recently-used dispatch (the zguide's load-balancing broker): a worker becomes idle
when it says READY or returns a reply, and the idle worker that waited longest gets the
next job. ZeroMQ high-water marks are not a queue bound (a ROUTER drops silently), so the
queue here is our own and bounded; a full queue answers BUSY at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_ATTEMPTS = 2  # a job lost with its worker runs once more; a poison input kills two at most


@dataclass
class Job:
    """A request in flight; `frames` are forwarded to the worker untouched."""

    id: str
    client: bytes
    task: str
    frames: list
    deadline: float
    queued_at: float
    attempts: int = 0
    started_at: float | None = None
    answered: bool = False  # the client already got TIMEOUT; a late result is dropped


@dataclass
class Dispatcher:
    """Queue, idle workers and running jobs. Times are monotonic seconds (the broker turns
    the wire's wall-clock deadline into one on receipt); callers pass `now` so tests control
    time."""

    queue_size: int
    queue: deque[Job] = field(default_factory=deque)
    idle: deque[bytes] = field(default_factory=deque)
    running: dict[bytes, Job] = field(default_factory=dict)
    paused: set[bytes] = field(default_factory=set)

    def submit(self, job: Job) -> bool:
        """Queue a job; False when the queue is full (the caller answers BUSY)."""
        if len(self.queue) >= self.queue_size:
            return False
        self.queue.append(job)
        return True

    def cancel(self, client: bytes, job_id: str) -> Job | None:
        """Take a queued job out because its HTTP client has gone; None when it is not queued
        (already running, answered, or not this client's)."""
        for job in self.queue:
            if job.id == job_id and job.client == client:
                self.queue.remove(job)
                return job
        return None

    def worker_idle(self, worker: bytes) -> None:
        """A worker asks for work (READY, or a reply just returned)."""
        if worker not in self.idle and worker not in self.paused:
            self.idle.append(worker)

    def pause(self, worker: bytes) -> None:
        """Give this worker no more jobs (it is being recycled)."""
        self.paused.add(worker)
        if worker in self.idle:
            self.idle.remove(worker)

    def worker_gone(self, worker: bytes) -> Job | None:
        """Forget a dead worker; return the job it was running, if any."""
        self.paused.discard(worker)
        if worker in self.idle:
            self.idle.remove(worker)
        return self.running.pop(worker, None)

    def retry(self, job: Job, now: float) -> bool:
        """Put a job lost with its worker back at the head of the queue, once."""
        if job.answered or job.attempts >= MAX_ATTEMPTS or job.deadline <= now:
            return False
        job.started_at = None
        self.queue.appendleft(job)
        return True

    def expire(self, now: float) -> list[Job]:
        """Remove queued jobs whose deadline passed: answered, never run."""
        if not any(job.deadline <= now for job in self.queue):
            return []
        expired = [job for job in self.queue if job.deadline <= now]
        self.queue = deque(job for job in self.queue if job.deadline > now)
        return expired

    def assign(self, now: float) -> Iterator[tuple[bytes, Job]]:
        """Pair the longest-idle workers with the oldest live jobs."""
        while self.idle and self.queue:
            job = self.queue.popleft()
            if job.deadline <= now:
                self.queue.appendleft(job)
                return  # expire() answers it
            worker = self.idle.popleft()
            job.attempts += 1
            job.started_at = now
            self.running[worker] = job
            yield worker, job

    def finish(self, worker: bytes, job_id: str) -> Job | None:
        """Match a reply to the job its worker runs; None for a late or unknown reply."""
        job = self.running.get(worker)
        if job is None or job.id != job_id:
            return None
        del self.running[worker]
        return job

    def abandon(self, now: float) -> list[Job]:
        """Running jobs whose deadline just passed: the client is answered now, while the
        worker gets a grace period to finish before it counts as hung."""
        late = [job for job in self.running.values() if not job.answered and job.deadline <= now]
        for job in late:
            job.answered = True
        return late

    def overdue(self, now: float, grace: float) -> list[tuple[bytes, Job]]:
        """Running jobs past their deadline (plus grace): their workers are hung."""
        return [(w, job) for w, job in self.running.items() if job.deadline + grace <= now]
