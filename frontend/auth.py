"""The `api-key` header check. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac

from flask import Response, request

from frontend.bodies import json_payload
from frontend.errors import invalid_key, missing_fields


def check_api_key(expected: str, *body_fields: str) -> tuple[Response, int] | None:
    """None when the key is right; else the 422 (missing, listed with any missing body
    fields, as FastAPI reports them together) or 401 (wrong) answer."""
    given = request.headers.get("api-key")
    if given is None:
        missing = [("body", name) for name in body_fields if not _has_field(name)]
        return missing_fields(("header", "api-key"), *missing)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        return invalid_key()
    return None


def _has_field(name: str) -> bool:
    if name in request.files:
        return True
    payload = json_payload()
    return isinstance(payload, dict) and name in payload
