"""Deployment: the systemd unit, `deploy/install.sh` (make install-system), the container files.

Run here: `systemd-analyze verify` and `security` on the unit; the unit's settings against what
the supervisor does; the supervisor's sd_notify traffic as systemd would receive it; the
installer in a throwaway root (DESTDIR), twice, then uninstalled, and as a dry run; the venv it
builds serving /check; shellcheck; compose.yaml and the Dockerfile read as data.
Not run here (no systemd as PID 1, no NPU, no Docker engine): a real boot of the unit, the
NPU device rules, a docker build.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from models.runtime import soc
from protocol.settings import INSTALLED_KEY_DIR, INSTALLED_MODEL_DIR, Settings, specs
from tests.service import free_port, sleep_job, start_service
from workers import supervisor
from workers.probe import UNIT_RUNTIME_DIR

pytestmark = pytest.mark.install

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
UNIT = DEPLOY / "mtai.service"
NODE_UNIT = DEPLOY / "mtai-node.service"
INSTALLER = DEPLOY / "install.sh"
EXEC_START = "/opt/mtai/venv/bin/mtai serve"
# Installer settings a developer's shell might carry; every test states its own.
INSTALLER_ENV = ("DESTDIR", "DRY_RUN", "PURGE", "SKIP_VENV", "SKIP_MODELS", "MODELS", "EXTRAS",
                 "API_AUTH_KEY", "MTAI_OCR_WHEEL", "CLIP_MODEL_URL", "ROLE", "NODE_CONNECT",
                 "NODE_SERVER_KEY", "OCR_MODEL", "OCR_LANG", "OCR_LANG_URL")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test` installs it (make test-deps, apt-get)"
    return path


def unit_settings(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> values in order (systemd keys may repeat)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def one(settings: dict[str, list[str]], key: str) -> str:
    values = settings.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min)?", value)
    assert match, value
    return float(match[1]) * {"ms": 0.001, "s": 1, "min": 60, None: 1}[match[2]]


def env_file(path: Path) -> dict[str, str]:
    """KEY=value lines, as systemd's EnvironmentFile= reads the ones this project writes."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def installer(action: str, root: Path | None, script: Path = INSTALLER,
              **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in INSTALLER_ENV}
    if root is not None:
        environment["DESTDIR"] = str(root)
    environment.update(env)
    return subprocess.run(["bash", str(script), action], env=environment, capture_output=True,
                          text=True, timeout=600, check=False)


def source_copy(target: Path) -> Path:
    """The files a release tarball would hold, away from edits in the work tree; returns the
    copy's installer."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("deploy", "frontend", "workers", "protocol", "models"):
        shutil.copytree(REPO / name, target / name, ignore=ignore)
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, target / name)
    return target / "deploy" / "install.sh"


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def commands(output: str) -> list[str]:
    """The commands the installer ran (or, in a dry run, would run)."""
    return [line.strip()[2:] for line in output.splitlines() if line.strip().startswith("+ ")]


def snapshot(root: Path) -> dict[str, tuple]:
    state = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        content = b""
        if path.is_symlink():
            content = os.readlink(path).encode()
        elif path.is_file():
            content = path.read_bytes()
        state[str(path.relative_to(root))] = (oct(info.st_mode), info.st_mtime_ns,
                                              hashlib.sha256(content).hexdigest())
    return state


def mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o7777)


# -- the unit ---------------------------------------------------------------------------------
def test_unit_passes_systemd_analyze_verify(tmp_path: Path):
    """Every warning counts (an unknown key is only a warning to systemd). ExecStart must name
    an executable that exists, so the copy points it at a stub; a typo proves the check bites."""
    analyze = tool("systemd-analyze")
    text = UNIT.read_text()
    assert f"ExecStart={EXEC_START}\n" in text
    stub = tmp_path / "mtai"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    checked = tmp_path / "mtai.service"
    checked.write_text(text.replace("/opt/mtai/venv/bin/mtai", str(stub)))
    result = subprocess.run([analyze, "verify", "--man=no", str(checked)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr

    broken = tmp_path / "broken.service"
    broken.write_text(checked.read_text().replace("NotifyAccess=", "NotifyAcess="))
    result = subprocess.run([analyze, "verify", "--man=no", str(broken)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert "Unknown key" in result.stderr and "NotifyAcess" in result.stderr


def test_unit_hardening_score(tmp_path: Path):
    """systemd's own exposure rating stays in its "OK" band (below 4.0 of 10): the hardening
    may not be dropped piecemeal."""
    analyze = tool("systemd-analyze")
    copy = tmp_path / "mtai.service"
    copy.write_text(UNIT.read_text().replace("/opt/mtai/venv/bin/mtai", "/bin/true"))
    result = subprocess.run([analyze, "security", "--offline=true", "--threshold=39", str(copy)],
                            capture_output=True, text=True, timeout=60, check=False)
    score = re.search(r"Overall exposure level for mtai.service: (\d+\.\d)", result.stdout)
    assert score, result.stdout[-2000:] + result.stderr
    assert result.returncode == 0 and float(score[1]) < 4.0, score[0]


def test_unit_matches_what_the_supervisor_does():
    """Cross-checks of the unit against the code it runs (systemd-analyze checks the rest)."""
    unit = unit_settings(UNIT.read_text())
    service = {k.split(".", 1)[1]: v for k, v in unit.items() if k.startswith("Service.")}

    def get(key: str) -> str:
        return one({k: v for k, v in service.items()}, key)

    assert get("ExecStart") == EXEC_START
    # READY=1 comes from the supervisor itself (gunicorn, a child, would send its own).
    assert get("Type") == "notify" and get("NotifyAccess") == "main"
    # The loop pings WATCHDOG=1 at half the interval and turns every TICK_MS.
    assert seconds(get("WatchdogSec")) / 2 >= 20 * supervisor.TICK_MS / 1000
    grace = supervisor.FRONT_STOP_GRACE + supervisor.WORKER_STOP_GRACE
    assert seconds(get("TimeoutStopSec")) >= grace + 5
    assert get("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert signal.SIGHUP in supervisor.HANDLED_SIGNALS  # HUP = rolling recycle
    assert get("RuntimeDirectory") == UNIT_RUNTIME_DIR.name
    assert Settings.from_env({"RUNTIME_DIRECTORY": str(UNIT_RUNTIME_DIR)}).runtime_dir == (
        UNIT_RUNTIME_DIR)
    environment = dict(v.split("=", 1) for v in service["Environment"])
    assert environment["MODEL_DIR"] == str(INSTALLED_MODEL_DIR)
    assert Path("/var/lib") / get("StateDirectory") == INSTALLED_MODEL_DIR.parent
    # SoC detection reads the device tree under /proc (models/runtime/soc.py): nothing may
    # hide it, nor the NPU's device nodes.
    assert str(soc.DEVICE_TREE).startswith("/proc/")
    assert service.get("ProcSubset", ["all"]) == ["all"]
    assert service.get("PrivateDevices", ["no"]) == ["no"]


@pytest.mark.service
def test_sd_notify_reaches_systemd_from_the_main_pid(model_dir: Path, tmp_path: Path):
    """The supervisor as the unit runs it: sockets in $RUNTIME_DIRECTORY, READY=1 (once the
    workers are up and the front serves), WATCHDOG=1, STATUS= and STOPPING=1 sent by the main
    PID (NotifyAccess=main drops anything else), ready within TimeoutStartSec; SIGTERM lets
    the running job finish, then it exits 0 within TimeoutStopSec."""
    unit = unit_settings(UNIT.read_text())
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(0.2)
    runtime = tmp_path / "run"
    messages: list[tuple[int, str]] = []

    def drain() -> None:
        while True:
            try:
                data, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(12))
            except (TimeoutError, socket.timeout):
                return
            pid = next(struct.unpack("3i", payload[:12])[0] for level, kind, payload in ancillary
                       if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
            messages.append((pid, data.decode()))

    started = time.monotonic()
    service = start_service(tmp_path, model_dir, WORKERS="2", RUNTIME_DIR="",
                            RUNTIME_DIRECTORY=str(runtime), NOTIFY_SOCKET=str(tmp_path / "notify"),
                            WATCHDOG_USEC="2000000")
    main = service.process.pid
    try:
        deadline = started + seconds(one(unit, "Service.TimeoutStartSec"))
        while not any(p == main and m.startswith("READY=1") for p, m in messages):
            assert time.monotonic() < deadline and service.process.poll() is None, service.tail()
            drain()
        front = service.farm_status()["front"]
        assert front["serving"] >= 1, front  # READY=1 waited for the front
        assert sorted(p.name for p in runtime.iterdir()) == ["back", "front"]
        time.sleep(1.5)
        drain()
        assert (main, "WATCHDOG=1") in messages
        assert all(p == main for p, _ in messages)  # gunicorn's own READY never got through
        assert any("STATUS=2/2 workers ready" in m for _, m in messages), messages
        with ThreadPoolExecutor(1) as pool:
            job = pool.submit(sleep_job, service, 3.0)
            time.sleep(1.0)
            stop_started = time.monotonic()
            service.process.send_signal(signal.SIGTERM)
            assert job.result(timeout=30) == "ok"  # the job in flight finished
        assert service.process.wait(seconds(one(unit, "Service.TimeoutStopSec"))) == 0
        assert time.monotonic() - stop_started < seconds(one(unit, "Service.TimeoutStopSec"))
        drain()
        assert (main, "STOPPING=1") in messages
        assert "job task=sleep worker=w" in service.log()
    finally:
        notify.close()
        if service.process.poll() is None:
            service.stop()
    strays = sorted({m.splitlines()[0] for p, m in messages if p != main})
    assert not strays, f"only the supervisor may notify systemd: {strays}"


# -- the installer ------------------------------------------------------------------------------
def installer_constants() -> dict[str, str]:
    found = dict(re.findall(r"^readonly ([A-Z_]+)=(\S+)$", INSTALLER.read_text(), re.MULTILINE))
    packages = re.search(r"^readonly PACKAGES=\(([^)]*)\)$", INSTALLER.read_text(), re.MULTILINE)
    assert packages
    found["PACKAGES"] = packages[1]
    return found


def test_installer_paths_match_the_unit_and_setup_cfg():
    constants = installer_constants()
    unit = unit_settings(UNIT.read_text())
    assert one(unit, "Service.ExecStart") == f"{constants['VENV']}/bin/mtai serve"
    assert one(unit, "Service.EnvironmentFile") == constants["ENV_FILE"]
    assert f"MODEL_DIR={constants['MODEL_DIR']}" in unit["Service.Environment"]
    assert constants["MODEL_DIR"] == str(INSTALLED_MODEL_DIR)
    assert constants["UNIT_FILE"] == "/etc/systemd/system/mtai.service"
    assert one(unit, "Service.User") == constants["SERVICE_USER"]
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    include = setup["options.packages.find"]["include"].split()
    top_level = sorted({name.split(".")[0] for name in include})
    assert sorted(constants["PACKAGES"].split()) == top_level


def test_installer_is_shellcheck_clean():
    result = subprocess.run([tool("shellcheck"), "--severity=style", str(INSTALLER)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_into_a_throwaway_root(tmp_path: Path):
    root = tmp_path / "root"
    out = ok(installer("install", root, SKIP_VENV="1"))
    assert (root / "etc/systemd/system/mtai.service").read_bytes() == UNIT.read_bytes()
    assert mode(root / "etc/systemd/system/mtai.service") == "0o644"
    assert mode(root / "etc/mtai") == "0o755"
    assert mode(root / "etc/mtai/mtai.env") == "0o600"
    assert mode(root / "opt/mtai") == "0o755"
    assert mode(root / "var/lib/mtai") == "0o750"
    assert mode(root / "var/lib/mtai/models") == "0o755"
    assert os.readlink(root / "usr/local/bin/mtai") == "/opt/mtai/venv/bin/mtai"
    assert (root / "opt/mtai/README.md").read_bytes() == (REPO / "README.md").read_bytes()

    # A fresh random key, printed once; the rest of the file is the example.
    settings = (root / "etc/mtai/mtai.env").read_text()
    key = env_file(root / "etc/mtai/mtai.env")["API_AUTH_KEY"]
    assert re.fullmatch(r"[0-9a-f]{32}", key) and key in out
    example = (DEPLOY / "mtai.env.example").read_text()
    assert settings == example.replace("API_AUTH_KEY=mt_photos_ai_extra", f"API_AUTH_KEY={key}")

    # What only the live system can do is recorded, not done.
    assert "skipped under DESTDIR: useradd --system" in out
    assert "skipped under DESTDIR: systemctl enable --now mtai.service" in out
    assert not any(c.startswith(("useradd", "usermod", "chown", "systemctl", "runuser"))
                   for c in commands(out))

    before = snapshot(root)
    again = ok(installer("install", root, SKIP_VENV="1"))
    assert commands(again) == [] and "nothing to do" in again
    assert key not in again  # the key is printed when it is made, not on every run
    assert snapshot(root) == before


def test_install_keeps_an_existing_settings_file_and_fixes_its_mode(tmp_path: Path):
    root = tmp_path / "root"
    settings = root / "etc/mtai/mtai.env"
    settings.parent.mkdir(parents=True)
    settings.write_text("API_AUTH_KEY=mine\nWORKERS=2\n")
    settings.chmod(0o644)
    out = ok(installer("install", root, SKIP_VENV="1"))
    assert settings.read_text() == "API_AUTH_KEY=mine\nWORKERS=2\n"
    assert mode(settings) == "0o600"
    assert f"chmod 0600 {settings}" in commands(out)


def test_install_takes_a_given_key_and_refuses_an_unsafe_one(tmp_path: Path):
    ok(installer("install", tmp_path / "a", SKIP_VENV="1", API_AUTH_KEY="mt_photos_ai_extra"))
    assert env_file(tmp_path / "a/etc/mtai/mtai.env")["API_AUTH_KEY"] == "mt_photos_ai_extra"
    bad = installer("install", tmp_path / "b", SKIP_VENV="1", API_AUTH_KEY="two words")
    assert bad.returncode != 0 and "API_AUTH_KEY may only hold" in bad.stderr
    assert not (tmp_path / "b/etc/mtai/mtai.env").exists()


def test_uninstall_removes_what_install_added_but_keeps_settings_and_models(tmp_path: Path):
    root = tmp_path / "root"
    ok(installer("install", root, SKIP_VENV="1"))
    model = root / "var/lib/mtai/models/ocr/manifest.json"
    model.parent.mkdir()
    model.write_text("{}")
    (root / "opt/mtai/venv/bin").mkdir(parents=True)  # what the venv step would have made
    settings = (root / "etc/mtai/mtai.env").read_text()

    out = ok(installer("uninstall", root))
    for gone in ("etc/systemd/system/mtai.service", "usr/local/bin/mtai", "opt/mtai"):
        assert not (root / gone).exists() and not (root / gone).is_symlink(), gone
    assert (root / "etc/mtai/mtai.env").read_text() == settings and model.exists()
    assert "kept: /etc/mtai/mtai.env" in out and "skipped under DESTDIR: systemctl disable" in out
    again = ok(installer("uninstall", root))
    assert commands(again) == [] and "nothing to do" in again

    out = ok(installer("uninstall", root, PURGE="1"))
    assert not (root / "etc/mtai").exists() and not (root / "var/lib/mtai").exists()
    assert "skipped under DESTDIR: userdel mtai" in out


def test_uninstall_leaves_a_foreign_mtai_command_alone(tmp_path: Path):
    root = tmp_path / "root"
    link = root / "usr/local/bin/mtai"
    link.parent.mkdir(parents=True)
    link.write_text("#!/bin/sh\n")
    ok(installer("install", root, SKIP_VENV="1"))
    ok(installer("uninstall", root))
    assert link.read_text() == "#!/bin/sh\n"


def test_dry_run_prints_each_step_and_changes_nothing(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    out = ok(installer("install", root, DRY_RUN="1"))
    steps = commands(out)
    assert f"install -d -m 0755 {root}/opt/mtai" in steps
    assert any(s.startswith("install -D -m 0600 ") and s.endswith(f"{root}/etc/mtai/mtai.env")
               for s in steps)
    assert any(" -m venv --clear " in s for s in steps)
    assert any(" -m pip install " in s for s in steps)
    assert "$ env HOME=/tmp/" in out and " -m workers.cli models fetch ocr" in out
    assert "dry run" in out and f"{len(steps)} command(s) would run" in out
    assert list(root.iterdir()) == []

    ok(installer("install", root, SKIP_VENV="1"))
    before = snapshot(root)
    out = ok(installer("uninstall", root, DRY_RUN="1", PURGE="1"))
    assert f"rm -rf -- {root}/etc/systemd/system/mtai.service" in commands(out)
    assert f"rm -rf -- {root}/var/lib/mtai" in commands(out)
    assert snapshot(root) == before


def test_dry_run_on_this_machine_changes_nothing():
    """What a user runs first on the board: the real paths, the real user database."""
    watched = [Path(p) for p in ("/opt/mtai", "/etc/mtai", "/var/lib/mtai", "/usr/local/bin/mtai",
                                 "/etc/systemd/system/mtai.service")]

    def state() -> tuple:
        user = subprocess.run(["getent", "passwd", "mtai"], capture_output=True, text=True,
                              check=False).stdout
        return user, [(p, p.exists() and snapshot(p) if p.is_dir() else p.exists())
                      for p in watched]

    before = state()
    out = ok(installer("install", None, DRY_RUN="1"))
    assert "dry run: nothing is changed" in out
    if not before[0]:
        assert any(c.startswith("useradd --system") for c in commands(out))
    assert state() == before


@pytest.mark.service
def test_venv_install_serves_with_the_settings_it_wrote(tmp_path: Path):
    """The real venv step (pip install of this repository into a DESTDIR venv, relocated to
    /opt/mtai/venv) and the real model fetch; then the installed package, not this checkout,
    serves /check with the key and settings the installer wrote."""
    root = tmp_path / "root"
    script = source_copy(tmp_path / "src")
    out = ok(installer("install", root, script))
    venv = root / "opt/mtai/venv"
    assert (venv / "bin/mtai").read_text().splitlines()[0] == "#!/opt/mtai/venv/bin/python"
    assert not [p for p in (venv / "bin").iterdir()
                if not p.is_symlink() and str(root).encode() in p.read_bytes()]
    # the default OCR_MODEL, ppocrv6-small, in its own family directory
    assert (root / "var/lib/mtai/models/ocr-ppocrv6-small/manifest.json").is_file(), out
    probe = ("import protocol.settings as s, workers.cli as c; "
             "print(s.Settings.from_env().model_dir); print(c.__file__)")
    clean_env = {k: v for k, v in os.environ.items() if k not in ("MODEL_DIR", "PYTHONPATH")}
    printed = subprocess.run([str(venv / "bin/python"), "-c", probe], cwd="/", env=clean_env,
                             capture_output=True, text=True, check=True).stdout.split()
    assert printed[0] == str(INSTALLED_MODEL_DIR)  # an installed package, not a checkout
    assert printed[1].startswith(str(venv / "lib"))

    again = ok(installer("install", root, script))
    assert commands(again) == [] and "nothing to do" in again
    assert "up to date" in again and "OCR models present and verified" in again

    # As systemd would start it: unit Environment=, then the env file on top.
    unit = unit_settings(UNIT.read_text())
    settings = env_file(root / "etc/mtai/mtai.env")
    port = free_port()
    environment = {**clean_env, **dict(v.split("=", 1) for v in unit["Service.Environment"]),
                   **settings, "MODEL_DIR": str(root / "var/lib/mtai/models"),
                   "HTTP_PORT": str(port), "RUNTIME_DIR": "", "HOME": str(tmp_path),
                   "RUNTIME_DIRECTORY": str(tmp_path / "run"), "WORKERS": "1",
                   "HTTP_WORKERS": "1", "CPU_THREADS": "1", "BACKEND": "onnx"}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([str(venv / "bin/python"), "-m", "workers.cli", "serve"],
                               cwd="/", env=environment, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, \
                (tmp_path / "serve.log").read_text()[-3000:]
            try:
                check = requests.post(f"http://127.0.0.1:{port}/check", timeout=5,
                                      headers={"api-key": settings["API_AUTH_KEY"]})
                if check.status_code == 200 and "ocr" in check.json().get("models", []):
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        assert check.json()["result"] == "pass"
        script = requests.get(f"http://127.0.0.1:{port}/static/status.js", timeout=5)
        assert script.status_code == 200 and "status.json" in script.text  # package data
        wrong = requests.post(f"http://127.0.0.1:{port}/check", timeout=5,
                              headers={"api-key": "mt_photos_ai_extra"})
        assert wrong.status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        log.close()

    # The same installed package as a node: the key pair is made by the venv's `mtai keys init`
    # (as the service user on a live system) and printed with the command for the main board.
    node = ok(installer("install", root, tmp_path / "src/deploy/install.sh", ROLE="node"))
    key = re.search(r"This node's key: (\S{40})\n", node)[1]
    keys_dir = root / "var/lib/mtai/keys"
    assert mode(keys_dir) == "0o700" and mode(keys_dir / "this.key_secret") == "0o600"
    assert f"sudo -u mtai mtai keys add '{key}'" in node
    assert "then put the NODE_CONNECT and NODE_SERVER_KEY it prints" in node
    assert (root / "etc/systemd/system/mtai-node.service").read_bytes() == NODE_UNIT.read_bytes()


# -- a worker node (ROLE=node) --------------------------------------------------------------------
# A CURVE key as `mtai keys init` prints it, with the characters a shell or make would expand.
SERVER_KEY = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
# Settings of the unit's [Service] that must be the same in both units: the hardening, the
# NPU device rules, the user, the files.
SHARED_SERVICE_KEYS = (
    "User", "Group", "SupplementaryGroups", "EnvironmentFile", "Environment", "StateDirectory",
    "StateDirectoryMode", "UMask", "DevicePolicy", "DeviceAllow", "NoNewPrivileges",
    "ProtectSystem", "ProtectHome", "PrivateTmp", "ProtectHostname", "ProtectClock",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
    "RestrictSUIDSGID", "LockPersonality", "RemoveIPC", "CapabilityBoundingSet",
    "AmbientCapabilities", "SystemCallArchitectures", "SystemCallFilter", "SystemCallErrorNumber",
    "Type", "NotifyAccess", "KillMode", "OOMPolicy", "Restart", "WatchdogSec")


def make_install(root: Path, *variables: str, **env: str) -> subprocess.CompletedProcess:
    """`make install-system VAR=value ...` as the README says, into a throwaway root."""
    environment = {k: v for k, v in os.environ.items() if k not in INSTALLER_ENV}
    environment.update(env)
    return subprocess.run(["make", "--no-print-directory", "install-system", f"DESTDIR={root}",
                           "SKIP_VENV=1", *variables], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=300, check=False)


def test_node_unit_passes_systemd_analyze_verify_and_security(tmp_path: Path):
    analyze = tool("systemd-analyze")
    text = NODE_UNIT.read_text()
    assert "ExecStart=/opt/mtai/venv/bin/mtai node\n" in text
    checked = tmp_path / "mtai-node.service"
    checked.write_text(text.replace("/opt/mtai/venv/bin/mtai", "/bin/true"))
    result = subprocess.run([analyze, "verify", "--man=no", str(checked)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    result = subprocess.run([analyze, "security", "--offline=true", "--threshold=39",
                             str(checked)], capture_output=True, text=True, timeout=60,
                            check=False)
    score = re.search(r"Overall exposure level for mtai-node.service: (\d+\.\d)", result.stdout)
    assert score and result.returncode == 0 and float(score[1]) < 4.0, result.stdout[-2000:]


def test_node_unit_matches_what_mtai_node_does():
    from workers import node

    unit = unit_settings(NODE_UNIT.read_text())
    assert one(unit, "Service.ExecStart") == "/opt/mtai/venv/bin/mtai node"
    assert one(unit, "Service.Type") == "notify" and one(unit, "Service.NotifyAccess") == "main"
    assert seconds(one(unit, "Service.WatchdogSec")) / 2 >= 20 * node.TICK_SECONDS
    assert seconds(one(unit, "Service.TimeoutStopSec")) >= node.WORKER_STOP_GRACE + 5
    assert signal.SIGHUP in node.HANDLED_SIGNALS  # ExecReload: the workers restart
    assert one(unit, "Service.ExecReload") == "/bin/kill -HUP $MAINPID"
    # A missing or bad setting exits 2 (workers/cli.py): systemd must not loop on it.
    assert one(unit, "Service.RestartPreventExitStatus") == "2"
    # Its own runtime directory (the workers' last errors), never mtai.service's: both may
    # run on one board, and systemd removes a unit's RuntimeDirectory when it stops.
    assert one(unit, "Service.RuntimeDirectory") == "mtai-node" != UNIT_RUNTIME_DIR.name
    assert one(unit, "Service.RuntimeDirectoryMode") == "0700"
    # NODE_KEYS of an installed package: in the unit's state directory, where the installer
    # makes the key pair.
    assert Path("/var/lib") / one(unit, "Service.StateDirectory") / "keys" == INSTALLED_KEY_DIR
    constants = installer_constants()
    assert constants["KEY_DIR"] == str(INSTALLED_KEY_DIR)
    assert constants["NODE_UNIT_FILE"] == f"/etc/systemd/system/{NODE_UNIT.name}"
    assert one(unit, "Install.WantedBy") == "multi-user.target"


def test_node_unit_keeps_the_services_hardening_and_device_rules():
    service, node = unit_settings(UNIT.read_text()), unit_settings(NODE_UNIT.read_text())
    for key in SHARED_SERVICE_KEYS:
        assert node.get(f"Service.{key}") == service.get(f"Service.{key}"), key


def test_make_install_system_role_node_into_a_throwaway_root(tmp_path: Path):
    root = tmp_path / "root"
    result = make_install(root, "ROLE=node", "NODE_CONNECT=tcp://10.0.0.5:5570",
                          f"NODE_SERVER_KEY={SERVER_KEY}")
    out = ok(result)
    units = root / "etc/systemd/system"
    assert sorted(p.name for p in units.iterdir()) == ["mtai-node.service"]
    assert (units / "mtai-node.service").read_bytes() == NODE_UNIT.read_bytes()
    settings = env_file(root / "etc/mtai/mtai.env")
    assert settings["NODE_CONNECT"] == "tcp://10.0.0.5:5570"
    assert settings["NODE_SERVER_KEY"] == SERVER_KEY  # make expanded none of its `$`
    parsed = Settings.from_env(settings)  # what the unit's `mtai node` will read
    assert (parsed.node_connect, parsed.node_server_key) == ("tcp://10.0.0.5:5570", SERVER_KEY)
    assert "skipped under DESTDIR: systemctl enable --now mtai-node.service" in out
    assert "API key (MT-Photos" not in out  # a node serves no HTTP
    assert "key pair not made; later: sudo -u mtai mtai keys init" in result.stderr  # no venv

    before = snapshot(root)
    again = ok(make_install(root, "ROLE=node"))
    assert commands(again) == [] and "nothing to do" in again and snapshot(root) == before

    removed = ok(installer("uninstall", root))
    assert "skipped under DESTDIR: systemctl disable --now mtai-node.service" in removed
    assert not (units / "mtai-node.service").exists()


def test_a_node_without_its_brokers_address_is_enabled_but_not_started(tmp_path: Path):
    out = ok(installer("install", tmp_path / "root", ROLE="node", SKIP_VENV="1"))
    assert "not started: set NODE_CONNECT and NODE_SERVER_KEY in /etc/mtai/mtai.env" in out
    assert "skipped under DESTDIR: systemctl enable mtai-node.service" in out
    assert "enable --now" not in out


def test_a_node_dry_run_shows_the_key_pair_step(tmp_path: Path):
    root = tmp_path / "root"
    root.mkdir()
    out = ok(installer("install", root, DRY_RUN="1", ROLE="node"))
    assert f"NODE_KEYS={root}/var/lib/mtai/keys" in out and "-m workers.cli keys init" in out
    assert f"install -D -m 0644 {NODE_UNIT} {root}/etc/systemd/system/mtai-node.service" in \
        commands(out)
    assert list(root.iterdir()) == []


@pytest.mark.parametrize(("env", "message"), [
    ({"ROLE": "broker"}, "ROLE must be serve or node"),
    ({"ROLE": "node", "NODE_CONNECT": "10.0.0.5:5570"}, "NODE_CONNECT must look like"),
    ({"ROLE": "node", "NODE_SERVER_KEY": "short"}, "NODE_SERVER_KEY must be the 40 characters"),
])
def test_installer_refuses_a_bad_role_address_or_key(tmp_path: Path, env, message):
    result = installer("install", tmp_path / "root", SKIP_VENV="1", **env)
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "root/etc").exists()


# -- settings -------------------------------------------------------------------------------------
def test_env_example_documents_every_configuration_variable():
    example = (DEPLOY / "mtai.env.example").read_text()
    mentioned = set(re.findall(r"^#?\s*([A-Z_]+)[= ]", example, re.MULTILINE))
    declared = {spec.env for spec in specs()}
    assert declared <= mentioned, declared - mentioned
    assert env_file(DEPLOY / "mtai.env.example") == {"API_AUTH_KEY": "mt_photos_ai_extra"}


# -- container files (Docker cannot build here: no engine) --------------------------------------
def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    instructions, pending = [], ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    assert not pending, "a line continuation runs off the end"
    return instructions


def test_dockerfile_builds_from_this_repository_only():
    instructions = dockerfile_instructions()
    for keyword, rest in instructions:
        if keyword == "COPY":
            *sources, _ = rest.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: not in the repository"
                assert not source.startswith("--from")
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    # No binary from outside PyPI and Debian: no downloads, no ADD of URLs.
    assert not re.search(r"\b(curl|wget)\b|https?://", runs)
    assert not any(keyword == "ADD" for keyword, _ in instructions)
    assert '"$TARGETARCH" = "arm64"' in runs and "/src[rknn]" in runs
    # the same command as the systemd unit
    assert ("CMD", json.dumps(EXEC_START.rsplit("/", 1)[1].split())) in instructions
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    include = configparser.ConfigParser()
    include.read(REPO / "setup.cfg")
    packages = {name.split(".")[0] for name in include["options.packages.find"]["include"].split()}
    for needed in ("setup.cfg", "pyproject.toml", "README.md", *(f"{p}/" for p in packages)):
        assert f"!{needed}" in ignore, needed


def test_dockerfile_shell_is_shellcheck_clean(tmp_path: Path):
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\nset -eu\nTARGETARCH=${TARGETARCH:-}\n" + "\n".join(runs) + "\n")
    result = subprocess.run([tool("shellcheck"), "--shell=sh", str(script)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout


def test_compose_runs_the_same_supervisor_with_the_npu_mapped():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["mtai"]
    assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert service["command"] == EXEC_START.rsplit("/", 1)[1].split()
    port = service["environment"]["HTTP_PORT"]
    assert f"{port}:{port}" in service["ports"]
    assert "/dev/dri:/dev/dri" in service["devices"]
    grace = supervisor.FRONT_STOP_GRACE + supervisor.WORKER_STOP_GRACE
    assert seconds(service["stop_grace_period"]) >= grace + 5
    assert f"models:{INSTALLED_MODEL_DIR}" in service["volumes"] and "models" in compose["volumes"]


def test_deploy_files_name_no_interpreter_of_this_machine():
    """Nothing under deploy/ depends on the developer's machine."""
    for path in DEPLOY.iterdir():
        text = path.read_text()
        assert str(REPO) not in text and sys.prefix not in text, path


def test_every_install_takes_the_locked_versions():
    """deploy/constraints.txt pins every requirement of setup.cfg (product, rknn and dev
    extras), and the Makefile, the installer and the Dockerfile all install with it."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    wanted = setup["options"]["install_requires"].splitlines()
    for extra in ("rknn", "dev"):
        wanted += setup["options.extras_require"][extra].splitlines()
    names = {re.split(r"[<>=!~;\[ ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
             for line in wanted if line.strip() and not line.strip().startswith("#")}
    pinned = {line.split("==", 1)[0].lower() for line in
              (DEPLOY / "constraints.txt").read_text().splitlines() if "==" in line}
    assert names and names <= pinned, f"not in deploy/constraints.txt (make lock): {names - pinned}"
    assert "-c $(CONSTRAINTS)" in (REPO / "Makefile").read_text()
    assert '-c "$src/$CONSTRAINTS"' in INSTALLER.read_text()
    assert "pip install -c /src/deploy/constraints.txt" in (DEPLOY / "Dockerfile").read_text()
