"""Front settings, read from the environment when the app is created (see README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_API_KEY = "mt_photos_ai_extra"  # the official sidecar's default, so MT-Photos works as is


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name}={raw!r} is not a number") from None
    if not 0 < value < 1e6:  # also refuses inf and nan
        raise SystemExit(f"{name}={raw!r} must be a positive number of reasonable size")
    return value


@dataclass(frozen=True)
class FrontSettings:
    api_key: str  # API_AUTH_KEY: the value the `api-key` header must carry
    farm_endpoint: str  # MTAI_FARM_ENDPOINT: set by the supervisor for its gunicorn child
    request_timeout: float  # REQUEST_TIMEOUT: seconds a job may take, queue wait included
    max_upload_bytes: int  # MAX_UPLOAD_MB: larger request bodies get 413 unread

    @classmethod
    def from_env(cls) -> FrontSettings:
        endpoint = os.environ.get("MTAI_FARM_ENDPOINT", "").strip()
        if not endpoint:
            raise SystemExit("MTAI_FARM_ENDPOINT is not set: start the service with `mtai serve`")
        return cls(
            api_key=os.environ.get("API_AUTH_KEY", DEFAULT_API_KEY),
            farm_endpoint=endpoint,
            request_timeout=_number("REQUEST_TIMEOUT", 60.0),
            max_upload_bytes=int(_number("MAX_UPLOAD_MB", 100.0) * 1024 * 1024),
        )
