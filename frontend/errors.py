"""Error bodies exactly as MT-Photos' clients know them from the official (FastAPI) service."""

from __future__ import annotations

from flask import Response, jsonify


def missing_fields(*locations: tuple[str, str]) -> tuple[Response, int]:
    """FastAPI's 422 for absent required fields, e.g. ("header", "api-key")."""
    detail = [{"type": "missing", "loc": list(loc), "msg": "Field required"} for loc in locations]
    return jsonify(detail=detail), 422


def invalid_key() -> tuple[Response, int]:
    return jsonify(detail="Invalid API key"), 401


def unusable(message: str) -> tuple[Response, int]:
    """An input the service cannot use: HTTP 200, empty result, a reason MT-Photos logs."""
    return jsonify(result=[], msg=message), 200


def busy(message: str, retry_after: int = 1) -> tuple[Response, int]:
    response = jsonify(result=[], msg=message)
    response.headers["Retry-After"] = str(retry_after)
    return response, 503
