"""`mtai node`: this machine lends its NPU cores (or its CPU) to the broker of another board.

A small supervisor and nothing else: ``WORKERS`` worker processes, each connected over tcp://
with CURVE to the main board's broker (``--connect``/``NODE_CONNECT``), kept alive as `mtai
serve` keeps its own (workers/children.py: fork+exec, respawn with back-off, crash loops
reported, every worker killed with its supervisor). No HTTP front and no broker here: jobs
come from the main board, which also notices when this node goes silent and retries its jobs
on its other workers.

Signals: SIGTERM/SIGINT stop (each worker finishes its job first); SIGHUP restarts the workers,
which then load models fetched since (a job they no longer answer is retried on the main board).
"""

from __future__ import annotations

import logging
import select
import signal
import sys
import time

from models.runtime import resolve_backend
from protocol.settings import Settings
from workers import last_words
from workers.children import Child, child_env
from workers.keys import add_command, ensure_keypair
from workers.signals import HANDLED_SIGNALS, SignalQueue
from workers.systemd import Notifier

log = logging.getLogger("mtai.node")

TICK_SECONDS = 0.25
WORKER_STOP_GRACE = 10.0


class NodeSupervisor:
    def __init__(self, settings: Settings) -> None:
        if not settings.node_connect or not settings.node_server_key:
            raise ValueError("mtai node needs the broker's address and key: --connect "
                             "tcp://HOST:5570 --server-key KEY (or NODE_CONNECT and "
                             "NODE_SERVER_KEY), as `mtai keys add` printed on the main board")
        self.settings = settings
        self.stopping = False
        self.announced = False
        self.notifier = Notifier()
        self.workers = [Child(f"worker {slot}", [], child_env(settings))
                        for slot in range(settings.workers)]
        self.last_errors: dict[int, str] = {}  # slot -> the error its last worker died of

    def prepare(self) -> str:
        """The runtime directory (where workers leave their last words, workers/last_words.py)
        and this node's key pair; returns the public key."""
        self.settings.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        public, _ = ensure_keypair(self.settings.node_keys)
        return public.decode("ascii")

    def run(self) -> int:
        key = self.prepare()
        log.info("node of %s with %d workers; this node's key is %s (if the main board "
                 "refuses it, run there: %s)", self.settings.node_connect, len(self.workers),
                 key, add_command(key))
        self.signals = SignalQueue(HANDLED_SIGNALS)
        while not self.stopping:
            self.tick()
        return self.halt()

    def tick(self) -> None:
        if select.select([self.signals.wake_r], [], [], TICK_SECONDS)[0]:
            self.signals.drain()
        self.handle_signals()
        for slot, child in enumerate(self.workers):
            self.reap(slot, child)
            child.escalate()
        for slot, child in enumerate(self.workers):
            if child.due():
                child.argv = self._worker_argv(slot)
                child.start()
        self.notify()

    def reap(self, slot: int, child: Child) -> None:
        """The main board never sees a worker that dies before READY (its models did not
        load, say): the cause is logged here and shown in this node's systemd status."""
        pid = child.pid
        if pid is None or child.reap() is None:
            return
        error = last_words.take(self.settings.runtime_dir, slot, pid)
        if error:
            self.last_errors[slot] = error
            log.error("worker %d (pid %d) died of %s", slot, pid, error)

    def handle_signals(self) -> None:
        for signum in self.signals.take():
            received = signal.Signals(signum)
            if received is signal.SIGHUP:
                self.restart_workers()
            elif received is not signal.SIGCHLD:  # SIGTERM, SIGINT
                log.info("%s: stopping", received.name)
                self.stopping = True

    def restart_workers(self) -> None:
        """SIGHUP: every worker finishes its job and is started again (new models load)."""
        log.info("SIGHUP: restarting the workers")
        for child in self.workers:
            if child.alive():
                child.recycling = True
                child.terminate(WORKER_STOP_GRACE)

    def status_line(self) -> str:
        """What `systemctl status mtai-node` shows: the workers, or the first crash loop."""
        for slot, child in enumerate(self.workers):
            if child.crash_loop:
                cause = self.last_errors.get(slot) or child.last_exit
                return (f"worker {slot} in a crash loop: {cause} (journalctl -u mtai-node "
                        "has its traceback)")
        running = sum(child.alive() for child in self.workers)
        return (f"{running}/{len(self.workers)} workers running for the broker at "
                f"{self.settings.node_connect}")

    def notify(self) -> None:
        running = sum(child.alive() for child in self.workers)
        line = self.status_line()
        if not self.announced and running == len(self.workers):
            self.announced = True
            self.notifier.ready(line)
        else:
            self.notifier.status(line)
        self.notifier.watchdog()

    def halt(self) -> int:
        self.notifier.stopping()
        for child in self.workers:
            child.stopping = True
            child.signal(signal.SIGTERM)
        end = time.monotonic() + WORKER_STOP_GRACE
        while time.monotonic() < end and any(c.alive() for c in self.workers):
            time.sleep(0.1)
        for child in self.workers:
            child.signal(signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
            child.reap()
        log.info("stopped")
        return 0

    def _worker_argv(self, slot: int) -> list[str]:
        """Resolved at every start, as `mtai serve` does: `auto` picks up new conversions."""
        backend = resolve_backend(self.settings.backend, self.settings.model_dir)
        return [sys.executable, "-m", "workers.worker", "--endpoint", self.settings.node_connect,
                "--slot", str(slot), "--core", str(slot), "--backend", backend,
                "--server-key", self.settings.node_server_key]
