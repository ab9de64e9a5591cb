"""Supervisor settings, read from the environment once at start (names as in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from models.runtime import resolve_backend


def env_int(name: str, default: int, minimum: int | None = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise SystemExit(f"{name}={value} is below the minimum {minimum}")
    return value


def _backend(raw: str) -> str:
    """Checked here; `auto` stays `auto` and is resolved at each worker start, so models
    converted while the service runs are picked up by a reload (SIGHUP), not only a restart."""
    name = (raw or "auto").strip().lower()
    if name == "auto":
        return name
    try:
        return resolve_backend(name)
    except ValueError as exc:
        raise SystemExit(f"BACKEND: {exc}") from None


@dataclass(frozen=True)
class Settings:
    workers: int  # WORKERS: worker processes, one per NPU core (RK3588 has 3)
    http_port: int  # HTTP_PORT: also names the default runtime directory
    queue_size: int  # QUEUE_SIZE: jobs waiting beyond the busy workers before 503
    backend: str  # BACKEND: auto | rknn | onnx | rknn-sim (auto resolved per worker start)
    cpu_threads: int | None  # CPU_THREADS: onnxruntime threads per worker (default cores/workers)
    idle_recycle: float  # SERVER_RESTART_TIME: idle seconds before workers are recycled; <=0 off
    memory_limit: int  # MAX_WORKER_MEMORY_MB: recycle a worker whose USS passes this; 0 off
    job_grace: float = 5.0  # seconds a job may overrun its deadline before its worker is killed
    heartbeat_timeout: float = 10.0  # seconds an idle worker may stay silent before it is killed

    @classmethod
    def from_env(cls) -> Settings:
        workers = env_int("WORKERS", 3, minimum=1)
        threads = env_int("CPU_THREADS", 0)
        return cls(
            workers=workers,
            http_port=env_int("HTTP_PORT", 8060, minimum=1),
            queue_size=env_int("QUEUE_SIZE", 64, minimum=1),
            backend=_backend(os.environ.get("BACKEND", "auto")),
            cpu_threads=threads or max(1, (os.cpu_count() or 1) // workers),
            idle_recycle=float(env_int("SERVER_RESTART_TIME", 300, minimum=None)),
            memory_limit=env_int("MAX_WORKER_MEMORY_MB", 0) * 1024 * 1024,
        )
