"""The load-balancing broker: ROUTER to the HTTP front, ROUTER to the workers.

Socket IO around `Dispatcher`. Every request gets exactly one answer: the worker's reply,
or an error the broker writes itself (BUSY, WORKER_LOST, TIMEOUT). The HTTP handler never
resends; retries happen here, once, when a worker dies under a job.

Workers reach it over the ipc back socket (this board) or, with NODE_LISTEN, over the nodes'
CURVE socket (workers/nodes.py). Both speak the same messages; the broker pings every worker
each second and drops one that stops answering (workers/link.py), and hands a worker only
the tasks it can run with the farm's models (workers/capabilities.py).
"""

from __future__ import annotations

import contextlib
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
    REFUSED,
    REPLY,
    REQUEST,
    TIMEOUT,
    UNREGISTERED,
    VERSION,
    WORKER_LOST,
    Message,
    ProtocolError,
    decode,
    decode_header,
    encode,
    peek_version,
)
from workers.capabilities import Announced, plan
from workers.dispatch import Dispatcher, Job
from workers.link import HEARTBEAT_INTERVAL
from workers.nodes import NodeGate, NodeRecord, Peer, node_status
from workers.stats import FarmStats

log = logging.getLogger("mtai.broker")
# One line per answered request; never image data or keys (the broker sees neither).
job_log = logging.getLogger("mtai.jobs")

DEFAULT_DEADLINE_SECONDS = 60.0
MAX_DEADLINE_SECONDS = 3600.0
# A worker that lost us may send a burst of queued heartbeats before it says READY again:
# one log line per worker and window, not one per message.
UNREGISTERED_LOG_WINDOW = 60.0
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
    socket: zmq.Socket | None = None  # where it is reached: the back socket or the nodes'
    peer: Peer | None = None  # a remote worker's key and address
    ping: tuple[str, float] | None = None  # the last ping: id, when sent
    rtt: float | None = None  # seconds the last answered ping took
    offer: frozenset[str] = frozenset()  # tasks it is given (see capabilities.py)
    excluded: dict[str, str] = field(default_factory=dict)  # tasks refused: other model
    suspect: bool = False  # a sibling on its node lost its connection: no job until it answers

    @property
    def name(self) -> str:
        return self.identity.decode(errors="replace")


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
    gate: NodeGate | None = None  # NODE_LISTEN: the remote workers' socket
    nodes: dict[str, NodeRecord] = field(default_factory=dict)  # node key -> what it did
    pings: int = 0
    plan_models: dict[str, frozenset[str]] = field(default_factory=dict)
    unregistered_logged: dict[bytes, float] = field(default_factory=dict)  # worker -> when

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
        """READY, HEARTBEAT or a job's answer from a worker of this board."""
        self._on_worker(self.back, None)

    def on_nodes(self) -> None:
        """The same from a remote node's worker (CURVE-authenticated)."""
        assert self.gate is not None
        self._on_worker(self.gate.socket, self.gate)

    def _on_worker(self, socket: zmq.Socket, gate: NodeGate | None) -> None:
        frames = socket.recv_multipart(copy=False)
        worker, body = frames[0].bytes, frames[1:]
        if not body:
            return
        try:
            header = decode_header(body[0].buffer)
        except ProtocolError as exc:
            self._malformed(socket, worker, body[0], exc, gate)
            return
        now = time.monotonic()
        state = self.workers.get(worker)
        if state is not None and state.socket is not socket:
            state = None  # the name is taken on the other socket: not this sender's
        if header["kind"] == READY:
            self._register(socket, worker, header, body[0], gate, now)
            return
        if state is None:
            # A worker we dropped (silent) or never knew (we restarted): it must register.
            self._log_unregistered(worker, header["kind"], now)
            self._tell(socket, worker, UNREGISTERED, "this broker does not know you: say READY")
            return
        state.last_seen = now
        if state.peer is not None:
            self.nodes[state.peer.key].last_seen = now
        if header["kind"] == HEARTBEAT:
            if state.ping is not None and header["id"] == state.ping[0]:
                state.rtt = now - state.ping[1]
                if state.peer is not None:
                    self.nodes[state.peer.key].rtt = state.rtt
                if state.suspect:  # alive after all: jobs again
                    state.suspect = False
                    self.dispatch.resume(worker)
        elif header["kind"] in (REPLY, ERROR):
            job = self.dispatch.finish(worker, header["id"])
            if job is None or job.answered:
                log.info("late reply %s from %s dropped", header["id"], worker)
            else:
                error = header.get("error") if header["kind"] == ERROR else None
                code = error.get("code") if isinstance(error, dict) else None
                self._record(job, state, f"error:{code}" if header["kind"] == ERROR else "ok", now)
                self.front.send_multipart([job.client, *body], copy=False)
            self.dispatch.worker_idle(worker)

    def _log_unregistered(self, worker: bytes, kind: str, now: float) -> None:
        """Once per worker and UNREGISTERED_LOG_WINDOW; the memory of who was logged is pruned
        to that window, so unknown senders cannot grow it for long."""
        logged = self.unregistered_logged
        if now - logged.get(worker, -UNREGISTERED_LOG_WINDOW) < UNREGISTERED_LOG_WINDOW:
            return
        if len(logged) >= 1024:
            for old in [w for w, t in logged.items() if now - t >= UNREGISTERED_LOG_WINDOW]:
                del logged[old]
            if len(logged) >= 1024:
                logged.clear()
        logged[worker] = now
        log.info("%s from unregistered worker %s dropped; asking it to register (said once "
                 "a minute per worker)", kind, worker.decode(errors="replace"))

    def _register(self, socket: zmq.Socket, worker: bytes, header: dict[str, Any],
                  frame: zmq.Frame, gate: NodeGate | None, now: float) -> None:
        self.unregistered_logged.pop(worker, None)  # if it is lost again, say so again
        peer, why = gate.admit(worker, frame) if gate is not None else (None, None)
        if why is not None:
            self._refuse(socket, worker, why, peer)
            return
        if worker in self.workers:  # registered again (it lost us): its job, if any, is retried
            self.worker_gone(worker, "registered again")
        info = header.get("result") if isinstance(header.get("result"), dict) else {}
        state = WorkerState(worker, info, now, socket=socket, peer=peer)
        self.workers[worker] = state
        where = ""
        if peer is not None:
            record = self.nodes.setdefault(peer.key, NodeRecord(peer))
            record.peer, record.last_seen = peer, now
            node = info.get("node") if isinstance(info.get("node"), dict) else {}
            record.hostname = str(node.get("hostname", ""))[:100]
            where = f" on node {peer.name or '?'} (key {peer.key_id}) at {peer.address}"
        self._replan()
        self.dispatch.worker_idle(worker)
        log.info("worker %s ready%s", state.name, where)
        for task, version in state.excluded.items():
            log.warning("worker %s runs %s with model %s, the farm runs %s: it gets no %s jobs "
                        "(one library never mixes two models)", state.name, task, version,
                        "/".join(sorted(self.plan_models.get(task, ()))), task)

    def _malformed(self, socket: zmq.Socket, worker: bytes, frame: zmq.Frame,
                   exc: ProtocolError, gate: NodeGate | None) -> None:
        version = peek_version(frame.buffer)
        peer = gate.peer(frame) if gate is not None else None
        if version is not None and version != VERSION:
            self._refuse(socket, worker, f"it speaks protocol version {version!r}, this broker "
                         f"speaks {VERSION}; run the same mtai release on every machine", peer)
        else:
            log.warning("worker %s sent a malformed message: %s", worker, exc)

    def _refuse(self, socket: zmq.Socket, worker: bytes, why: str, peer: Peer | None) -> None:
        where = f" (node key {peer.key_id}, {peer.address})" if peer is not None else ""
        log.error("refused worker %s%s: %s", worker.decode(errors="replace"), where, why)
        self._tell(socket, worker, REFUSED, f"the broker refused this worker: {why}")

    def _tell(self, socket: zmq.Socket, worker: bytes, code: str, message: str) -> None:
        """An error about the worker itself (its id is the worker's name)."""
        note = Message(ERROR, worker.decode(errors="replace")[:128] or "?").fail(code, message)
        with contextlib.suppress(zmq.ZMQError):  # gone already
            socket.send_multipart([worker, *encode(note)], flags=zmq.NOBLOCK)

    def _replan(self) -> None:
        """Who may run what, after a worker came or went."""
        announced = {w: Announced.from_info(s.info, local=s.peer is None)
                     for w, s in self.workers.items()}
        farm = plan(announced)
        self.dispatch.plan(farm.offers, farm.served)
        self.plan_models = farm.models
        for worker, state in self.workers.items():
            state.offer = farm.offers[worker].tasks
            state.excluded = farm.excluded.get(worker, {})

    def heartbeat(self) -> None:
        """Ping every worker once per HEARTBEAT_INTERVAL; a worker whose connection is gone is
        dropped at once, and so is one whose node key is no longer authorised. The keys are
        reread when their folder changes, here or by the ZAP check of a handshake, so each
        worker's key is checked against the current set rather than on a change seen here."""
        now = time.monotonic()
        if self.gate is not None:
            self.gate.keys.reload()
        for state in list(self.workers.values()):
            if state.peer is not None and not self.gate.authorised(state.peer.key):
                self._refuse(state.socket, state.identity, "its key is no longer authorised",
                             state.peer)
                self.worker_gone(state.identity, "its key was removed")
            elif state.ping is None or now - state.ping[1] >= HEARTBEAT_INTERVAL:
                self._ping(state, now)

    def _ping(self, state: WorkerState, now: float) -> None:
        self.pings += 1
        ping = Message(HEARTBEAT, f"ping-{self.pings}")
        try:
            state.socket.send_multipart([state.identity, *encode(ping)], flags=zmq.NOBLOCK)
        except zmq.Again:
            return  # its pipe is full (a big job on its way): ping next turn
        except zmq.ZMQError:  # ROUTER_MANDATORY: the connection is gone
            self.worker_gone(state.identity, "its connection closed")
            return
        state.ping = (ping.id, now)

    def _suspect_siblings(self, key: str) -> None:
        """One worker of a node lost its connection: the node itself may be gone (killed,
        unplugged). Its other workers get no job until they answer a fresh ping, so a retried
        job cannot land on a worker that died with the first."""
        now = time.monotonic()
        for sibling in [s for s in self.workers.values() if s.peer and s.peer.key == key]:
            if not sibling.suspect:
                sibling.suspect = True
                self.dispatch.pause(sibling.identity)
                self._ping(sibling, now)

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
            socket = self.workers[worker].socket if worker in self.workers else self.back
            try:
                socket.send_multipart([worker, *job.frames], copy=False)
            except zmq.ZMQError:  # ROUTER_MANDATORY: the worker vanished before it got the job
                self.dispatch.undo(worker)
                self.worker_gone(worker, "its connection closed")

    def worker_gone(self, worker: bytes, reason: str = "worker died") -> None:
        """A worker process ended or was killed: retry its job once, else report it."""
        state = self.workers.pop(worker, None)
        if state is not None:
            self._replan()
            if state.peer is not None:
                log.warning("node %s (key %s) worker %s left: %s", state.peer.name or "?",
                            state.peer.key_id, state.name, reason)
                self._suspect_siblings(state.peer.key)
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
        """Workers that stopped answering pings: stopped, wedged, or a node cut off. Jobs run
        in a thread of their own, so a busy worker answers too."""
        now = time.monotonic()
        return [w for w, state in self.workers.items() if now - state.last_seen > limit]

    def remote(self, worker: bytes) -> bool:
        state = self.workers.get(worker)
        return state is not None and state.peer is not None

    def release(self, worker: bytes, code: str, reason: str) -> None:
        """Drop a remote worker and tell it why (ABANDONED: it restarts itself)."""
        state = self.workers.get(worker)
        if state is not None:
            self._tell(state.socket, worker, code, reason)
        self.worker_gone(worker, reason)

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
            # This board's workers, one per slot, as before nodes existed; a node's workers
            # are listed under its entry in "nodes" (the shape only grows).
            "workers": {w.name: self._entry(w) for w in self.workers.values() if w.peer is None},
            "nodes": node_status(self.nodes.values(),
                                 [w for w in self.workers.values() if w.peer is not None],
                                 set(self.dispatch.running), self._entry),
            "node_listen": self.gate.listen if self.gate else None,
        }

    def _cancel(self, client: bytes, job_id: Any) -> None:
        """The front's client of a queued job has gone: the job is not worth a worker."""
        job = self.dispatch.cancel(client, job_id) if isinstance(job_id, str) else None
        if job is not None:
            self.stats.count(self._task_name(job.task), "cancelled")
            self._log_job(job, None, "cancelled", time.monotonic())

    def _entry(self, worker: WorkerState) -> dict[str, Any]:
        return {
            **worker.info, "jobs": worker.jobs, "errors": worker.errors,
            "busy": worker.identity in self.dispatch.running,
            "busy_seconds": round(worker.busy_seconds, 3), "given": sorted(worker.offer),
            "rtt_ms": round(worker.rtt * 1000, 3) if worker.rtt is not None else None,
        }

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
        if state.peer is not None:
            self.nodes[state.peer.key].jobs += 1
            self.nodes[state.peer.key].errors += failed
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
