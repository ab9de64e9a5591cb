"""The supervisor: one single-threaded loop that brokers jobs and keeps its children alive.

Shaped like gunicorn's arbiter: signal handlers only queue the signal (and wake the loop
through a pipe); each turn polls the sockets, handles queued signals, reaps dead children,
kills hung ones, starts what is missing and advances a rolling recycle. Nothing blocks
except the poll, so the systemd watchdog ping from the loop proves the loop is alive.
"""

from __future__ import annotations

import errno
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq

from models.runtime import resolve_backend
from protocol.endpoints import back_endpoint, front_endpoint
from protocol.settings import Settings
from protocol.wire import ABANDONED
from workers import last_words
from workers.broker import Broker
from workers.children import Child, child_env
from workers.dispatch import Dispatcher
from workers.history import History
from workers.identity import parse_worker_identity, worker_identity
from workers.keys import KeyProblem
from workers.link import HEARTBEAT_TIMEOUT
from workers.listener import PortUnavailable, open_listener
from workers.memory import uss_bytes
from workers.nodes import NodeGate
from workers.recycle import Recycler
from workers.signals import HANDLED_SIGNALS, SignalQueue
from workers.systemd import Notifier
from workers.verdict import Health

log = logging.getLogger("mtai.supervisor")

TICK_MS = 250
KILL_GRACE = 3.0  # a hung worker gets SIGTERM, then SIGKILL this much later
FRONT_STOP_GRACE = 30.0  # seconds gunicorn gets to finish its requests on shutdown
WORKER_STOP_GRACE = 10.0
MEMORY_CHECK_SECONDS = 15.0  # reading USS walks page tables (~8 ms per worker): cache it
JOB_GRACE = 5.0  # seconds a job may overrun its deadline before its worker is killed


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.runtime = settings.runtime_dir
        self.started = time.time()
        self.stopping = False
        self.announced = False
        self.idle_recycled = False
        self.memory_checked = 0.0
        self.memory: dict[int, int | None] = {}  # slot -> USS bytes, refreshed by housekeep
        self.context = zmq.Context()
        self.recycler = Recycler()
        self.notifier = Notifier()
        self.history = History()  # the status page's last hour
        self.health = Health(settings)  # its headline: mtai doctor's checks, kept fresh
        self.last_errors: dict[int, str] = {}  # slot -> what its last process died of
        self.workers = [self._worker_child(slot) for slot in range(settings.workers)]
        self.front_child = Child("http front", [], self._child_env(), group=True)
        self.front_ready: set[int] = set()  # gunicorn worker pids serving for the current master
        self.gate: NodeGate | None = None  # NODE_LISTEN: the door for remote worker nodes

    @property
    def children(self) -> list[Child]:
        return [*self.workers, self.front_child]

    # -- main loop -------------------------------------------------------------------------
    def run(self) -> int:
        if not self.start():
            return 1
        while not self.stopping:
            self.tick()
        return self.halt()

    def start(self) -> bool:
        """Take the port, bind the broker, start every child; False if the port stays taken."""
        try:
            self.listener = open_listener(self.settings.http_port)
        except PortUnavailable as exc:
            log.error("%s", exc)
            return False
        self.front_child.argv = self._front_argv()
        self.front_child.pass_fds = (self.listener.fileno(),)
        try:
            self._setup()
        except (OSError, KeyProblem) as exc:  # NODE_LISTEN taken, a key directory unusable
            log.error("%s", exc)
            self.listener.close()
            return False
        for child in self.children:
            child.start()
        return True

    def tick(self) -> None:
        self.poll(TICK_MS)
        self.handle_signals()
        self.reap()
        self.murder()
        self.manage()
        self.recycler.step(self.workers, self.broker)
        self.housekeep()
        self.record()
        self.notify()

    def poll(self, timeout_ms: int) -> None:
        events = dict(self.poller.poll(timeout_ms))
        if self.signals.wake_r in events:
            self.signals.drain()
        sockets = [(self.front, self.broker.on_front), (self.back, self.broker.on_back)]
        if self.gate is not None:
            sockets += [(self.gate.zap_socket, self.gate.handle_zap),
                        (self.gate.socket, self.broker.on_nodes)]
        for socket, handle in sockets:
            while socket.get(zmq.EVENTS) & zmq.POLLIN:
                _guarded(handle)
        _guarded(self.broker.pump)
        _guarded(self.broker.heartbeat)

    def handle_signals(self) -> None:
        for signum in self.signals.take():
            if signum in (signal.SIGTERM, signal.SIGINT):
                log.info("%s: stopping", signal.Signals(signum).name)
                self.stopping = True
            elif signum == signal.SIGHUP:
                self.recycle("SIGHUP")

    def reap(self) -> None:
        for slot, child in enumerate(self.workers):
            pid = child.pid
            if child.reap() is not None:
                self.broker.worker_gone(worker_identity(slot, pid))
                error = last_words.take(self.runtime, slot, pid)
                if error:
                    self.last_errors[slot] = error
        self.front_child.reap()

    def murder(self) -> None:
        """Replace workers that hang: a job past its deadline, or a worker gone silent
        (stopped, wedged, or a node cut off). A hung NPU call never returns by itself. A remote
        worker is only dropped (its node's supervisor restarts it when it is told, or when it
        is gone); its job, if any, is retried here."""
        overdue = self.broker.overdue(JOB_GRACE)
        silent = self.broker.silent(HEARTBEAT_TIMEOUT)
        hung = [(i, "ran past its job deadline") for i in overdue]
        hung += [(i, "stopped heartbeating") for i in silent]
        for identity, why in hung:
            if self.broker.remote(identity):
                if identity in overdue:
                    self.broker.release(identity, ABANDONED, why)  # it restarts itself
                else:
                    self.broker.worker_gone(identity, why)
                continue
            slot, pid = parse_worker_identity(identity)
            self.broker.worker_gone(identity, why)  # its job, if any, was answered already
            if 0 <= slot < len(self.workers) and self.workers[slot].pid == pid:
                log.error("worker %d (pid %s) %s; replacing it", slot, pid, why)
                self.workers[slot].terminate(KILL_GRACE)
        for child in self.children:
            child.escalate()

    def manage(self) -> None:
        for slot, child in enumerate(self.workers):
            if child.due():
                child.argv = self._worker_argv(slot)
                child.start()
        if self.front_child.due():
            self.front_ready.clear()
            self.front_child.start()

    def housekeep(self) -> None:
        """Idle timer and memory watermark: both only queue a rolling recycle."""
        idle_for = time.monotonic() - self.broker.last_job_at
        idle_limit = self.settings.idle_recycle_seconds
        if idle_for < 1.0:
            self.idle_recycled = False
        elif idle_limit is not None and idle_limit <= idle_for and not self.idle_recycled:
            self.idle_recycled = True
            self.recycle(f"idle for {idle_for:.0f}s (SERVER_RESTART_TIME)")
        now = time.monotonic()
        if now - self.memory_checked >= MEMORY_CHECK_SECONDS:
            self.memory_checked = now
            for slot, child in enumerate(self.workers):
                used = self.memory[slot] = uss_bytes(child.pid) if child.pid else None
                limit = self.settings.memory_limit_bytes
                if limit and used and used > limit:
                    reason = f"USS {used >> 20} MB over MAX_WORKER_MEMORY_MB"
                    self.recycler.request([slot], reason)

    def record(self) -> None:
        """The status history: the queue's peak every turn, a sample every few seconds."""
        self.history.watch(len(self.broker.dispatch.queue))
        if self.history.due():
            self.history.sample(self._farm(), self.broker.stats.drain_recent())

    def notify(self) -> None:
        """READY=1 once every worker is ready and the front serves; STATUS= otherwise."""
        remote = [w.peer.key for w in self.broker.workers.values() if w.peer is not None]
        ready, queued = len(self.broker.workers) - len(remote), len(self.broker.dispatch.queue)
        jobs = self.broker.stats.totals()["jobs"]
        line = f"{ready}/{len(self.workers)} workers ready, queue {queued}, {jobs} jobs"
        if self.gate is not None:
            line += f", {len(remote)} remote workers on {len(set(remote))} node(s)"
        if not self.front_ready:
            line += ", HTTP front " + ("in a crash loop" if self.front_child.crash_loop
                                       else "starting")
        if not self.announced and ready >= len(self.workers) and self.front_ready:
            self.announced = True
            self.notifier.ready(line)
            log.info("all %d workers ready", ready)
        else:
            self.notifier.status(line)
        self.notifier.watchdog()

    def recycle(self, reason: str) -> dict[str, Any]:
        queued = self.recycler.request(list(range(len(self.workers))), reason)
        return {"recycling": queued}

    # -- stopping --------------------------------------------------------------------------
    def halt(self) -> int:
        """Stop intake first, keep brokering while the front drains, then stop workers."""
        self.notifier.stopping()
        for child in self.children:
            child.stopping = True
        self.front_child.signal(signal.SIGTERM)
        self._wait_for([self.front_child], FRONT_STOP_GRACE)
        for child in self.workers:
            child.signal(signal.SIGTERM)
        self._wait_for(self.workers, WORKER_STOP_GRACE)
        for child in self.children:
            child.signal(signal.SIGKILL)
            child.escalate()  # stopping: what is left of dead fronts' groups goes too
            if child.process is not None:
                child.process.wait()
        self.listener.close()
        if self.gate is not None:
            self.gate.close()
        self.context.destroy(linger=0)
        log.info("stopped")
        return 0

    def _wait_for(self, children: list[Child], seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and any(c.alive() for c in children):
            self.poll(100)
            self.reap()

    # -- set-up ----------------------------------------------------------------------------
    def _setup(self) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
        for name in ("front", "back"):
            _unlink_stale(self.runtime / name)
        self.front = self.context.socket(zmq.ROUTER)
        self.back = self.context.socket(zmq.ROUTER)
        self.back.setsockopt(zmq.ROUTER_MANDATORY, 1)
        for socket in (self.front, self.back):
            socket.setsockopt(zmq.LINGER, 0)
        self.front.bind(front_endpoint(self.runtime))
        self.back.bind(back_endpoint(self.runtime))
        controls = {"status": self.status, "recycle": lambda options: self.recycle("/restart_v2"),
                    "front_ready": self.on_front_ready}
        if self.settings.node_listen:
            self.gate = NodeGate(self.context, self.settings.node_listen, self.settings.node_keys)
        self.broker = Broker(self.front, self.back, Dispatcher(self.settings.queue_size), controls,
                             gate=self.gate)
        self.signals = SignalQueue(HANDLED_SIGNALS)
        self.poller = zmq.Poller()
        self.poller.register(self.front, zmq.POLLIN)
        self.poller.register(self.back, zmq.POLLIN)
        self.poller.register(self.signals.wake_r, zmq.POLLIN)
        if self.gate is not None:
            self.poller.register(self.gate.socket, zmq.POLLIN)
            self.poller.register(self.gate.zap_socket, zmq.POLLIN)
        log.info("broker on %s; %d workers, backend %s", self.runtime, len(self.workers),
                 self.backend)

    def on_front_ready(self, options: dict[str, Any]) -> dict[str, Any]:
        """A gunicorn worker of the current master has loaded the app and serves."""
        master, pid = options.get("master"), options.get("pid")
        current = master == self.front_child.pid and isinstance(pid, int)
        if current and not self.front_ready:
            log.info("HTTP front serving on port %d (master pid %s)", self.settings.http_port,
                     master)
        if current:
            self.front_ready.add(pid)
        return {"current": current}

    def status(self, options: dict[str, Any]) -> dict[str, Any]:
        """Answer of the `status` control task: /check, /metrics and the status page."""
        farm = self._farm()
        farm.update(backend=self.backend, uptime=round(time.time() - self.started),
                    recycling=self.recycler.busy, recycled=self.recycler.completed,
                    recent=self.history.recent())
        farm["health"] = self.health.report(farm)
        if options.get("history"):  # the status page's charts; /check and /metrics skip it
            farm["history"] = self.history.snapshot(options.get("since"))
        return farm

    def _farm(self) -> dict[str, Any]:
        """The broker's figures with this board's slots and front: what the history samples
        (the status adds the headline, whose checks the loop need not run every sample)."""
        farm = self.broker.status()
        farm["slots"] = [
            {"slot": slot, "pid": c.pid, "restarts": c.restarts, "recycles": c.recycles,
             "crash_loop": c.crash_loop, "uss_bytes": self.memory.get(slot),
             "last_exit": c.last_exit, "last_error": self.last_errors.get(slot)}
            for slot, c in enumerate(self.workers)
        ]
        front = self.front_child
        farm["front"] = {"pid": front.pid, "restarts": front.restarts,
                         "crash_loop": front.crash_loop, "last_exit": front.last_exit,
                         "serving": len(self.front_ready), "processes": self.settings.http_workers}
        return farm

    def _worker_child(self, slot: int) -> Child:
        return Child(f"worker {slot}", self._worker_argv(slot), self._child_env())

    def _worker_argv(self, slot: int) -> list[str]:
        """Resolved at every start: `auto` becomes rknn once models are converted."""
        self.backend = resolve_backend(self.settings.backend, self.settings.model_dir)
        self.health.stale()  # the headline judges the machine again, as auto just did
        argv = [
            sys.executable, "-m", "workers.worker",
            "--endpoint", back_endpoint(self.runtime),
            "--slot", str(slot), "--core", str(slot),
            "--backend", self.backend,
        ]
        return argv

    def _front_argv(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--config", "python:frontend.gunicorn_conf",
                "--bind", f"fd://{self.listener.fileno()}", "frontend.wsgi:app"]

    def _child_env(self) -> dict[str, str]:
        return child_env(self.settings)


def _guarded(step: Callable[[], None]) -> None:
    """The last line of defence: one bad message or bug costs that message, never the loop
    (and with it every worker and request)."""
    try:
        step()
    except Exception:
        log.exception("broker step failed; carrying on")


def _unlink_stale(path: Path) -> None:
    try:
        path.unlink()
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
