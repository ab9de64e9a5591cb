"""The one settings module: every variable validated once, handed down unchanged, documented."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.face.packs import PACKS
from models.ocr.generations import OCR_LANGS, OCR_MODELS
from models.runtime import BACKENDS
from models.runtime.soc import SUPPORTED_SOCS
from protocol.settings import (
    BACKEND_CHOICES,
    FACE_PACKS,
    OCR_LANG_CHOICES,
    OCR_MODEL_CHOICES,
    SETTINGS_ENV,
    SOC_CHOICES,
    Settings,
    SettingsError,
    markdown_table,
    specs,
)

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("frontend", "workers", "protocol", "models")
# Who else may touch os.environ, and why: systemd's own protocol variables, the copy of the
# environment handed to children, and the PYTHONPATH of the CLIP export subprocess.
ENVIRON_READERS = {
    "protocol/settings.py": "the settings",
    "workers/systemd.py": "NOTIFY_SOCKET / WATCHDOG_USEC, systemd's notify protocol",
    "workers/children.py": "the children's environment",
    "models/clip/fetch.py": "PYTHONPATH of the cn_clip export subprocess",
}


@pytest.mark.parametrize(("name", "value", "accepted"), [
    ("QUEUE_SIZE", "64.0", "a whole number from 1 to 100000"),
    ("QUEUE_SIZE", "0", "a whole number from 1 to 100000"),
    ("HTTP_PORT", "70000", "a whole number from 1 to 65535"),
    ("WORKERS", "three", "a whole number from 1 to 64"),
    ("REQUEST_TIMEOUT", "nan", "a number above 0 to 3600"),
    ("REQUEST_TIMEOUT", "inf", "a number above 0 to 3600"),
    ("REQUEST_TIMEOUT", "0", "a number above 0 to 3600"),
    ("MAX_UPLOAD_MB", "-1", "a number above 0 to 10000"),
    ("BACKEND", "tpu", "one of auto, onnx, rknn, rknn-sim"),
    ("AUTO_LOAD_TXT_MODAL", "maybe", "on or off"),
    ("RKNN_TARGET", "rk3399", "one of rk3588"),
    ("LOG_LEVEL", "chatty", "one of DEBUG, INFO"),
    ("CLIP_MODEL_URL", "ftp://x", "an http://, https:// or file:// URL"),
    ("NODE_LISTEN", "0.0.0.0:5570", "tcp://HOST:PORT"),
    ("NODE_LISTEN", "tcp://0.0.0.0", "tcp://HOST:PORT"),
    ("NODE_LISTEN", "tcp://host:99999", "tcp://HOST:PORT"),
    ("NODE_CONNECT", "ipc:///run/x", "tcp://HOST:PORT"),
    ("NODE_SERVER_KEY", "short", "a CURVE public key (40 characters of Z85"),
    ("NODE_SERVER_KEY", "'" * 40, "a CURVE public key (40 characters of Z85"),
])
def test_a_bad_value_names_the_variable_the_value_and_what_is_accepted(name, value, accepted):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r} is not accepted: expected ")
    assert accepted in message


def test_unset_or_empty_means_the_default_and_values_are_typed(tmp_path: Path):
    assert Settings.from_env({"QUEUE_SIZE": "", "WORKERS": " "}).queue_size == 64
    settings = Settings.from_env({
        "QUEUE_SIZE": " 12 ", "REQUEST_TIMEOUT": "2.5", "CLIP_BGR_COMPAT": "ON",
        "BACKEND": "ONNX", "LOG_LEVEL": "debug", "MODEL_DIR": str(tmp_path),
        "SERVER_RESTART_TIME": "-1", "MAX_WORKER_MEMORY_MB": "5",
    })
    assert (settings.queue_size, settings.request_timeout, settings.clip_bgr_compat) == (
        12, 2.5, True)
    assert (settings.backend, settings.log_level, settings.model_dir) == (
        "onnx", "DEBUG", tmp_path)
    assert settings.idle_recycle_seconds is None  # 0 or less: never
    assert settings.memory_limit_bytes == 5 * 1024 * 1024


def test_machine_dependent_defaults(tmp_path: Path):
    plain = Settings.from_env({})
    assert plain.model_dir == REPO / "data" / "models"  # a source checkout
    assert plain.runtime_dir == Path("/tmp") / f"mtai-{os.getuid()}-8060"
    xdg = Settings.from_env({"XDG_RUNTIME_DIR": str(tmp_path), "HTTP_PORT": "9000"})
    assert xdg.runtime_dir == tmp_path / f"mtai-{os.getuid()}-9000"
    systemd = Settings.from_env({"RUNTIME_DIRECTORY": "/run/mtai:/run/other"})
    assert systemd.runtime_dir == Path("/run/mtai")
    assert Settings.from_env({"RUNTIME_DIR": str(tmp_path)}).runtime_dir == tmp_path
    assert Settings.from_env({"WORKERS": "64"}).threads_per_worker == 1


def test_node_settings_are_off_by_default_and_typed(tmp_path: Path):
    plain = Settings.from_env({})
    assert plain.node_listen is None and plain.node_connect is None
    assert plain.node_keys == REPO / "data" / "keys"  # a source checkout, like MODEL_DIR
    key = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
    given = Settings.from_env({"NODE_LISTEN": "tcp://0.0.0.0:5570", "NODE_SERVER_KEY": key,
                               "NODE_KEYS": str(tmp_path), "NODE_CONNECT": "tcp://[::1]:5570"})
    assert (given.node_listen, given.node_server_key, given.node_keys, given.node_connect) == (
        "tcp://0.0.0.0:5570", key, tmp_path, "tcp://[::1]:5570")


def test_command_line_values_are_checked_like_the_variables():
    settings = Settings.from_env({}).override(node_connect="tcp://board:5570", workers=None)
    assert settings.node_connect == "tcp://board:5570" and settings.workers == 3
    with pytest.raises(SettingsError, match="NODE_SERVER_KEY: expected a CURVE public key"):
        settings.override(node_server_key="abc")


def test_children_get_the_validated_values_unchanged(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path):
    settings = Settings.from_env({"MODEL_DIR": str(tmp_path), "MTAI_OCR_WHEEL": "/w.whl",
                                  "QUEUE_SIZE": "7", "API_AUTH_KEY": "k"})
    monkeypatch.setenv(SETTINGS_ENV, settings.to_json())
    monkeypatch.setenv("QUEUE_SIZE", "64.0")  # what the child's environment says is ignored
    assert Settings.inherited() == settings
    monkeypatch.delenv(SETTINGS_ENV)
    with pytest.raises(SettingsError, match="mtai serve"):
        Settings.inherited()


def test_mtai_refuses_a_bad_value_before_starting_anything(tmp_path: Path):
    """The reported bug: QUEUE_SIZE=64.0 was taken by the supervisor and refused by the
    front, which then restarted forever. Now nothing starts."""
    env = {**os.environ, "QUEUE_SIZE": "64.0", "RUNTIME_DIR": str(tmp_path / "run")}
    done = subprocess.run([sys.executable, "-m", "workers.cli", "serve"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "QUEUE_SIZE='64.0' is not accepted: expected a whole number" in done.stderr
    assert not (tmp_path / "run").exists()  # no broker socket, no child was started


def test_readme_shows_the_table_the_declarations_make():
    assert markdown_table() in (REPO / "README.md").read_text()


def test_the_env_example_names_only_declared_settings():
    declared = {spec.env for spec in specs()}
    example = (REPO / "deploy" / "mtai.env.example").read_text().splitlines()
    named = {line.lstrip("#").split("=", 1)[0].strip() for line in example
             if "=" in line and line.lstrip("#").split("=", 1)[0].strip().isupper()}
    assert named, "no settings found in mtai.env.example"
    assert named <= declared, named - declared


def test_choice_lists_equal_what_models_implement():
    assert set(BACKEND_CHOICES) == {"auto", *BACKENDS}
    assert SOC_CHOICES == SUPPORTED_SOCS
    assert OCR_MODEL_CHOICES == OCR_MODELS and OCR_LANG_CHOICES == OCR_LANGS
    assert tuple(PACKS) == FACE_PACKS


def reads_os_environment(node: ast.AST) -> bool:
    """`os.environ`, `os.environb`, `os.getenv`, or importing one of them from os (a WSGI
    request's `environ` is not the process environment)."""
    names = ("environ", "environb", "getenv")
    if isinstance(node, ast.Attribute):
        return node.attr in names and isinstance(node.value, ast.Name) and node.value.id == "os"
    if isinstance(node, ast.ImportFrom):
        return node.module == "os" and any(alias.name in names for alias in node.names)
    return False


def test_no_other_module_reads_the_environment():
    readers = set()
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            if any(reads_os_environment(node) for node in ast.walk(tree)):
                readers.add(str(path.relative_to(REPO)))
    assert readers == set(ENVIRON_READERS), readers ^ set(ENVIRON_READERS)
