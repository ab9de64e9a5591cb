"""Remote worker nodes with real processes on loopback: `mtai serve` with NODE_LISTEN and
`mtai node` process groups, CURVE keys made and added with `mtai keys`, nodes killed under
load, unknown keys, a tampered protocol version, a node without CLIP. Every wait is bounded.

What loopback cannot show: two physical boards, a real LAN (latency, a cable pulled out: the
heartbeat timeout path is the one a SIGSTOPped or partitioned node takes, tested in-process
in test_node_gate.py and by the broker's silence rule in test_farm.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from protocol.settings import Settings
from tests.service import (
    Node,
    Service,
    free_port,
    mtai,
    sleep_job,
    start_node,
    start_service,
    under_load,
    wait_for,
)
from tests.test_farm import failures, post_ocr
from workers.link import HEARTBEAT_TIMEOUT

pytestmark = pytest.mark.service


@dataclass
class Board:
    service: Service
    listen: str
    server_key: str
    keys: Path

    def nodes(self) -> dict[str, dict]:
        return {n["key_id"]: n for n in self.service.farm_status()["nodes"]}

    def node_jobs(self, task: str) -> Counter:
        """Jobs per worker for ``task``, from the broker's job log (one line per answer)."""
        found = re.findall(rf"job task={task} worker=(\S+) .* status=(\S+)",
                           self.service.log_path.read_text(errors="replace"))
        return Counter(worker for worker, status in found if status == "ok")


@pytest.fixture(scope="module")
def board(full_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Board]:
    """The main board: one local worker with OCR and (tiny) CLIP, taking nodes on loopback."""
    work = tmp_path_factory.mktemp("board")
    listen = f"tcp://127.0.0.1:{free_port()}"
    service = start_service(work, full_model_dir, WORKERS="1", NODE_LISTEN=listen,
                            NODE_KEYS=str(work / "keys"), QUEUE_SIZE="16",
                            SERVER_RESTART_TIME="0", HTTP_THREADS="16")
    try:
        service.wait_ready(workers=1)
        init = mtai("keys", "init", NODE_KEYS=str(work / "keys"), NODE_LISTEN=listen)
        assert init.returncode == 0, init.stderr
        assert "mtai node --connect tcp://127.0.0.1:" in init.stdout  # the node's command
        yield Board(service, listen, init.stdout.splitlines()[-1], work / "keys")
    finally:
        assert service.stop() == 0, service.tail()


@dataclass
class NodeA:
    """A node with OCR and no CLIP, two workers; restartable."""

    board: Board
    model_dir: Path
    keys: Path
    log_path: Path
    key: str
    node: Node | None = None

    def start(self) -> None:
        self.node = start_node(self.log_path, self.model_dir, self.keys, self.board.listen,
                               self.board.server_key, workers=2)
        wait_for(lambda: self.board.nodes().get(self.key[:8], {}).get("workers") == 2, 90,
                 f"node did not join\n{self.log_path.read_text()[-3000:]}", self.board.service)


@pytest.fixture(scope="module")
def node_a(board: Board, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[NodeA]:
    work = tmp_path_factory.mktemp("node-a")
    init = mtai("keys", "init", NODE_KEYS=str(work / "keys"))
    key = init.stdout.splitlines()[-1]
    added = mtai("keys", "add", key, "--name", "board-2", NODE_KEYS=str(board.keys),
                 NODE_LISTEN=board.listen)  # while the service runs: no restart
    assert added.returncode == 0, added.stderr
    assert f"--server-key '{board.server_key}'" in added.stdout
    ocr_only = work / "models"
    ocr_only.mkdir()
    (ocr_only / "ocr").symlink_to(model_dir / "ocr", target_is_directory=True)
    made = NodeA(board, ocr_only, work / "keys", work / "node.log", key)
    made.start()
    try:
        yield made
    finally:
        if made.node is not None and made.node.process.poll() is None:  # not left killed
            assert made.node.stop() == 0, made.node.log()[-3000:]


def doctor(model_dir: Path, keys: Path, board: Board) -> str:
    done = mtai("doctor", NODE_CONNECT=board.listen, NODE_SERVER_KEY=board.server_key,
                NODE_KEYS=str(keys), MODEL_DIR=str(model_dir), RUNTIME_DIR=str(keys / "none"))
    return done.stdout + done.stderr


def test_a_node_joins_and_status_check_metrics_and_doctor_show_it(board: Board, node_a: NodeA):
    node = board.nodes()[node_a.key[:8]]
    assert node["name"] == "board-2" and node["address"] == "127.0.0.1" and node["connected"]
    assert node["workers"] == 2 and node["tasks"] == ["ocr", "sleep"]
    wait_for(lambda: board.nodes()[node_a.key[:8]]["rtt_ms"] is not None, 10, "no round trip",
             board.service)
    assert board.nodes()[node_a.key[:8]]["last_heartbeat_seconds"] < 5
    check = board.service.post("/check").json()
    assert [(n["key_id"], n["workers"]) for n in check["nodes"]] == [(node_a.key[:8], 2)]
    assert check["workers"] == 1  # this board's; the node's are in its entry
    status = board.service.farm_status()
    assert list(status["workers"]) == [f"w0.{status['slots'][0]['pid']}"]  # slots unchanged
    assert [w["slot"] for w in board.nodes()[node_a.key[:8]]["worker_list"]] in ([0, 1], [1, 0])
    page_data = requests.get(board.service.url + "/status.json", timeout=10).json()
    assert [n["key_id"] for n in page_data["nodes"]] == [node_a.key[:8]]
    assert len(page_data["workers"]) == 1  # one row per slot of this board
    metrics = requests.get(board.service.url + "/metrics", timeout=10).text
    assert f'mtai_node_workers{{name="board-2",node="{node_a.key[:8]}"}} 2.0' in metrics
    page = requests.get(board.service.url + "/", timeout=10).text
    assert "<table id=nodes>" in page and "board-2" in page
    report = doctor(node_a.model_dir, node_a.keys, board)
    assert f"broker: {board.listen}: reachable, this node's key accepted (CURVE), protocol " \
           "version 1" in report, report


def test_a_node_without_clip_gets_ocr_jobs_but_never_clip_jobs(board: Board, node_a: NodeA,
                                                                shared: Path):
    ocr_image = (shared / "testdata/ocr/rapidocr_text_rec.jpg").read_bytes()
    photo = (shared / "testdata/photos/pokemon.jpeg").read_bytes()

    def one(index: int) -> tuple[str, int, dict]:
        if index % 2:
            response = board.service.post("/clip/img", files={"file": ("p.jpg", photo)})
            return "clip", response.status_code, response.json()
        return "ocr", *post_ocr(board.service, ocr_image)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(one, range(24)))
    assert all(code == 200 for _, code, _ in answers), answers
    assert all(len(body["result"]) == 512 for kind, _, body in answers if kind == "clip")
    assert failures([(code, body) for kind, code, body in answers if kind == "ocr"]) == []
    on_node = [w for w in board.node_jobs("ocr") if w.startswith("n")]
    assert on_node, "the node got no OCR job"
    assert [w for w in board.node_jobs("clip_image") if w.startswith("n")] == []
    assert sum(board.node_jobs("clip_image").values()) == 12


def test_a_node_worker_killed_mid_job_is_respawned_by_its_node_and_its_job_retried(
        board: Board, node_a: NodeA):
    key_id = node_a.key[:8]
    retries = board.service.farm_status()["counters"]["retries"]
    with ThreadPoolExecutor(3) as pool:
        jobs = [pool.submit(sleep_job, board.service, 3.0, 30) for _ in range(3)]
        wait_for(lambda: board.nodes()[key_id]["busy"] == 2, 10, "node workers not busy",
                 board.service)
        victim = next(w for w in board.nodes()[key_id]["worker_list"] if w["busy"])
        os.kill(victim["pid"], signal.SIGKILL)
        assert [job.result(timeout=60) for job in jobs] == ["ok"] * 3
    assert board.service.farm_status()["counters"]["retries"] == retries + 1

    def replaced() -> bool:
        pids = [w["pid"] for w in board.nodes()[key_id]["worker_list"]]
        return len(pids) == 2 and victim["pid"] not in pids

    wait_for(replaced, 60, "the node did not respawn its worker", board.service)
    assert "worker 0 exited with signal SIGKILL" in node_a.log_path.read_text() or \
        "worker 1 exited with signal SIGKILL" in node_a.log_path.read_text()


def test_a_killed_node_under_ocr_load_fails_no_request_then_rejoins(board: Board,
                                                                     node_a: NodeA,
                                                                     shared: Path):
    image = (shared / "testdata/ocr/rapidocr_text_rec.jpg").read_bytes()
    key_id = node_a.key[:8]
    retries = board.service.farm_status()["counters"]["retries"]

    def kill_the_node_mid_job() -> None:
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if board.nodes()[key_id]["busy"]:
                node_a.node.kill()
                return
            time.sleep(0.05)
        pytest.fail("no node worker was ever busy")

    answers = under_load(kill_the_node_mid_job, lambda: post_ocr(board.service, image),
                         until=lambda: not board.nodes()[key_id]["connected"], limit=60,
                         threads=4)
    assert len(answers) >= 4
    assert failures(answers) == []
    assert board.service.farm_status()["counters"]["retries"] > retries  # it had a job

    before = board.nodes()[key_id]["jobs"]
    node_a.start()  # same key, same command: it registers again
    with ThreadPoolExecutor(4) as pool:
        again = list(pool.map(lambda _: post_ocr(board.service, image), range(12)))
    assert failures(again) == []
    assert board.nodes()[key_id]["jobs"] > before, "the node rejoined but got no job"


def test_a_silent_node_is_dropped_after_the_heartbeat_timeout_and_comes_back(board: Board,
                                                                           node_a: NodeA):
    """SIGSTOP: its connections stay open but nothing answers, as a cut-off or frozen board.
    Its jobs are retried here after HEARTBEAT_TIMEOUT; once it runs again it registers anew."""
    key_id = node_a.key[:8]
    retries = board.service.farm_status()["counters"]["retries"]
    group = node_a.node.process.pid
    with ThreadPoolExecutor(3) as pool:
        # Jobs long enough that both node workers still hold theirs when SIGSTOP lands.
        jobs = [pool.submit(sleep_job, board.service, 3.0, 40) for _ in range(3)]
        wait_for(lambda: board.nodes()[key_id]["busy"] == 2, 10, "node workers not busy",
                 board.service)
        os.killpg(group, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            assert [job.result(timeout=60) for job in jobs] == ["ok"] * 3
            waited = time.monotonic() - stopped  # the timeout, then the retried job's 3 s
            assert HEARTBEAT_TIMEOUT - 1.5 <= waited < HEARTBEAT_TIMEOUT + 3.0 + 10, waited
            assert not board.nodes()[key_id]["connected"]
        finally:
            os.killpg(group, signal.SIGCONT)
    assert board.service.farm_status()["counters"]["retries"] == retries + 2
    wait_for(lambda: board.nodes()[key_id]["workers"] == 2, 60,
             "the node did not register again", board.service)
    assert "stopped heartbeating" in board.service.log()


def test_an_unknown_key_is_refused_never_served_then_joins_once_added(board: Board,
                                                                      tmp_path: Path):
    keys = tmp_path / "keys"
    key = mtai("keys", "init", NODE_KEYS=str(keys)).stdout.splitlines()[-1]
    empty = tmp_path / "models"
    empty.mkdir()
    stranger = start_node(tmp_path / "node.log", empty, keys, board.listen, board.server_key,
                          workers=1)
    try:
        wait_for(lambda: f"refused a node with key {key} from 127.0.0.1: not authorised"
                 in board.service.log(), 30, "the broker did not log the refused key",
                 board.service)
        wait_for(lambda: f"does not authorise this node's key {key}" in stranger.log(), 30,
                 f"the node did not log its refusal\n{stranger.log()[-2000:]}", board.service)
        assert "mtai keys add" in board.service.log()
        report = doctor(empty, keys, board)
        assert "refuses this node's key" in report and "mtai keys add" in report, report
        with ThreadPoolExecutor(4) as pool:
            assert set(pool.map(lambda _: sleep_job(board.service, 0.05), range(16))) == {"ok"}
        assert key[:8] not in board.nodes()
        mine = f"n0.{stranger_pid(stranger)}."
        assert not [w for w in board.node_jobs("sleep") if w.startswith(mine)]

        added = mtai("keys", "add", key, NODE_KEYS=str(board.keys), NODE_LISTEN=board.listen)
        assert added.returncode == 0, added.stderr
        wait_for(lambda: board.nodes().get(key[:8], {}).get("workers") == 1, 60,
                 "the node did not join once its key was added (no restart)", board.service)
        assert stranger.process.poll() is None  # the same node process, never restarted
        assert stranger_pid(stranger) == int(mine.split(".")[1])  # and the same worker

        def served() -> bool:
            sleep_job(board.service, 0.2)
            return any(w.startswith(mine) for w in board.node_jobs("sleep"))

        wait_for(served, 30, "the node joined but got no job", board.service)
    finally:
        assert stranger.stop() == 0, stranger.log()[-3000:]
        mtai("keys", "remove", key, NODE_KEYS=str(board.keys))


def stranger_pid(node: Node) -> int:
    """The pid of the node's worker 0 (its supervisor logs it)."""
    found = re.findall(r"started worker 0 \(pid (\d+)\)", node.log())
    assert found, node.log()[-2000:]
    return int(found[-1])


def test_a_node_worker_of_another_protocol_version_is_refused_on_both_sides(
        board: Board, node_a: NodeA, tmp_path: Path):
    """A real worker process whose wire module says version 2 (as a newer release would),
    with an authorised key: the broker refuses it at READY and both logs say why."""
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path), "NODE_KEYS": str(node_a.keys),
                                  "WORKERS": "1", "CPU_THREADS": "1"})
    tampered = ("import sys, protocol.wire as wire; wire.VERSION = 2; "
                "from workers.worker import main; sys.exit(main(sys.argv[1:]))")
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-c", tampered, "--endpoint", board.listen, "--slot", "0",
             "--server-key", board.server_key],
            env={**settings.child_env({}), "PATH": "/usr/bin:/bin"}, stdout=log,
            stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    try:
        wait_for(lambda: "it speaks protocol version 2, this broker speaks 1" in
                 board.service.log(), 60, "no refusal in the broker's log", board.service)
        wait_for(lambda: "speaks protocol version 1, this worker speaks 2" in
                 log_path.read_text(), 30, f"no refusal in the worker's log\n"
                 f"{log_path.read_text()[-2000:]}", board.service)
        with ThreadPoolExecutor(3) as pool:
            assert set(pool.map(lambda _: sleep_job(board.service, 0.05), range(9))) == {"ok"}
        mine = f"n0.{worker.pid}."
        status = board.service.farm_status()
        names = [*status["workers"], *(w["name"] for n in status["nodes"]
                                       for w in n["worker_list"])]
        assert names and not [name for name in names if name.startswith(mine)]
        assert not [w for w in board.node_jobs("sleep") if w.startswith(mine)]
        assert worker.poll() is None  # refused, not crashed: it asks again later
    finally:
        worker.kill()
        worker.wait(10)
    assert json.dumps(board.service.farm_status())


def test_a_taken_node_port_stops_the_service_with_a_clear_message(model_dir: Path,
                                                                  tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = start_service(tmp_path, model_dir, WORKERS="1",
                                NODE_LISTEN=f"tcp://127.0.0.1:{port}",
                                NODE_KEYS=str(tmp_path / "keys"))
        assert service.process.wait(60) == 1
    assert f"cannot listen for nodes on tcp://127.0.0.1:{port}" in service.log()
    assert "started worker" not in service.log()  # nothing was started


def test_a_node_tells_systemd_it_is_ready_and_restarts_its_workers_on_sighup(board: Board,
                                                                             tmp_path: Path):
    """As mtai-node.service runs it: READY=1 and WATCHDOG=1 from the node's main process;
    SIGHUP (systemctl reload) replaces every worker, which register again."""
    import socket as sockets

    keys = tmp_path / "keys"
    key = mtai("keys", "init", NODE_KEYS=str(keys)).stdout.splitlines()[-1]
    mtai("keys", "add", key, NODE_KEYS=str(board.keys))
    empty = tmp_path / "models"
    empty.mkdir()
    notify = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(0.2)
    node = start_node(tmp_path / "node.log", empty, keys, board.listen, board.server_key,
                      workers=1, NOTIFY_SOCKET=str(tmp_path / "notify"), WATCHDOG_USEC="1000000")
    messages: list[str] = []

    def heard(text: str) -> bool:
        with contextlib.suppress(TimeoutError, sockets.timeout):
            messages.append(notify.recv(4096).decode())
        return any(text in m for m in messages)

    try:
        wait_for(lambda: heard("READY=1"), 30, "no READY=1 from the node", board.service)
        wait_for(lambda: heard("WATCHDOG=1"), 10, "no WATCHDOG=1 from the node", board.service)
        wait_for(lambda: board.nodes().get(key[:8], {}).get("workers") == 1, 60,
                 "the node did not join", board.service)
        first = board.nodes()[key[:8]]["worker_list"][0]["pid"]
        node.process.send_signal(signal.SIGHUP)

        def replaced() -> bool:
            workers = board.nodes()[key[:8]]["worker_list"]
            return len(workers) == 1 and workers[0]["pid"] != first

        wait_for(replaced, 60, "SIGHUP did not replace the node's worker", board.service)
        assert "worker 0 recycled" in node.log()  # a planned restart, not a crash
    finally:
        notify.close()
        assert node.stop() == 0, node.log()[-3000:]
        mtai("keys", "remove", key, NODE_KEYS=str(board.keys))
