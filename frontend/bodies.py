"""Request bodies read once and defensively: a JSON body that does not parse is the client's
error (FastAPI's `json_invalid`), whatever broke it: bad syntax, bad UTF-8, or nesting deeper
than the parser's stack (a 100k-deep array would otherwise escape as a RecursionError)."""

from __future__ import annotations

import json
from typing import Any

from flask import g, request

INVALID = object()  # the body is there but is not JSON


def json_payload() -> Any:
    """The parsed JSON body; None when there is no body, INVALID when it is not JSON (or not
    sent as JSON). Parsed once per request."""
    if "json_payload" not in g:
        g.json_payload = _parse()
    return g.json_payload


def _parse() -> Any:
    data = request.get_data(cache=True)
    if not data:
        return None
    if not request.is_json:
        return INVALID
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError included
        return INVALID
